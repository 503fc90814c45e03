"""The strategy table: every ``backbones search --strategy`` choice, built by one function.

The interface they all implement is documented in ``search.strategy``; each class's module gives
its paper and defaults:

- ``random``: ``random_search.RandomSearch``, the baseline;
- ``reinforce``: ``controller.ReinforceSearch``, an autoregressive recurrent controller (Zoph & Le, ENAS);
- ``evolution``: ``evolution.RegularizedEvolution``, aging evolution (Real et al.);
- ``local``: ``local_search.LocalSearch``, hill climbing over one-decision neighbourhoods with random
  restarts (White, Nolen & Savani);
- ``bananas``: ``bananas.Bananas``, Bayesian optimization with an ensemble of MLP predictors on a
  one-hot encoding and Thompson sampling over mutated candidates (White, Neiswanger & Savani);
- ``tpe``: ``optuna_strategies.OptunaTPE``, Optuna's tree-structured Parzen estimator (Bergstra et al.);
- ``nsga2``: ``optuna_strategies.OptunaNSGA2``, Optuna's NSGA-II over several result keys (accuracy up,
  latency down by default; Deb et al.): it reads the trial's result (``observe_result``), not the reward;
- ``oneshot``: ``oneshot.OneShotSearch``, a single-path supernet trained once, then regularized
  evolution (or random search) over its paths, each scored with the shared weights.
"""

from __future__ import annotations

from typing import Any

from vision_backbones.search.bananas import Bananas
from vision_backbones.search.controller import ReinforceSearch
from vision_backbones.search.evolution import RegularizedEvolution
from vision_backbones.search.local_search import LocalSearch
from vision_backbones.search.oneshot import OneShotSearch
from vision_backbones.search.op_strategies import DartsSearch, DrNASSearch, FairNASSearch, FewShotSearch, SPOSSearch
from vision_backbones.search.optuna_strategies import OptunaNSGA2, OptunaTPE
from vision_backbones.search.random_search import RandomSearch
from vision_backbones.search.spaces import SearchSpace
from vision_backbones.search.strategy import Strategy

STRATEGY_CLASSES: dict[str, type] = {
    "random": RandomSearch,
    "reinforce": ReinforceSearch,
    "evolution": RegularizedEvolution,
    "local": LocalSearch,
    "bananas": Bananas,
    "tpe": OptunaTPE,
    "nsga2": OptunaNSGA2,
    "oneshot": OneShotSearch,
    "spos": SPOSSearch,
    "fairnas": FairNASSearch,
    "fewshot": FewShotSearch,
    "darts": DartsSearch,
    "drnas": DrNASSearch,
}
STRATEGIES = tuple(STRATEGY_CLASSES)
# train shared weights first (``strategy.SharedWeights``); take ``task=``
WEIGHT_SHARING = ("oneshot", "spos", "fairnas", "fewshot", "darts", "drnas")
# learn from the whole result (``observe_result``: accuracy and latency), not from one reward
MULTI_OBJECTIVE = ("nsga2",)


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
