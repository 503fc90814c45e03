"""Training an ``OpSupernet`` (SPOS, FairNAS, few-shot NAS) epoch by epoch, and ranking its paths.

Variants (``variant=``):

- ``"spos"``: one uniformly drawn path per step, one optimizer step (Guo et al. 2019,
  https://arxiv.org/abs/1904.00420).
- ``"fairnas"``: strict fairness (Chu et al., https://arxiv.org/abs/1907.01845): per step, for each
  layer an independent random permutation of its ``m`` ops; sub-step ``i`` runs the ``i``-th op of
  every layer, so every op of every layer runs exactly once; the ``m`` losses' gradients are
  accumulated (as their mean, so the learning rate means what it means for SPOS) and ONE optimizer
  step follows. A step costs ``m`` forward/backward passes.
- ``"fewshot"``: few-shot NAS (Zhao et al., ICML 2021, https://arxiv.org/abs/2006.06863): the
  one-shot supernet trains with SPOS for the first ``warmup_share`` of the epochs (default half),
  then is split into ``K`` sub-supernets, one per choice of ONE decision (``split_decision``, default
  0: the first layer's op), each starting from the trained weights and optimizer moments and training
  the remaining epochs on the paths with its choice there (SPOS again). A path is scored by the
  sub-supernet that owns its choice (``supernet_for``). It costs ``warmup + K * (epochs - warmup)``
  epochs.

The resumable unit is one epoch of one (sub-)supernet: ``state_dict`` holds every supernet's weights,
its optimizer's moments, its path sampler's and shuffler's generators, torch's global generator and
the units done, loadable with ``torch.load(weights_only=True)``; the learning rate is
``task.lr * warmup_cosine(step, total)`` set by step number (the scheduler's whole state is the step),
so a resumed training ends with the same weights as an uninterrupted one. A state of another space,
variant or schedule is refused in one line before anything is loaded.

Scoring (``path_score``): the path's modules (``OpSupernet.path_network``) get batch-norm statistics
recomputed on ``task.bn_batches`` seeded training batches (``evaluate.recompute_statistics``, precise
BN), then validation top-1. ``ranking_figures`` compares scores with a benchmark table.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from vision_backbones.measure.timing import num_threads
from vision_backbones.search.data import ProxySplits
from vision_backbones.search.evaluate import (
    ProxyTask,
    accuracy,
    make_optimizer,
    proxy_model_kwargs,
    recompute_statistics,
    task_splits,
    training_batches,
    warmup_cosine,
)
from vision_backbones.search.op_supernet import OpSupernet
from vision_backbones.search.rng import rng_state, set_rng_state
from vision_backbones.search.spaces import SearchSpace
from vision_backbones.validate import check_choice, check_float, check_int

VARIANTS = ("spos", "fairnas", "fewshot")


def fair_paths(space: SearchSpace, rng: random.Random) -> list[tuple[int, ...]]:
    """FairNAS's ``m`` paths of one step: column ``i`` of an independent permutation per layer."""
    sizes = {len(d.choices) for d in space.decisions}
    if len(sizes) != 1:
        raise ValueError(f"space {space.name!r}: layers have {sorted(sizes)} ops; strict fairness needs equal counts")
    m = sizes.pop()
    orders = [rng.sample(range(m), m) for _ in space.decisions]
    return [tuple(order[i] for order in orders) for i in range(m)]


