"""Fast meta-device kernels: every shape probe, FLOP count and kernel trace runs on meta tensors.

PyTorch's meta kernels for batch norm, layer norm, ``addmm``, several activations, ``empty_like``
and the random fills of weight initialisation are Python decompositions into prims that cost 0.7-3 ms
a call (resnet50's meta forward: 0.10 s, 60 % of it batch norm; ``backbones pick`` over the zoo runs
three meta forwards per model), where a convolution costs 30 us. The kernels registered here give the
same outputs (shape, strides, dtype; the saved statistics as the CPU kernels shape them) and the same
channel checks in tens of microseconds. They change nothing but meta tensors, and only their speed:
dispatch modes above the kernel (``FlopCounterMode``, the predictor's op recorder) still see every
op. :func:`register` is idempotent.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

_LIBRARY: torch.library.Library | None = None

UNARY = ("relu", "hardtanh", "hardswish", "hardsigmoid", "gelu")  # out-of-place: a new tensor like the input
UNARY_INPLACE = ("hardtanh_", "hardswish_", "hardsigmoid_", "gelu_", "normal_", "uniform_")  # the input itself


def empty_like(tensor: Tensor, device: torch.device | str | None = None) -> Tensor:
    """``torch.empty_like(tensor, device=device)`` without its meta-device cost (a Python reference
    of 0.7 ms a call; an allocation with the tensor's own strides costs 8 us), for every tensor laid
    out densely in standard or channels-last order; any other layout goes to ``torch.empty_like``."""
    if tensor.is_contiguous() or (tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last)):
        where = tensor.device if device is None else device
        return torch.empty_strided(tensor.shape, tensor.stride(), dtype=tensor.dtype, device=where)
    return torch.empty_like(tensor, device=device)


def _check(input: Tensor, *tensors: Tensor | None) -> int:
    if input.dim() < 2:
        raise RuntimeError(f"batch norm expects an input of at least 2 dimensions, got shape {tuple(input.shape)}")
    channels = int(input.shape[1])
    for tensor in tensors:
        if tensor is not None and tensor.numel() != channels:
            raise RuntimeError(
                f"batch norm: a weight, bias or running statistic has {tensor.numel()} elements, "
                f"expected {channels} (the input's channels)"
            )
    return channels


def _native_batch_norm(
    input: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
    running_var: Tensor | None, training: bool, momentum: float, eps: float,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    channels = _check(input, weight, bias, running_mean, running_var)
    saved = (channels,) if training else (0,)
    return empty_like(input), input.new_empty(saved), input.new_empty(saved)


def _no_training(
    input: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor, running_var: Tensor,
    momentum: float, eps: float,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    _check(input, weight, bias, running_mean, running_var)
    return empty_like(input), input.new_empty((0,)), input.new_empty((0,))


def _native_layer_norm(
    input: Tensor, normalized_shape: list[int], weight: Tensor | None, bias: Tensor | None, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    axis = input.dim() - len(normalized_shape)
    if axis < 0 or list(input.shape[axis:]) != list(normalized_shape):
        raise RuntimeError(
            f"layer norm: normalized_shape {list(normalized_shape)} does not end the input's shape {list(input.shape)}"
        )
    for tensor in (weight, bias):
        if tensor is not None and list(tensor.shape) != list(normalized_shape):
            raise RuntimeError(
                f"layer norm: a weight or bias of shape {list(tensor.shape)}, expected {list(normalized_shape)}"
            )
    stats = tuple(input.shape[:axis]) + (1,) * len(normalized_shape)
    return input.new_empty(input.shape), input.new_empty(stats), input.new_empty(stats)


def _addmm(bias: Tensor, mat1: Tensor, mat2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    if mat1.dim() != 2 or mat2.dim() != 2 or mat1.shape[1] != mat2.shape[0]:
        raise RuntimeError(f"addmm: cannot multiply shapes {list(mat1.shape)} and {list(mat2.shape)}")
    return mat1.new_empty((mat1.shape[0], mat2.shape[1]))


def _unary(input: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    return empty_like(input)


def _unary_inplace(input: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    return input


def register() -> None:
    """Put the fast kernels on the Meta dispatch key (once per process)."""
    global _LIBRARY
    if _LIBRARY is not None:
        return
    library = torch.library.Library("aten", "IMPL")
    library.impl("native_batch_norm", _native_batch_norm, "Meta")
    library.impl("_native_batch_norm_legit_no_training", _no_training, "Meta")
    library.impl("native_layer_norm", _native_layer_norm, "Meta")
    library.impl("addmm", _addmm, "Meta")
    for name in UNARY:
        library.impl(name, _unary, "Meta")
    for name in UNARY_INPLACE:
        library.impl(name, _unary_inplace, "Meta")
    _LIBRARY = library
