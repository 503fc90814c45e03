"""The strategy table: every ``backbones search --strategy`` choice, built by one function.

The interface they all implement is documented in ``search.strategy``; each class's module gives
its paper and defaults:

- ``random``: ``random_search.RandomSearch``, the baseline;
- ``reinforce``: ``controller.ReinforceSearch``, an autoregressive recurrent controller (Zoph & Le, ENAS);
- ``evolution``: ``evolution.RegularizedEvolution``, aging evolution (Real et al.);
- ``oneshot``: ``oneshot.OneShotSearch``, a single-path supernet trained once, then regularized
  evolution (or random search) over its paths, each scored with the shared weights.
"""

from __future__ import annotations

from typing import Any

from vision_backbones.search.controller import ReinforceSearch
from vision_backbones.search.evolution import RegularizedEvolution
from vision_backbones.search.oneshot import OneShotSearch
from vision_backbones.search.random_search import RandomSearch
from vision_backbones.search.spaces import SearchSpace
from vision_backbones.search.strategy import Strategy

STRATEGY_CLASSES: dict[str, type] = {
    "random": RandomSearch,
    "reinforce": ReinforceSearch,
    "evolution": RegularizedEvolution,
    "oneshot": OneShotSearch,
}
STRATEGIES = tuple(STRATEGY_CLASSES)
WEIGHT_SHARING = ("oneshot",)  # train shared weights first (``strategy.SharedWeights``); take ``task=``


def make_strategy(name: str, space: SearchSpace, *, seed: int = 0, task: Any = None, **options: Any) -> Strategy:
    """The strategy ``name`` over ``space``; ``options`` go to its constructor (unknown ones raise).

    ``task`` (an ``evaluate.ProxyTask``) is what a weight-sharing strategy trains on; the others
    evaluate nothing themselves and ignore it.
    """
    if name not in STRATEGY_CLASSES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    if name in WEIGHT_SHARING:
        options = {**options, "task": task}
    try:
        strategy: Strategy = STRATEGY_CLASSES[name](space, seed=seed, **options)
        return strategy
    except TypeError as error:
        raise ValueError(f"strategy {name!r}: {error}") from None
