"""The one interface every search strategy follows, random search (the baseline), and the strategy table.

A strategy proposes members of a space as choice indices and learns from observed rewards:

    strategy = make_strategy("evolution", space, seed=0)
    indices = strategy.propose()
    strategy.observe(indices, reward)

``state_dict()`` / ``load_state_dict()`` hold everything that decides the next proposals (random
generator states, controller weights and optimizer moments, the population), as tensors, numbers,
strings and lists, so ``torch.save`` writes it and ``torch.load(weights_only=True)`` reads it back: a
resumed search proposes exactly what the uninterrupted one would have.

Why random search is the baseline: on NAS-Bench-201 regularized evolution (93.92 +- 0.30), REINFORCE
(93.85 +- 0.37) and random search (93.70 +- 0.36) are within one standard deviation (Dong & Yang 2020,
https://arxiv.org/abs/2001.00326, table 5), and Li & Talwalkar (https://arxiv.org/abs/1902.07638)
show random search is a strong baseline; a strategy earns its place only by beating it at equal budget.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

from vision_backbones.search.spaces import SearchSpace


class Strategy(Protocol):
    """What the runner needs from a strategy."""

    space: SearchSpace

    def propose(self) -> tuple[int, ...]: ...

    def observe(self, indices: Sequence[int], reward: float) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def rng_state(rng: random.Random) -> list[Any]:
    """``random.Random`` state as lists and ints (what ``weights_only`` loading accepts)."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_rng_state(rng: random.Random, state: Sequence[Any]) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))


class RandomSearch:
    """Uniform independent draws over the space (with replacement, as NAS-Bench-201's baseline)."""

    def __init__(self, space: SearchSpace, *, seed: int = 0) -> None:
        self.space = space
        self.rng = random.Random(seed)

    def propose(self) -> tuple[int, ...]:
        return self.space.random_indices(self.rng)

    def observe(self, indices: Sequence[int], reward: float) -> None:
        pass  # random search learns nothing

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])


STRATEGIES = ("random", "reinforce", "evolution")


def make_strategy(name: str, space: SearchSpace, *, seed: int = 0, **options: Any) -> Strategy:
    """The strategy ``name`` over ``space``; ``options`` go to its constructor (unknown ones raise)."""
    from vision_backbones.search.controller import ReinforceSearch
    from vision_backbones.search.evolution import RegularizedEvolution

    classes = {"random": RandomSearch, "reinforce": ReinforceSearch, "evolution": RegularizedEvolution}
    if name not in classes:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    try:
        return classes[name](space, seed=seed, **options)
    except TypeError as error:
        raise ValueError(f"strategy {name!r}: {error}") from None
