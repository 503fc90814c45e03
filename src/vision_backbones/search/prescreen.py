"""A zero-cost pre-screen in front of any strategy: score many candidates for free, evaluate the best few first.

Abdelfattah et al. ("Zero-Cost Proxies for Lightweight NAS", ICLR 2021, https://arxiv.org/abs/2101.08134,
section 5) warm-start search this way: regularized evolution whose initial population is the best
``keep`` of ``candidates`` random members by a proxy score (their "warmup"), and random search that
evaluates only the best-scored members. ``Prescreened`` does that for every strategy that can adopt
members it did not propose (``adopt(indices, reward)``: random, evolution, BANANAS): its first ``keep``
proposals are the best ``keep`` of ``candidates`` distinct random members by ``scorer``, adopted by the
wrapped strategy as if it had proposed them (evolution's initial population, BANANAS's initial
members); then the wrapped strategy proposes.

The scorer (``indices -> float``, higher = predicted better) is any zero-cost proxy of
``search.proxies`` (``proxy_scorer`` builds one on the proxy data) or a lookup of precomputed scores.
Scores are computed once, at the first proposal; the chosen members are part of the state, so a resumed
search does not score again and proposes what the uninterrupted one would.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from vision_backbones.search.rng import rng_state, set_rng_state
from vision_backbones.search.strategy import Strategy
from vision_backbones.validate import check_int

Scorer = Callable[[tuple[int, ...]], float]
# strategies that can adopt members they did not propose (``adopt(indices, reward)``)
ACCEPTS_FOREIGN = ("RandomSearch", "RegularizedEvolution", "Bananas")


class Prescreened:
    """``strategy`` after a zero-cost pre-screen of ``candidates`` random members, ``keep`` evaluated first."""

    def __init__(
        self, strategy: Strategy, scorer: Scorer, *, candidates: int = 100, keep: int = 10, seed: int = 0
    ) -> None:
        check_int("candidates", candidates, min=1)
        check_int("keep", keep, min=1, max=candidates)
        name = type(strategy).__name__
        if not callable(getattr(strategy, "adopt", None)):
            raise ValueError(
                f"a pre-screen cannot warm-start {name}: it only learns from members it proposed itself; "
                f"expected one of {', '.join(ACCEPTS_FOREIGN)}"
            )
        self.strategy = strategy
        self.space = strategy.space
        self.scorer = scorer
        self.candidates = min(candidates, self.space.size)
        self.keep = min(keep, self.candidates)
        self.rng = random.Random(seed)
        self.chosen: list[tuple[int, ...]] | None = None  # the screened members, best first
        self.proposed = 0
        self.observed = 0

    def _screen(self) -> list[tuple[int, ...]]:
        seen: dict[tuple[int, ...], None] = {}
        while len(seen) < self.candidates:
            seen[self.space.random_indices(self.rng)] = None
        scored = sorted(seen, key=lambda m: self.scorer(m), reverse=True)
        return scored[: self.keep]

    def propose(self) -> tuple[int, ...]:
        if self.chosen is None:
            self.chosen = self._screen()
        self.proposed += 1
        if self.proposed <= len(self.chosen):
            return self.chosen[self.proposed - 1]
        return self.strategy.propose()

    def observe(self, indices: Sequence[int], reward: float) -> None:
        # observations come in proposal order (the runner's rule): the first ones are the screened members
        self.observed += 1
        if self.chosen is not None and self.observed <= len(self.chosen):
            self.strategy.adopt(indices, reward)  # type: ignore[attr-defined]
        else:
            self.strategy.observe(indices, reward)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": rng_state(self.rng),
            "chosen": None if self.chosen is None else [list(m) for m in self.chosen],
            "proposed": self.proposed,
            "observed": self.observed,
            "strategy": self.strategy.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])
        self.chosen = None if state["chosen"] is None else [tuple(m) for m in state["chosen"]]
        self.proposed = int(state["proposed"])
        self.observed = int(state["observed"])
        self.strategy.load_state_dict(state["strategy"])


def proxy_scorer(space: Any, task: Any, proxy: str = "synflow", *, batch: int = 64, seed: int = 0) -> Scorer:
    """``indices -> score`` of one zero-cost proxy (not ``"ensemble"``: that ranks a population) on
    ``batch`` training images of the proxy task, each member built with ``seed``."""
    from vision_backbones.search.evaluate import task_splits
    from vision_backbones.search.proxies import check_proxies, score_member

    (name,) = check_proxies([proxy])
    if name == "ensemble":
        raise ValueError("proxy 'ensemble' ranks a population; expected a single proxy for a pre-screen")
    splits = task_splits(task)
    images, labels = splits.train[0][:batch].contiguous(), splits.train[1][:batch]

    def score(indices: tuple[int, ...]) -> float:
        architecture = space.architecture(indices)
        return score_member(
            space.base, architecture, images, labels, [name], seed=seed, num_classes=splits.num_classes
        )[name]

    return score
