"""Weight sharing over an op-per-layer space behind the one Strategy interface (``search.strategy``).

``backbones search --space nasbench_mb --strategy spos|fairnas|fewshot|darts|drnas``:

- ``spos``, ``fairnas``, ``fewshot`` (``OpOneShotSearch``): the runner trains an ``OpSupernet``
  (``search.op_supernet_training``, one variant each) epoch by epoch into ``supernet.pt``; then
  regularized evolution (or ``search="random"``) proposes paths, never one twice, each scored with the
  shared weights after recomputing its batch-norm statistics (``PathEvaluator``), by the sub-supernet
  that owns it for ``fewshot``.
- ``darts``, ``drnas`` (``DifferentiableSearch``): the runner trains the weights and alphas
  (``search.darts``) epoch by epoch; then the strategy proposes the derived member (argmax per layer)
  first and after it the next most probable members under the learnt distribution; each is scored as
  above, with its skip share and its probability.

Defaults and why: 20 supernet epochs (SPOS: ~1.3 s an epoch on one core of the 2-core machine, so a
supernet trains in well under the 15 minutes the issue allows; FairNAS costs ~5x, few-shot
``warmup + 5 x the rest``; on a pilot over the first ~200 table members SPOS ranked better after 20
epochs than after 40 or with lr 0.003: Kendall tau 0.49 vs 0.37 and 0.37); 30 differentiable epochs (~10-25 s each: every layer runs all five ops,
twice a step). ``export_weights`` writes a path's inherited weights and recomputed batch-norm state
(``search.path_weights``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vision_backbones.search.darts import (
    ARCH_LR,
    ARCH_WEIGHT_DECAY,
    DRNAS_KL_WEIGHT,
    DifferentiableTrainer,
    best_members,
)
from vision_backbones.search.darts import skip_share as op_skip_share
from vision_backbones.search.evaluate import ProxyTask
from vision_backbones.search.oneshot import SEARCHES, PathSearch
from vision_backbones.search.op_supernet import OpSupernet
from vision_backbones.search.op_supernet_training import OpSupernetTrainer, path_score
from vision_backbones.search.spaces import SearchSpace
from vision_backbones.search.strategy import Evaluator
from vision_backbones.validate import check_choice, check_int


class PathEvaluator:
    """A trial's result from shared weights: ``val_acc1`` of its path (batch norm recomputed), ``skip_share``."""

    def __init__(
        self,
        supernet_for: Callable[[Sequence[int]], OpSupernet],
        space: SearchSpace,
        task: ProxyTask,
        *,
        seed: int = 0,
        extra: Callable[[Sequence[int]], dict[str, Any]] | None = None,
    ) -> None:
        self.supernet_for, self.space, self.task, self.seed, self.extra = supernet_for, space, task, seed, extra

    def __call__(self, trial: Mapping[str, Any]) -> dict[str, Any]:
        indices = trial["indices"]
        supernet = self.supernet_for(indices)  # a path not in the space: one line
        result = {
            "val_acc1": path_score(supernet, indices, self.task, seed=self.seed),
            "skip_share": op_skip_share(self.space, indices),
        }
        return {**result, **(self.extra(indices) if self.extra else {})}


class _SharedWeightsBase:
    """The ``SharedWeights`` half common to both kinds: ``trainer`` does the work."""

    trainer: Any
    space: SearchSpace
    task: ProxyTask
    seed: int

    def training_done(self) -> bool:
        return bool(self.trainer.done)

    def train_epoch(self) -> float:
        return float(self.trainer.train_epoch())

    def weights_state_dict(self) -> dict[str, Any]:
        return dict(self.trainer.state_dict())

    def load_weights_state_dict(self, state: dict[str, Any]) -> None:
        self.trainer.load_state_dict(state)

    def supernet_for(self, indices: Sequence[int]) -> OpSupernet:
        raise NotImplementedError

    def _extra(self, indices: Sequence[int]) -> dict[str, Any]:
        return {}

    def evaluator(self) -> Evaluator:
        return PathEvaluator(self.supernet_for, self.space, self.task, seed=self.seed, extra=self._extra)

    def export_weights(self, indices: Sequence[int], path: str | Path) -> float:
        """Write the path's inherited weights and batch-norm state as safetensors; returns its ``val_acc1``."""
        from vision_backbones.search.path_weights import save_path_weights

        return save_path_weights(self.supernet_for(indices), indices, self.task, path, seed=self.seed)

    def _check_trained(self) -> None:
        if not self.training_done():
            raise RuntimeError(
                f"the shared weights have trained {self.trainer.epoch} of {self.trainer.units} epochs; "
                "train them (train_epoch) before proposing members"
            )


