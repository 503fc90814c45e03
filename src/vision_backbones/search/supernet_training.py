"""Training a supernet epoch by epoch so that a kill costs at most one epoch, and scoring its paths.

``SupernetTrainer.train_epoch`` is the resumable unit: its ``state_dict`` holds the supernet's
weights, the optimizer's moments, the path sampler's and the shuffler's generators, torch's global
generator (dropout) and the epochs done, all loadable with ``torch.load(weights_only=True)``. A
trainer restored from the state after epoch ``e`` trains epoch ``e + 1`` exactly as the uninterrupted
one does (same paths, same batches, same learning rate), so a resumed training ends with the same
weights. The learning rate follows ``evaluate.warmup_cosine`` over all epochs, set by step number
rather than by a scheduler object, so nothing but the step count has to be restored.

``path_accuracy`` scores one path with the shared weights after recomputing its batch-norm
statistics (the statistics a supernet collected mix many paths), so a path's score does not depend
on which paths were scored before it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
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
    recompute_statistics,
    task_splits,
    training_batches,
    warmup_cosine,
)
from vision_backbones.search.rng import rng_state, set_rng_state
from vision_backbones.search.supernet import Supernet, fair_paths
from vision_backbones.validate import check_choice, check_int

SAMPLINGS = ("uniform", "fair")


class SupernetTrainer:
    """Trains ``supernet`` on ``task``'s training split for ``epochs`` epochs, one resumable epoch at a time.

    ``sampling="uniform"`` (default) is SPOS: one uniformly drawn path per batch, one optimizer step.
    ``"fair"`` is FairNAS's strict fairness (Chu et al., https://arxiv.org/abs/1907.01845): per batch
    one path per operation, so that every layer runs every operation once, gradients summed, then one
    step, at the price of one forward/backward per operation. Either way every operation and depth is
    sampled equally often, so training favours no choice, skip included. Measured on MNIST
    (benchmarks/search_evaluators.md): with six operations per layer neither left chance loss within a
    few hundred steps, while a depth-only supernet reached 1.32 after 2 epochs, as a stand-alone
    network does.
    """

    def __init__(
        self, supernet: Supernet, task: ProxyTask, *, epochs: int, seed: int = 0, sampling: str = "uniform"
    ) -> None:
        check_int("epochs", epochs, min=1)
        check_int("seed", seed, min=0)
        check_choice("sampling", sampling, SAMPLINGS)
        self.supernet, self.task, self.epochs, self.sampling = supernet, task, epochs, sampling
        self.rng = random.Random(seed)  # paths
        self.generator = torch.Generator().manual_seed(seed)  # shuffling
        self.optimizer = make_optimizer(supernet, task)
        self.epoch = 0
        self.losses: list[float] = []
        if task.channels_last:
            supernet.to(memory_format=torch.channels_last)

    @property
    def done(self) -> bool:
        return self.epoch >= self.epochs

    def _paths(self) -> list[tuple[int, ...]]:
        space = self.supernet.space
        return fair_paths(space, self.rng) if self.sampling == "fair" else [space.random_indices(self.rng)]

    def train_epoch(self) -> float:
        """Train one epoch; returns its mean loss."""
        task, supernet = self.task, self.supernet
        splits = task_splits(task)
        batches = training_batches(splits.train, task.batch_size, self.generator)
        total = len(batches) * self.epochs
        supernet.train()
        epoch_loss = 0.0
        with num_threads(task.threads):
            for number, (images, labels) in enumerate(batches):
                for group in self.optimizer.param_groups:
                    group["lr"] = task.lr * warmup_cosine(self.epoch * len(batches) + number, total)
                self.optimizer.zero_grad(set_to_none=True)
                paths = self._paths()
                for path in paths:
                    supernet.set_path(path)
                    loss = F.cross_entropy(supernet(images), labels, label_smoothing=task.label_smoothing)
                    if not math.isfinite(loss.item()):
                        raise FloatingPointError(
                            f"supernet loss became {float(loss)}; expected a finite loss (lower lr={task.lr:g}?)"
                        )
                    (loss / len(paths)).backward()
                    epoch_loss += loss.item() / len(paths)
                self.optimizer.step()
        self.epoch += 1
        self.losses.append(epoch_loss / len(batches))
        return self.losses[-1]

    def state_dict(self) -> dict[str, Any]:
        return {
            "supernet": self.supernet.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(self.rng),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "losses": list(self.losses),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.supernet.load_state_dict(state["supernet"])
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(self.rng, state["rng"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch = int(state["epoch"])
        self.losses = [float(loss) for loss in state["losses"]]


def path_accuracy(
    supernet: Supernet, indices: Sequence[int], task: ProxyTask, *, splits: ProxySplits | None = None, seed: int = 0
) -> float:
    """Validation top-1 (percent) of the member ``indices`` with the shared weights, batch-norm statistics recomputed for it."""
    splits = splits or task_splits(task)
    supernet.set_path(indices)
    # task.threads (1): on a shared machine a second intra-op thread can make small convs 5-30x slower
    with num_threads(task.threads), torch.no_grad():
        recompute_statistics(supernet, splits, replace(task, bn_batches=max(1, task.bn_batches)), seed=seed)
        return accuracy(supernet, splits.val, batch_size=task.eval_batch_size)
