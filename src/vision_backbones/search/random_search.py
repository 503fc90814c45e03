"""Random search: the baseline every other strategy has to beat at equal budget.

On NAS-Bench-201 regularized evolution (93.92 +- 0.30), REINFORCE (93.85 +- 0.37) and random search
(93.70 +- 0.36) are within one standard deviation (Dong & Yang 2020, https://arxiv.org/abs/2001.00326,
table 5), and Li & Talwalkar (https://arxiv.org/abs/1902.07638) show random search is a strong
baseline; a strategy earns its place only by beating it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from vision_backbones.search.rng import rng_state, set_rng_state
from vision_backbones.search.spaces import SearchSpace


class RandomSearch:
    """Uniform independent draws over the space (with replacement, as NAS-Bench-201's baseline)."""

    def __init__(self, space: SearchSpace, *, seed: int = 0) -> None:
        self.space = space
        self.rng = random.Random(seed)

    def propose(self) -> tuple[int, ...]:
        return self.space.random_indices(self.rng)

    def observe(self, indices: Sequence[int], reward: float) -> None:
        pass  # random search learns nothing

    def adopt(self, indices: Sequence[int], reward: float) -> None:
        pass  # a pre-screen's pick changes nothing either

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])