class OpOneShotSearch(PathSearch, _SharedWeightsBase):
    """An ``OpSupernet`` trained by ``variant``, then evolution (or random search) over its paths."""

    variant = "spos"

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        task: ProxyTask | None = None,
        supernet_epochs: int = 20,
        search: str = "evolution",
        population_size: int = 16,
        sample_size: int = 4,
        **variant_options: Any,
    ) -> None:
        if self.variant != "fewshot" and variant_options:
            raise TypeError(f"unexpected keyword argument {next(iter(variant_options))!r}")
        check_int("supernet_epochs", supernet_epochs, min=1)
        check_choice("search", search, SEARCHES)
        self.space, self.task, self.seed = space, task or ProxyTask(), seed
        self.trainer = OpSupernetTrainer(
            space, self.task, epochs=supernet_epochs, seed=seed, variant=self.variant, **variant_options
        )
        self._start_path_search(space, search, seed=seed, population_size=population_size, sample_size=sample_size)

    def supernet_for(self, indices: Sequence[int]) -> OpSupernet:
        return self.trainer.supernet_for(indices)

    def propose(self) -> tuple[int, ...]:
        self._check_trained()
        return self._next_path()


class SPOSSearch(OpOneShotSearch):
    """``--strategy spos``: uniform single-path training (Guo et al. 2019)."""

    variant = "spos"


class FairNASSearch(OpOneShotSearch):
    """``--strategy fairnas``: strict fairness, every op of every layer once per step (Chu et al.)."""

    variant = "fairnas"


class FewShotSearch(OpOneShotSearch):
    """``--strategy fewshot``: sub-supernets, one per choice of ``split_decision`` (Zhao et al. 2021)."""

    variant = "fewshot"

    def __init__(
        self, space: SearchSpace, *, split_decision: int = 0, warmup_share: float = 0.5, **options: Any
    ) -> None:
        super().__init__(space, split_decision=split_decision, warmup_share=warmup_share, **options)


class DifferentiableSearch(_SharedWeightsBase):
    """DARTS / DrNAS weights and alphas, then the members in decreasing probability, the derived one first."""

    method = "darts"

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        task: ProxyTask | None = None,
        search_epochs: int = 30,
        arch_lr: float = ARCH_LR,
        arch_weight_decay: float = ARCH_WEIGHT_DECAY,
        kl_weight: float = DRNAS_KL_WEIGHT,
    ) -> None:
        self.space, self.task, self.seed = space, task or ProxyTask(), seed
        self.trainer = DifferentiableTrainer(
            space,
            self.task,
            epochs=search_epochs,
            seed=seed,
            method=self.method,
            arch_lr=arch_lr,
            arch_weight_decay=arch_weight_decay,
            kl_weight=kl_weight,
        )
        self.proposed = 0

    def supernet_for(self, indices: Sequence[int]) -> OpSupernet:
        self.trainer.supernet.check_path(indices)
        return self.trainer.supernet

    def _extra(self, indices: Sequence[int]) -> dict[str, Any]:
        probabilities = self.trainer.probabilities()
        probability = 1.0
        for layer, choice in enumerate(indices):
            probability *= float(probabilities[layer][choice])
        return {"derived": list(indices) == list(self.trainer.derived()), "probability": probability}

    def propose(self) -> tuple[int, ...]:
        self._check_trained()
        number = self.proposed % self.space.size  # past the whole space: around again
        members = best_members(self.trainer.probabilities().log())
        for _ in range(number):
            next(members)
        self.proposed += 1
        return next(members)

    def observe(self, indices: Sequence[int], reward: float) -> None:
        pass  # the proposals follow the learnt distribution alone

    def state_dict(self) -> dict[str, Any]:
        return {"proposed": self.proposed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.proposed = int(state["proposed"])


class DartsSearch(DifferentiableSearch):
    """``--strategy darts``: softmax relaxation, first-order bilevel steps (Liu et al. 2019)."""

    method = "darts"


class DrNASSearch(DifferentiableSearch):
    """``--strategy drnas``: Dirichlet relaxation with a KL prior (Chen et al. 2021)."""

    method = "drnas"
