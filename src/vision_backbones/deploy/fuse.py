"""A faster eval model: batch norm folded into the preceding convolution, the faster memory format.

Folding uses PyTorch's own ``fuse_conv_bn_eval`` on every conv directly followed by a batch norm in
the same container (``ConvNormAct`` and plain ``nn.Sequential`` blocks). The memory format is
measured on this machine, not assumed: channels_last speeds ResNets up on CPU and can slow
concatenation-heavy networks down.
"""

from __future__ import annotations

import copy
import functools
import itertools
import statistics
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from vision_backbones.measure.timing import time_calls


def _check_module(name: str, model: Any) -> None:
    if not isinstance(model, nn.Module):
        shown = repr(model) if len(repr(model)) <= 40 else repr(model)[:37] + "..."
        raise ValueError(
            f"{name} expects an nn.Module (a model from create_model), got {type(model).__name__} {shown}"
            + ("; build it first: create_model(name)" if isinstance(model, str) else "")
        )


def _check_sample(model: nn.Module, sample: Any) -> None:
    """An image batch ``(N, C, H, W)`` of the model's floating dtype (memory formats are defined for 4-D only)."""
    if not isinstance(sample, Tensor) or sample.dim() != 4:
        shape = tuple(sample.shape) if isinstance(sample, Tensor) else type(sample).__name__
        raise ValueError(f"sample must be a 4-D (N, C, H, W) image batch, got {shape}")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    if sample.dtype != dtype:
        raise ValueError(f"sample dtype {sample.dtype} differs from the model's {dtype}; expected sample.to({dtype})")


def fuse(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every ``conv -> batch norm`` pair folded into the conv."""
    _check_module("fuse", model)
    fused = copy.deepcopy(model).eval()
    for parent in fused.modules():
        if not isinstance(parent, nn.Sequential):  # only there does child order equal execution order
            continue
        names = list(parent._modules)
        for first, second in itertools.pairwise(names):
            conv, norm = parent._modules[first], parent._modules[second]
            if type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d and norm.track_running_stats:
                parent._modules[first] = fuse_conv_bn_eval(conv, norm)
                parent._modules[second] = nn.Identity()
    return fused


def choose_memory_format(
    model: nn.Module, sample: Tensor, *, repeats: int = 9, margin: float = 0.03
) -> torch.memory_format:
    """The memory format in which ``model`` runs ``sample`` faster here.

    channels_last is chosen only when its median time beats contiguous by more than ``margin``, so
    machine noise does not flip the choice between two equally fast layouts.
    """
    from vision_backbones.validate import check_float, check_int

    _check_module("choose_memory_format", model)
    _check_sample(model, sample)
    check_int("repeats", repeats, min=1)
    check_float("margin", margin, min=0.0, max=1.0, max_open=True)
    timings: dict[torch.memory_format, list[float]] = {torch.contiguous_format: [], torch.channels_last: []}
    candidates = {
        fmt: (copy.deepcopy(model).to(memory_format=fmt), sample.contiguous(memory_format=fmt)) for fmt in timings
    }
    with torch.inference_mode():
        for candidate, x in candidates.values():
            candidate(x)  # warm-up
        for _ in range(repeats):  # interleaved, so drifting machine load hits both alike
            for fmt, (candidate, x) in candidates.items():
                timings[fmt] += time_calls(functools.partial(candidate, x), repeats=1, warmup=0)
    contiguous, channels_last = (
        statistics.median(timings[fmt]) for fmt in (torch.contiguous_format, torch.channels_last)
    )
    return torch.channels_last if channels_last < contiguous * (1.0 - margin) else torch.contiguous_format


def optimize_for_inference(
    model: nn.Module, sample: Tensor, *, compile: bool = False
) -> tuple[nn.Module, torch.memory_format]:
    """``fuse`` + the measured faster memory format (+ ``torch.compile`` if asked).

    Returns the model and the memory format its inputs should use.
    """
    fused = fuse(model)
    memory_format = choose_memory_format(fused, sample)
    fused = fused.to(memory_format=memory_format)
    if compile:
        # torch.compile of a Module returns an OptimizedModule (a Module); torch types it as a callable
        fused = cast(nn.Module, torch.compile(fused))
    return fused, memory_format
