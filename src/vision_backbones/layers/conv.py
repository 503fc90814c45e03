"""Convolution -> normalization -> activation, the building brick of every family here."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.modules import module as module_internals

LayerFactory = Callable[..., nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never dropping more than 10 %.

    This is the rounding MobileNet and EfficientNet use for their width multipliers.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_pool_stem(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3/2 ``conv`` -> 3x3/2 max ``pool``: a stem that reaches stride 4 at once (ShuffleNet v1/v2)."""
    return nn.Sequential(
        OrderedDict(
            conv=ConvNormAct(in_channels, out_channels, 3, stride=2),
            pool=nn.MaxPool2d(3, stride=2, padding=1),
        )
    )


class ConvNormAct(nn.Sequential):
    """``conv`` (no bias) -> ``norm`` -> ``act``, with "same" padding for odd kernels.

    ``norm_layer=None`` gives a biased convolution without normalization; ``act_layer=None``
    leaves the activation out.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        *,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        padding: int | tuple[int, int] | None = None,
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory | None = nn.ReLU,
    ) -> None:
        if padding is None:
            if isinstance(kernel_size, int):
                padding = (kernel_size - 1) // 2 * dilation
            else:  # an asymmetric kernel, (kh, kw): "same" padding per dimension
                padding = ((kernel_size[0] - 1) // 2 * dilation, (kernel_size[1] - 1) // 2 * dilation)
        layers: dict[str, nn.Module] = {
            "conv": nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                groups=groups,
                dilation=dilation,
                bias=norm_layer is None,
            )
        }
        if norm_layer is not None:
            layers["norm"] = norm_layer(out_channels)
        if act_layer is not None:
            # In place, as torchvision and timm do: the activation's input is the fresh output of the
            # norm (or conv), which autograd does not keep, so overwriting it is safe and saves a copy.
            try:
                layers["act"] = act_layer(inplace=True)
            except TypeError:  # activations without an in-place form (Sigmoid, GELU, ...)
                layers["act"] = act_layer()
        super().__init__(OrderedDict(layers))
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride


_SEQUENTIAL_FORWARD = nn.Sequential.forward


def opened(container: nn.Module) -> tuple[nn.Module, ...]:
    """The children of a plain, unhooked ``nn.Sequential`` (for ``run_chain``), else ``(container,)``."""
    if type(container).forward is _SEQUENTIAL_FORWARD and not (
        container._forward_hooks
        or container._forward_pre_hooks
        or container._backward_hooks
        or container._backward_pre_hooks
    ):
        return tuple(container._modules.values())  # type: ignore[arg-type]
    return (container,)


@torch.jit.unused
def run_chain(x: Tensor, containers: tuple[nn.Module, ...]) -> Tensor:
    """``containers[-1](...containers[0](x))`` with each plain ``nn.Sequential`` (a ``ConvNormAct``)
    opened and its layers called here in one loop; unhooked ``nn.Identity`` placeholders are skipped.

    Why: every Python frame between two kernels costs microseconds in a real forward (the kernels
    evict the interpreter's code and data from the caches), far more than a warm microbenchmark
    shows. Torchvision's mobile blocks run one flat ``Sequential``; ours nest three ``ConvNormAct``s,
    and calling each as a module cost mnasnet0_5 ~3 % at 160 px batch 2 although torchvision's code
    run over our very layers is at parity (``benchmarks/parity_split.md``). This loop reads modules
    straight from ``_modules`` and calls nothing but the layers. A container with a hook, or any
    global forward hook, is called as a module, so hooks keep firing. Python only (TorchScript calls
    the modules).
    """
    if module_internals._global_forward_hooks or module_internals._global_forward_pre_hooks:
        for container in containers:
            x = container(x)
        return x
    for container in containers:
        # opened()'s hook test written out, not called: a call per container is a Python frame on the hot path.
        if (
            container._forward_hooks
            or container._forward_pre_hooks
            or container._backward_hooks
            or container._backward_pre_hooks
        ):
            x = container(x)
        elif type(container).forward is _SEQUENTIAL_FORWARD:
            for layer in container._modules.values():
                x = layer(x)  # type: ignore[misc]
        elif type(container) is not nn.Identity:
            x = container(x)
    return x