class OpSupernetTrainer:
    """Trains the supernet(s) of ``variant`` over ``space`` on ``task`` for ``epochs``, one resumable unit at a time."""

    def __init__(
        self,
        space: SearchSpace,
        task: ProxyTask,
        *,
        epochs: int,
        seed: int = 0,
        variant: str = "spos",
        split_decision: int = 0,
        warmup_share: float = 0.5,
    ) -> None:
        check_int("epochs", epochs, min=1)
        check_int("seed", seed, min=0)
        check_choice("variant", variant, VARIANTS)
        check_float("warmup_share", warmup_share, min=0, max=1, min_open=True, max_open=True)
        check_int("split_decision", split_decision, min=0, max=len(space.decisions) - 1)
        self.space, self.task, self.epochs, self.seed, self.variant = space, task, epochs, seed, variant
        self.split_decision = split_decision
        self.warmup_epochs = epochs
        if variant == "fewshot":
            if epochs < 2:
                raise ValueError(f"fewshot trains a warm-up and then sub-supernets; expected epochs >= 2, got {epochs}")
            self.warmup_epochs = min(epochs - 1, max(1, round(epochs * warmup_share)))
        torch.manual_seed(seed)  # the supernet's initial weights
        self.supernets = [OpSupernet(space, **proxy_model_kwargs(task))]  # a space it cannot cover: one line
        if task.channels_last:
            self.supernets[0].to(memory_format=torch.channels_last)
        self.optimizers = [make_optimizer(self.supernets[0], task)]
        self.rngs = [random.Random(seed)]  # paths
        self.generators = [torch.Generator().manual_seed(seed)]  # shuffling
        self.epoch = 0  # units done
        self.losses: list[float] = []

    # ------------------------------------------------------------------ schedule
    @property
    def splits(self) -> int:
        """Sub-supernets after the warm-up (1 for spos and fairnas)."""
        return len(self.space.decisions[self.split_decision].choices) if self.variant == "fewshot" else 1

    @property
    def units(self) -> int:
        """Resumable units in all: epochs, or the warm-up plus each sub-supernet's remaining epochs."""
        if self.variant != "fewshot":
            return self.epochs
        return self.warmup_epochs + self.splits * (self.epochs - self.warmup_epochs)

    @property
    def done(self) -> bool:
        return self.epoch >= self.units

    def _unit(self, unit: int) -> tuple[int, int]:
        """``(supernet index, its epoch)`` of unit ``unit``."""
        if unit < self.warmup_epochs:
            return 0, unit
        k, e = divmod(unit - self.warmup_epochs, self.epochs - self.warmup_epochs)
        return k, self.warmup_epochs + e

    def _split(self) -> None:
        """K copies of the warmed-up supernet, each with the optimizer's moments and its own generators."""
        base, optimizer = self.supernets[0], self.optimizers[0]
        self.supernets = [copy.deepcopy(base) for _ in range(self.splits)]
        self.optimizers = []
        for supernet in self.supernets:
            self.optimizers.append(make_optimizer(supernet, self.task))
            self.optimizers[-1].load_state_dict(optimizer.state_dict())
        self.rngs = [random.Random(self.seed * 1000 + k + 1) for k in range(self.splits)]
        self.generators = [torch.Generator().manual_seed(self.seed * 1000 + k + 1) for k in range(self.splits)]

    def supernet_for(self, indices: Sequence[int]) -> OpSupernet:
        """The supernet that scores ``indices``: the sub-supernet owning its choice after a few-shot split."""
        indices = self.supernets[0].check_path(indices)
        return self.supernets[indices[self.split_decision]] if len(self.supernets) > 1 else self.supernets[0]

    def _paths(self, k: int) -> list[tuple[int, ...]]:
        rng = self.rngs[k]
        if self.variant == "fairnas":
            return fair_paths(self.space, rng)
        indices = list(self.space.random_indices(rng))
        if len(self.supernets) > 1:
            indices[self.split_decision] = k  # a sub-supernet trains only the paths it owns
        return [tuple(indices)]

    # ------------------------------------------------------------------ training
    def train_epoch(self) -> float:
        """Train one unit; returns its mean loss."""
        if self.done:
            raise RuntimeError(f"the supernet has trained all {self.units} units")
        if self.variant == "fewshot" and self.epoch == self.warmup_epochs and len(self.supernets) == 1:
            self._split()
        k, epoch = self._unit(self.epoch)
        task, supernet, optimizer = self.task, self.supernets[k], self.optimizers[k]
        batches = training_batches(task_splits(task).train, task.batch_size, self.generators[k])
        total = len(batches) * self.epochs
        supernet.train()
        epoch_loss = 0.0
        with num_threads(task.threads):
            for number, (images, labels) in enumerate(batches):
                for group in optimizer.param_groups:
                    group["lr"] = task.lr * warmup_cosine(epoch * len(batches) + number, total)
                optimizer.zero_grad(set_to_none=True)  # ops off the path keep no gradient: not updated
                paths = self._paths(k)
                for path in paths:
                    loss = F.cross_entropy(supernet(images, indices=path), labels, label_smoothing=task.label_smoothing)
                    if not math.isfinite(loss.item()):
                        raise FloatingPointError(
                            f"supernet loss became {float(loss)}; expected a finite loss (lower lr={task.lr:g}?)"
                        )
                    (loss / len(paths)).backward()
                    epoch_loss += loss.item() / len(paths)
                optimizer.step()
        self.epoch += 1
        self.losses.append(epoch_loss / len(batches))
        return self.losses[-1]

    # ------------------------------------------------------------------ resuming
    def identity(self) -> dict[str, Any]:
        """What a saved state must match to be loaded."""
        return {
            "space": self.space.describe(),
            "variant": self.variant,
            "epochs": self.epochs,
            "warmup_epochs": self.warmup_epochs,
            "split_decision": self.split_decision,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            **self.identity(),
            "epoch": self.epoch,
            "supernets": [s.state_dict() for s in self.supernets],
            "optimizers": [o.state_dict() for o in self.optimizers],
            "rngs": [rng_state(r) for r in self.rngs],
            "generators": [g.get_state() for g in self.generators],
            "torch_rng": torch.get_rng_state(),
            "losses": list(self.losses),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        check_state_identity(state, self.identity(), "supernet")
        if len(state["supernets"]) not in (1, self.splits):
            raise ValueError(f"the state holds {len(state['supernets'])} supernets; expected 1 or {self.splits}")
        if len(state["supernets"]) > len(self.supernets):
            self._split()
        for supernet, weights in zip(self.supernets, state["supernets"]):
            supernet.load_state_dict(weights)
        for optimizer, moments in zip(self.optimizers, state["optimizers"]):
            optimizer.load_state_dict(moments)
        for rng, saved in zip(self.rngs, state["rngs"]):
            set_rng_state(rng, saved)
        for generator, saved in zip(self.generators, state["generators"]):
            generator.set_state(saved)
        torch.set_rng_state(state["torch_rng"])
        self.epoch = int(state["epoch"])
        self.losses = [float(loss) for loss in state["losses"]]


def check_state_identity(state: Any, identity: Mapping[str, Any], what: str) -> None:
    """One line naming the first setting in which a saved state differs from this training (nothing loaded yet)."""
    if not isinstance(state, Mapping):
        raise ValueError(f"the saved {what} state is a {type(state).__name__}; expected a dict")
    for key, expected in identity.items():
        if state.get(key) != expected:
            shown = state.get(key, "(missing)")
            if key == "space":  # the space's name, not its whole description
                shown = shown.get("name", shown) if isinstance(shown, Mapping) else shown
                if shown == expected["name"]:
                    raise ValueError(f"the saved {what} state is of another definition of space {shown!r}")
                expected = expected["name"]
            raise ValueError(f"the saved {what} state has {key}={shown!r}; this search has {key}={expected!r}")


# ---------------------------------------------------------------------------------- scoring


def path_score(
    supernet: OpSupernet, indices: Sequence[int], task: ProxyTask, *, splits: ProxySplits | None = None, seed: int = 0
) -> float:
    """Validation top-1 (percent) of the path with the shared weights, its batch-norm statistics recomputed."""
    splits = splits or task_splits(task)
    network = supernet.path_network(indices)
    with num_threads(task.threads), torch.no_grad():
        recompute_statistics(network, splits, replace(task, bn_batches=max(1, task.bn_batches)), seed=seed)
        return accuracy(network, splits.val, batch_size=task.eval_batch_size)


def score_members(trainer: OpSupernetTrainer, members: Sequence[Sequence[int]], *, seed: int = 0) -> list[float]:
    """The supernet score (``path_score``, by the owning sub-supernet) of each member, in order."""
    splits = task_splits(trainer.task)
    return [path_score(trainer.supernet_for(m), m, trainer.task, splits=splits, seed=seed) for m in members]


def ranking_figures(scores: Sequence[float], table_rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Kendall tau, Spearman rho and top-10 % precision of ``scores`` against the rows' ``test_acc1`` (seed mean).

    Top-10 % precision: the share of the ``ceil(n / 10)`` best members by score that are among the
    ``ceil(n / 10)`` best by the table (ties broken by position).
    """
    from scipy.stats import kendalltau, spearmanr

    if len(scores) != len(table_rows) or len(scores) < 2:
        raise ValueError(f"need equal lists of >= 2 scores and table rows, got {len(scores)} and {len(table_rows)}")
    truths = [float(row["test_acc1"]) for row in table_rows]
    top = max(1, math.ceil(len(scores) / 10))
    by_score = set(sorted(range(len(scores)), key=lambda i: -scores[i])[:top])
    by_table = set(sorted(range(len(truths)), key=lambda i: -truths[i])[:top])
    return {
        "kendall_tau": float(kendalltau(scores, truths).statistic),
        "spearman": float(spearmanr(scores, truths).statistic),
        "top10_precision": len(by_score & by_table) / top,
        "members": float(len(scores)),
    }
