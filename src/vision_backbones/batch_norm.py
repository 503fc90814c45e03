"""Batch-norm statistics recomputed over training data ("precise BN").

The survey's Inception-v2 note: at inference a batch norm should normalise with statistics of the
whole training set, not with the exponential moving average that training leaves behind. The moving
average lags behind weights that are still changing, and with a momentum as small as MnasNet's
TensorFlow port (``1 - 0.9997``) a short run leaves it almost at its initial 0 / 1. Weight-sharing
search needs it for another reason: the statistics a supernet collected belong to a mix of paths,
so each sampled sub-network gets its own, recomputed on a few training batches (Guo et al., SPOS,
https://arxiv.org/abs/1904.00420, section 3.3).

``recompute_batch_norm_statistics`` resets every batch norm that tracks statistics, sets its
momentum to ``None`` (PyTorch's cumulative moving average: after ``n`` batches the running mean is
the plain mean of the ``n`` batch means), runs the batches without gradients, then restores the
momenta and each module's train/eval flag. Only the batch norms are put in training mode: dropout
and drop-path stay off, so the statistics are those of the activations seen at inference (Wu &
Johnson, "Rethinking 'Batch' in BatchNorm", https://arxiv.org/abs/2105.07576). That is also why
``torch.optim.swa_utils.update_bn`` is not used: it puts the whole model in training mode (dropout
on), has no batch limit, and goes through ``model.train()``, which a backbone with ``norm_eval``
overrides to keep its batch norms frozen.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from vision_backbones.validate import check_int

_BatchNorm = nn.modules.batchnorm._BatchNorm
ModelT = TypeVar("ModelT", bound=nn.Module)


def batch_norms(model: nn.Module) -> list[_BatchNorm]:
    """The batch norms of ``model`` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def _statistics(norm: _BatchNorm) -> tuple[Tensor, Tensor, Tensor]:
    """``(running_mean, running_var, num_batches_tracked)`` of a batch norm that tracks them."""
    return norm.running_mean, norm.running_var, norm.num_batches_tracked  # type: ignore[return-value]


@contextlib.contextmanager
def running_stats_restored(module: nn.Module) -> Iterator[None]:
    """Batch norms run exactly as in the block, then get their running statistics back.

    Gradient checkpointing recomputes a stage in the backward pass; run inside this, the recomputation
    does not count the batch twice in the running statistics.
    """
    norms = batch_norms(module)
    saved = [[b.clone() for b in _statistics(n)] for n in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for norm, values in zip(norms, saved):
                for buffer, value in zip(_statistics(norm), values):
                    buffer.copy_(value)


def _inputs(batch: Any) -> Tensor:
    """The input tensor of a batch: a tensor, the first item of ``(images, labels, ...)``, or ``["image"]``."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    if isinstance(batch, Mapping) and isinstance(batch.get("image"), Tensor):
        return batch["image"]
    raise ValueError(
        f"a batch must be a tensor, a (images, labels) pair or a mapping with 'image', got {type(batch).__name__}"
    )


@torch.no_grad()
def recompute_batch_norm_statistics(
    model: ModelT, batches: Iterable[Any], *, max_batches: int | None = None, device: torch.device | str | None = None
) -> ModelT:
    """Replace the running mean / variance of every batch norm of ``model`` by their average over ``batches``.

    Args:
        model: any module; its batch norms are updated in place (and it is returned).
        batches: tensors of inputs, or ``(inputs, labels)`` pairs such as a ``DataLoader`` yields.
        max_batches: use at most this many batches (``None``: all of them).
        device: move each input there first (default: the device of the model's first parameter).

    Raises ``ValueError`` when ``batches`` holds none.
    """
    if max_batches is not None:
        check_int("max_batches", max_batches, min=1)
        batches = itertools.islice(batches, max_batches)
    norms = batch_norms(model)
    if not norms:
        return model
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else None
    modes = {module: module.training for module in model.modules()}
    momenta = [norm.momentum for norm in norms]
    saved = [tuple(b.clone() for b in _statistics(n)) for n in norms]
    seen = 0
    try:
        for module in model.modules():
            module.training = isinstance(module, _BatchNorm)  # no dropout / drop path: inference activations
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the batches
        for batch in batches:
            inputs = _inputs(batch)
            model(inputs.to(device) if device is not None else inputs)
            seen += 1
        if seen == 0:
            raise ValueError("batches is empty; expected at least one batch of training inputs")
    except BaseException:
        for norm, values in zip(norms, saved):
            for buffer, value in zip(_statistics(norm), values):
                buffer.copy_(value)
        raise
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        for module, training in modes.items():
            module.training = training
    return model
