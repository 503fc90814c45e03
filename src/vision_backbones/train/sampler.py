"""Order and seeds: a shuffled order per (seed, epoch), per-sample augmentation seeds, resumable loaders.

Determinism: the shuffled order is a function of (seed, epoch) and every sample's augmentation
is seeded from (seed, epoch, index), so an epoch is the same whatever the number of workers or
processes, and a run resumed from a mid-epoch checkpoint sees exactly the batches it had left
(the train loader saves its position in the checkpoint and skips what was already consumed).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

_SEED_MOD = 2**63 - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one sample in one epoch."""
    return ((seed * 1_000_003 + epoch) * 10_000_019 + index) % _SEED_MOD


@contextlib.contextmanager
def seeded_cpu_rng(seed: int) -> Iterator[None]:
    """Run a block with the CPU generator seeded, then restore it.

    (``torch.manual_seed`` also queues seeds for every accelerator backend, with a stack trace
    each: milliseconds per call, too slow per image.)
    """
    generator = torch.default_generator
    state = generator.get_state()
    generator.manual_seed(seed)
    try:
        yield
    finally:
        generator.set_state(state)


class ResumableSampler(Sampler):
    """Shuffled per (seed, epoch), split across ranks, able to skip what a resumed run already saw.

    Yields ``(augmentation_seed, index)`` pairs (``with_seeds=True``) or plain indices. Rank ``r``
    of ``w`` takes positions ``r, r + w, ...`` of the epoch's order, so with the same global batch
    the union of the ranks' batches is the single-process batch.
    """

    def __init__(
        self, size: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1, with_seeds: bool = True
    ) -> None:
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.with_seeds = with_seeds
        self.epoch = 0
        self._skip: tuple[int, int] | None = None  # (epoch, samples of this rank to skip)

    def __len__(self) -> int:
        return math.ceil(self.size / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume(self, epoch: int, samples_done: int) -> None:
        if samples_done >= len(self):
            self.epoch, self._skip = epoch + 1, None
        else:
            self.epoch, self._skip = epoch, (epoch, samples_done)

    def order(self, epoch: int) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(sample_seed(self.seed, epoch, -1))
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        padded = len(self) * self.world_size
        order += order[: padded - len(order)]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[Any]:
        epoch = self.epoch
        start = 0
        if self._skip is not None and self._skip[0] == epoch:
            start = self._skip[1]
        self._skip = None
        for index in self.order(epoch)[start:]:
            yield (sample_seed(self.seed, epoch, index), index) if self.with_seeds else index


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position is saved in Lightning checkpoints (``state_dict`` / ``load_state_dict``)."""

    def __init__(self, *args: Any, batches_done: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches_done = batches_done

    def _resumable_sampler(self) -> ResumableSampler:
        if not isinstance(self.sampler, ResumableSampler):
            raise TypeError(f"ResumableDataLoader needs a ResumableSampler, got {type(self.sampler).__name__}")
        return self.sampler

    def state_dict(self) -> dict[str, int]:
        done = self.batches_done() if self.batches_done is not None else 0
        return {"epoch": int(self._resumable_sampler().epoch), "samples_done": int(done * (self.batch_size or 1))}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resumable_sampler().resume(int(state["epoch"]), int(state["samples_done"]))
