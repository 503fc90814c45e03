"""Single-path one-shot search (SPOS) behind the one Strategy interface: ``--strategy oneshot``.

Guo et al., "Single Path One-Shot Neural Architecture Search with Uniform Sampling"
(https://arxiv.org/abs/1904.00420): train one supernet (``search.supernet``) with one uniformly
sampled path per step (``search.supernet_training``), then search over paths, ranking each by its
accuracy with the shared weights after recomputing its batch-norm statistics, instead of training it.

Through the runner like every strategy (``search.strategy`` describes both interfaces):

1. the runner trains the supernet epoch by epoch (``SharedWeights``), writing ``supernet.pt`` after
   each, so a kill costs at most one epoch and the resumed training ends with the same weights;
2. ``propose`` / ``observe`` are regularized evolution (``search.evolution``, the same class as
   ``--strategy evolution``) or random search over the space's members, never proposing a member
   twice; ``evaluator()`` scores a trial with the supernet (``SupernetEvaluator``).

Defaults: ``supernet_epochs=10``, ``population_size=16``, ``sample_size=4``, uniform sampling,
kernels sharing one superkernel per layer, each path's deployed size and latency measured
(``deployed=False``: validation accuracy alone, for an accuracy-only objective); the registered space is ``"mnasnet_oneshot"`` (MnasNet's
rows, kernel 3/5/7, expansion 6, no SE, repeats -1/0/+1, width 0.5, head 256).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from vision_backbones.search.evaluate import ProxyTask, proxy_model_kwargs
from vision_backbones.search.evolution import RegularizedEvolution
from vision_backbones.search.latency import measure_latency_ms
from vision_backbones.search.random_search import RandomSearch
from vision_backbones.search.spaces import SearchSpace
from vision_backbones.search.strategy import Evaluator
from vision_backbones.search.supernet import Supernet, skip_share
from vision_backbones.search.supernet_training import SupernetTrainer, path_accuracy
from vision_backbones.validate import check_choice, check_int

SEARCHES = ("evolution", "random")
RETRIES = 100  # draws before a member already proposed is accepted again (a space nearly exhausted)


class SupernetEvaluator:
    """A trial's result from the shared weights: validation top-1 of its path, and its deployed size and latency.

    With ``deployed=True`` the result also holds ``deploy_params``, ``deploy_flops`` and ``latency_ms``
    of ``create_model(base, **arch)`` at the task's latency settings, as the proxy evaluator reports
    them, so the same objectives (latency-aware reward, FLOP and parameter limits) and the Pareto plot
    apply; building and timing that network costs more than scoring the path.
    """

    def __init__(self, supernet: Supernet, task: ProxyTask, *, seed: int = 0, deployed: bool = True) -> None:
        self.supernet, self.task, self.seed, self.deployed = supernet, task, seed, deployed

    def __call__(self, trial: Mapping[str, Any]) -> dict[str, Any]:
        from vision_backbones.flops import count_flops
        from vision_backbones.registry import build_on_meta, create_model

        space, task = self.supernet.space, self.task
        indices = trial["indices"]
        scored = {
            "val_acc1": path_accuracy(self.supernet, indices, task, seed=self.seed),
            "skip_share": skip_share(space, indices),
        }
        if not self.deployed:
            return scored
        deploy = {
            "num_classes": task.latency_num_classes,
            "in_channels": task.latency_in_channels,
            **space.architecture(indices),
        }
        size = task.latency_image_size
        on_meta = build_on_meta(space.base, **deploy)
        torch.manual_seed(self.seed)
        return {
            **scored,
            "deploy_params": sum(p.numel() for p in on_meta.parameters()),
            "deploy_flops": count_flops(
                on_meta, torch.empty(1, task.latency_in_channels, size, size, device="meta")
            ).total,
            "latency_ms": measure_latency_ms(
                create_model(space.base, **deploy),
                image_size=size,
                threads=task.latency_threads,
                repeats=task.latency_repeats,
            ),
        }


class PathSearch:
    """Evolution or random search over a supernet's paths, never proposing a member twice (within
    ``RETRIES`` draws): the proposing half that every weight-sharing strategy shares."""

    search: RegularizedEvolution | RandomSearch
    proposed: set[tuple[int, ...]]

    def _start_path_search(
        self, space: SearchSpace, search: str, *, seed: int, population_size: int, sample_size: int
    ) -> None:
        if search == "evolution":
            self.search = RegularizedEvolution(
                space, seed=seed, population_size=population_size, sample_size=sample_size
            )
        else:
            self.search = RandomSearch(space, seed=seed)
        self.proposed = set()

    def _next_path(self) -> tuple[int, ...]:
        for _ in range(RETRIES):
            indices = self.search.propose()
            if indices not in self.proposed:
                break
        self.proposed.add(indices)
        return indices

    def observe(self, indices: Sequence[int], reward: float) -> None:
        self.search.observe(indices, reward)

    def state_dict(self) -> dict[str, Any]:
        return {"search": self.search.state_dict(), "proposed": [list(indices) for indices in sorted(self.proposed)]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.search.load_state_dict(state["search"])
        self.proposed = {tuple(int(i) for i in indices) for indices in state["proposed"]}


class OneShotSearch(PathSearch):
    """A supernet over ``space`` trained on ``task``, then ``search`` over its paths (see the module docstring)."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        task: ProxyTask | None = None,
        supernet_epochs: int = 10,
        sampling: str = "uniform",
        search: str = "evolution",
        population_size: int = 16,
        sample_size: int = 4,
        share_kernels: bool = True,
        deployed: bool = True,
    ) -> None:
        check_int("supernet_epochs", supernet_epochs, min=1)
        check_choice("search", search, SEARCHES)
        self.space = space
        self.task = task or ProxyTask()
        self.seed, self.deployed = seed, deployed
        torch.manual_seed(seed)  # the supernet's initial weights
        # the data's classes and channels; a space it cannot cover: one line
        self.supernet = Supernet(space, share_kernels=share_kernels, **proxy_model_kwargs(self.task))
        self.trainer = SupernetTrainer(self.supernet, self.task, epochs=supernet_epochs, seed=seed, sampling=sampling)
        self._start_path_search(space, search, seed=seed, population_size=population_size, sample_size=sample_size)

    # ------------------------------------------------------------------ SharedWeights
    def training_done(self) -> bool:
        return self.trainer.done

    def train_epoch(self) -> float:
        return self.trainer.train_epoch()

    def weights_state_dict(self) -> dict[str, Any]:
        return self.trainer.state_dict()

    def load_weights_state_dict(self, state: dict[str, Any]) -> None:
        self.trainer.load_state_dict(state)

    def evaluator(self) -> Evaluator:
        return SupernetEvaluator(self.supernet, self.task, seed=self.seed, deployed=self.deployed)

    # ------------------------------------------------------------------ Strategy
    def propose(self) -> tuple[int, ...]:
        if not self.training_done():
            raise RuntimeError(
                f"the supernet has trained {self.trainer.epoch} of {self.trainer.epochs} epochs; "
                "train it (train_epoch) before proposing paths"
            )
        return self._next_path()
