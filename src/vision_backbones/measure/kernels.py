"""A network as the kernels the runtime runs: one meta-device trace, its ops typed and featurized.

nn-Meter (Zhang et al., MobiSys 2021, https://github.com/microsoft/nn-Meter) predicts a network's latency
as the sum of its *kernels*, each predicted by a regressor of its kernel type. Here the kernels come from
one forward on the meta device under a ``TorchDispatchMode``: every ATen op the forward dispatches, with
its input shapes and strides and its non-tensor arguments (stride, padding, groups, ...). Costless ops
(views, allocations) are dropped; each remaining op gets a kernel type (``conv``, ``dwconv``, ``bn``,
``unary``, ...) and a numeric feature vector its type's regressor reads. An op can be *replayed* on real
tensors of the recorded shapes, which is how a kernel's latency is measured on this machine, and which
runtime ops fuse is decided by measuring chains of replayed ops (:mod:`.predictor`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

# ops that move no data on the meta trace: views and the allocations of a meta batch norm
FREE_OPS = frozenset(
    {
        "empty", "empty_like", "empty_strided", "view", "_unsafe_view", "t", "transpose", "permute", "expand",
        "squeeze", "unsqueeze", "split", "split_with_sizes", "slice", "select", "detach", "alias", "as_strided",
        "unbind", "chunk", "lift_fresh", "_reshape_alias", "as_strided_",
    }
)  # fmt: skip
UNARY = (
    "relu", "relu_", "hardtanh", "hardtanh_", "silu", "silu_", "hardswish", "hardswish_", "hardsigmoid",
    "hardsigmoid_", "sigmoid", "sigmoid_", "gelu", "leaky_relu", "leaky_relu_", "elu", "elu_", "tanh",
    "clamp", "clamp_", "clamp_min", "clamp_min_", "mul_scalar", "add_scalar", "div_scalar", "softmax",
)  # fmt: skip
BINARY = ("add", "add_", "mul", "mul_", "sub", "sub_", "div", "div_")
POOLS = ("max_pool2d_with_indices", "max_pool2d", "avg_pool2d", "_adaptive_avg_pool2d", "adaptive_avg_pool2d", "mean")
KERNEL_TYPES = (
    "conv",
    "dwconv",
    "gconv",
    "linear",
    "bn",
    "ln",
    "unary",
    "binary",
    "pool",
    "cat",
    "copy",
    "pad",
    "other",
)


@dataclass(frozen=True)
class TensorSpec:
    """What a replay needs of a tensor argument: its shape, strides and dtype."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Op:
    """One dispatched ATen op: ``name`` (``aten.convolution.default``), its arguments with tensors as
    :class:`TensorSpec`, its output spec, and the trace indices of the ops that produced its inputs."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: TensorSpec | None
    producers: tuple[int, ...] = ()
    consumers: list[int] = field(default_factory=list)

    @property
    def short(self) -> str:
        """``convolution``, ``relu_``, ``add`` (the overload and the namespace left out)."""
        return self.name.split(".")[1]

    @property
    def tensors(self) -> list[TensorSpec]:
        return [a for a in tree_flatten((self.args, self.kwargs))[0] if isinstance(a, TensorSpec)]

    def key(self) -> str:
        """Ops with the same key run the same kernel on the same data sizes."""
        return f"{self.name}{self.args}{sorted(self.kwargs.items())}"


def _spec(tensor: Tensor) -> TensorSpec:
    return TensorSpec(tuple(tensor.shape), tuple(tensor.stride()), str(tensor.dtype).removeprefix("torch."))


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[Op] = []
        self.producer: dict[int, int] = {}  # id(output tensor) -> index of the op that made it
        self.alive: list[Any] = []  # keep outputs alive so their ids stay unique

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = str(func)
        short = name.split(".")[1]
        inputs = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, Tensor)]
        first_out = next((t for t in tree_flatten(out)[0] if isinstance(t, Tensor)), None)
        sources = tuple(dict.fromkeys(self.producer[id(t)] for t in inputs if id(t) in self.producer))
        if short in FREE_OPS:
            # a view passes its producer on: the op reading it consumes the op that made the data
            for t in tree_flatten(out)[0]:
                if isinstance(t, Tensor) and sources:
                    self.producer[id(t)] = sources[0]
            self.alive.append(out)
            return out
        spec_args = tree_map(lambda a: _spec(a) if isinstance(a, Tensor) else a, args)
        spec_kwargs = tree_map(lambda a: _spec(a) if isinstance(a, Tensor) else a, kwargs)
        op = Op(name, spec_args, spec_kwargs, _spec(first_out) if first_out is not None else None, sources)
        index = len(self.ops)
        self.ops.append(op)
        for source in sources:
            self.ops[source].consumers.append(index)
        for t in tree_flatten(out)[0]:
            if isinstance(t, Tensor):
                self.producer[id(t)] = index  # an in-place op becomes the producer of its tensor
        self.alive.append(out)
        return out


def meta_copy(model: nn.Module) -> nn.Module:
    """``model`` itself when its weights are on the meta device, else a meta copy (no data copied)."""
    first = next(iter(model.parameters()), None)
    if first is not None and first.is_meta:
        return model
    import copy

    return copy.deepcopy(model).to("meta")


@torch.no_grad()
def trace_ops(model: nn.Module, input_shape: Sequence[int]) -> list[Op]:
    """The costly ATen ops of one eval-mode forward of ``model`` on an input of ``input_shape``, in
    order, with their producers and consumers (the forward runs on a meta copy: no compute)."""
    meta = meta_copy(model)
    was_training = meta.training
    meta.eval()
    recorder = _Recorder()
    try:
        with recorder:
            meta(torch.empty(*input_shape, device="meta"))
    finally:
        meta.train(was_training)
    return recorder.ops


def kernel_type(op: Op) -> str:
    """The regressor an op belongs to (:data:`KERNEL_TYPES`)."""
    short = op.short
    if short == "convolution":
        groups, in_channels = op.args[8], op.args[0].shape[1]
        if groups == 1:
            return "conv"
        return "dwconv" if groups == in_channels == op.args[1].shape[0] else "gconv"
    if short in ("addmm", "mm", "bmm", "linear", "matmul"):
        return "linear"
    if short in ("native_batch_norm", "_native_batch_norm_legit_no_training", "batch_norm"):
        return "bn"
    if short in ("native_layer_norm", "layer_norm", "native_group_norm"):
        return "ln"
    if short in BINARY:
        tensors = [a for a in op.args[:2] if isinstance(a, TensorSpec)]
        return "binary" if len(tensors) == 2 else "unary"
    if short in UNARY:
        return "unary"
    if short in POOLS:
        return "pool"
    if short == "cat":
        return "cat"
    if short in ("clone", "copy_", "_to_copy", "contiguous"):
        return "copy"
    if short in ("constant_pad_nd", "pad"):
        return "pad"
    return "other"


def _unary_name(op: Op) -> str:
    short = op.short.rstrip("_")
    if short in ("mul", "add", "div"):
        return f"{short}_scalar"
    return short


def features(op: Op) -> list[float]:
    """The numbers a kernel type's regressor reads (same length within a type)."""
    kind = kernel_type(op)
    out = op.output.numel if op.output is not None else 0
    tensors = op.tensors
    if kind in ("conv", "dwconv", "gconv"):
        x, w = op.args[0], op.args[1]
        stride, padding, dilation, groups = op.args[3][0], op.args[4][0], op.args[5][0], op.args[8]
        flops = out * w.numel // max(1, w.shape[0]) if op.output is not None else 0
        return [
            x.shape[1], w.shape[0], x.shape[2], x.shape[-1], w.shape[2], w.shape[-1], stride, padding, dilation,
            groups, flops, x.numel, out, w.numel, float(op.args[2] is not None),
        ]  # fmt: skip
    if kind == "linear":
        a, b = (tensors[-2], tensors[-1]) if len(tensors) >= 2 else (tensors[0], tensors[0])
        rows = math.prod(a.shape[:-1])
        inner, cols = a.shape[-1], b.shape[-1]
        return [rows, inner, cols, rows * inner * cols, out]
    if kind in ("bn", "ln"):
        x = tensors[0]
        return [
            x.numel,
            x.shape[1] if len(x.shape) > 1 else 1,
            x.numel // max(1, x.shape[1] if len(x.shape) > 1 else 1),
        ]
    if kind == "unary":
        names = [n.rstrip("_") for n in UNARY if not n.endswith("_")]
        name = _unary_name(op)
        contiguous = float(tensors[0].stride == _contiguous_stride(tensors[0].shape)) if tensors else 1.0
        return [tensors[0].numel if tensors else out, contiguous, *(float(name == n) for n in names)]
    if kind == "binary":
        a, b = tensors[0], tensors[1]
        return [out, a.numel, b.numel, float(a.numel != b.numel), float(op.short.endswith("_"))]
    if kind == "pool":
        x = tensors[0]
        window = op.args[1] if len(op.args) > 1 and isinstance(op.args[1], (list, tuple)) else [1]
        return [x.numel, out, x.shape[1] if len(x.shape) > 1 else 1, window[0], *(float(op.short == p) for p in POOLS)]
    if kind == "cat":
        return [out, len(tensors)]
    return [sum(t.numel for t in tensors), out]


