"""FLOP counting in the convention of the seed's tables.

The seed counted FLOPs the way fvcore does and doubled the result:
``2 x (MACs of convolutions and linear layers + 2 per batch-norm element + 1 per adaptive-pooled
element)``, in eval mode. Convolution and matrix FLOPs come from PyTorch's own ``FlopCounterMode``
(which already reports 2 x MACs); batch norm and adaptive pooling are added through its
``custom_mapping``. Runs on meta tensors, so counting EfficientNet-B7 allocates nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def _batch_norm_flops(input_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * 2 * math.prod(input_shape)  # fvcore: 2 per element in eval mode; doubled


def _spatial_mean_flops(input_shape: Any, dims: Any = None, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    # adaptive_avg_pool2d(x, 1) reaches the dispatcher as mean over the two spatial dims.
    spatial = {len(input_shape) - 2, len(input_shape) - 1, -1, -2}
    if dims is None or len(input_shape) < 3 or not set(dims) <= spatial:
        return 0
    return 2 * math.prod(input_shape)


def _adaptive_pool_flops(input_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * math.prod(input_shape)


_SEED_EXTRAS = {
    aten._native_batch_norm_legit_no_training: _batch_norm_flops,
    aten._native_batch_norm_legit: _batch_norm_flops,
    aten.native_batch_norm: _batch_norm_flops,
    aten.mean: _spatial_mean_flops,
    aten._adaptive_avg_pool2d: _adaptive_pool_flops,
}


@dataclass(frozen=True)
class FlopCount:
    """``total``: the seed's convention; ``macs``: convolution/linear multiply-accumulates."""

    total: int
    macs: int
    per_module: dict[str, int] = field(default_factory=dict)


def flop_counter() -> FlopCounterMode:
    """A ``FlopCounterMode`` that counts the seed's convention; run a forward under it (it may be
    stacked with other dispatch modes, as ``backbones pick`` does with the predictor's trace), then
    read the figures with :func:`read_counter`."""
    # torch annotates ``depth`` as int, but its get_table() takes None as "every depth".
    return FlopCounterMode(display=False, depth=None, custom_mapping=_SEED_EXTRAS)  # type: ignore[arg-type]


def read_counter(counter: FlopCounterMode) -> FlopCount:
    """The figures ``counter`` (:func:`flop_counter`) counted."""
    counts = counter.get_flop_counts()
    # One pass gives both figures: the seed's extras are separate ops, so 2 x MACs is the rest.
    extras = sum(flops for op, flops in counts.get("Global", {}).items() if op in _SEED_EXTRAS)
    total = counter.get_total_flops()
    per_module = {name: sum(ops.values()) for name, ops in counts.items()}
    return FlopCount(total=total, macs=(total - extras) // 2, per_module=per_module)


def count_flops(model: nn.Module, x: Tensor) -> FlopCount:
    """FLOPs of one eval forward of ``model`` on ``x`` (meta tensors are fine)."""
    counter = flop_counter()
    was_training = model.training
    model.eval()
    try:
        with counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return read_counter(counter)