def _contiguous_stride(shape: Sequence[int]) -> tuple[int, ...]:
    stride, strides = 1, []
    for size in reversed(shape):
        strides.append(stride)
        stride *= max(size, 1)
    return tuple(reversed(strides))


def _real(spec: TensorSpec, generator: torch.Generator) -> Tensor:
    dtype = getattr(torch, spec.dtype)
    size = sum((s - 1) * st for s, st in zip(spec.shape, spec.stride)) + 1 if spec.shape else 1
    if dtype.is_floating_point:
        storage = torch.rand(size, generator=generator, dtype=dtype) + 0.5  # positive: a valid running_var
    else:
        storage = torch.zeros(size, dtype=dtype)
    return storage.as_strided(spec.shape, spec.stride)


def replay(op: Op, seed: int = 0) -> Callable[[], object]:
    """A call that runs ``op`` on fresh real tensors of its recorded shapes (for timing)."""
    import torch._ops

    generator = torch.Generator().manual_seed(seed)
    overload: Any = torch.ops.aten
    for part in op.name.split(".")[1:]:
        overload = getattr(overload, part)
    args = tree_map(lambda a: _real(a, generator) if isinstance(a, TensorSpec) else a, op.args)
    kwargs = tree_map(lambda a: _real(a, generator) if isinstance(a, TensorSpec) else a, op.kwargs)
    return lambda: overload(*args, **kwargs)
