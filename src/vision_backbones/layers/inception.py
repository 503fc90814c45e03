"""Pieces shared by the Inception family: GoogLeNet, BN-Inception, Inception v3, v4 and Inception-ResNet-v2.

The Inception module (``Branches``) runs several conv / pool branches on one input and concatenates
their outputs; ``inception_stage`` wraps a downsample (pool or reduction block) and the blocks after
it into one feature level. The stems are shared as the references share them: GoogLeNet and
BN-Inception open with ``googlenet_stem``, Inception v3, v4 and Inception-ResNet-v2 with ``stem_convs``
(v3 and Inception-ResNet-v2 then ``stem_stride4``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, NamedTuple, cast

import torch
from torch import Tensor, nn

from vision_backbones.layers.conv import ConvNormAct


class BasicConv(ConvNormAct):
    """Conv (no bias) -> batch norm with eps 1e-3 (Google's checkpoints) -> ReLU.

    ``kernel_size`` may be asymmetric (``(1, 7)``); padding is "same" unless given (Inception's
    stride-2 and stem convs use ``padding=0``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 1,
        *,
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
    ) -> None:
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kh // 2, kw // 2) if padding is None else padding,
            norm_layer=partial(nn.BatchNorm2d, eps=1e-3),
        )


class Branches(nn.Module):
    """The Inception module: every branch runs on the same input, outputs concatenated on channels.

    A branch is a conv, an ``nn.Sequential`` or a parameter-free pool; a pool passes the input
    channels through. ``out_channels`` is the sum over branches.
    """

    def __init__(self, in_channels: int, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.out_channels = sum(_out_channels(branch, in_channels) for branch in branches)

    def concat(self, x: Tensor) -> Tensor:
        outputs: list[Tensor] = []
        for branch in self.branches:
            outputs.append(branch(x))  # (B, C_i, H', W'), equal H', W' in every branch
        return torch.cat(outputs, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.concat(x)


def _out_channels(branch: nn.Module, in_channels: int) -> int:
    if hasattr(branch, "out_channels"):  # a conv (ConvNormAct is itself a Sequential) or nested Branches
        return cast(int, branch.out_channels)
    if isinstance(branch, nn.Sequential):
        return _out_channels(branch[-1], in_channels)
    return in_channels  # a pool passes the input channels through


def pool_proj(in_channels: int, out_channels: int, *, count_include_pad: bool) -> nn.Sequential:
    """The pooling branch: 3x3/1 average pool -> 1x1 conv (v3 counts the zero padding, v4 does not)."""
    pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=count_include_pad)
    return nn.Sequential(pool, BasicConv(in_channels, out_channels, 1))


def split_1x3_3x1(in_channels: int, out_channels: int) -> Branches:
    """Inception v3's expanded filter bank: parallel 1x3 and 3x1 convs on one input, concatenated."""
    return Branches(
        in_channels, BasicConv(in_channels, out_channels, (1, 3)), BasicConv(in_channels, out_channels, (3, 1))
    )


def inception_stage(downsample: nn.Module, blocks: Sequence[nn.Module], conv: nn.Module | None = None) -> nn.Sequential:
    """One feature level: halve the resolution (pool or reduction block), blocks, optional final conv."""
    parts: dict[str, nn.Module] = {"downsample": downsample, "blocks": nn.Sequential(*blocks)}
    if conv is not None:
        parts["conv"] = conv
    return nn.Sequential(OrderedDict(parts))


def chain(in_channels: int, blocks: Iterable[Callable[[int], nn.Module]]) -> tuple[list[nn.Module], int]:
    """Build ``blocks`` one after another, each on the last one's output: ``(modules, out_channels)``."""
    modules: list[nn.Module] = []
    for block in blocks:
        modules.append(block(in_channels))
        in_channels = cast(int, modules[-1].out_channels)  # every Inception block sets out_channels
    return modules, in_channels


def googlenet_stem(in_channels: int, channels: tuple[int, int, int], pool: nn.Module) -> list[nn.Module]:
    """GoogLeNet's and BN-Inception's first two levels: 7x7/2 conv | ``pool``, 1x1 reduce, 3x3 conv."""
    c1, c2, c3 = channels
    return [
        BasicConv(in_channels, c1, 7, stride=2),  # 224 -> 112
        inception_stage(pool, [BasicConv(c1, c2, 1), BasicConv(c2, c3, 3)]),
    ]


def stem_convs(in_channels: int) -> nn.Sequential:
    """Inception v3's, v4's and Inception-ResNet-v2's stride-2 level: 299 -> 149 -> 147 -> 147."""
    return nn.Sequential(
        BasicConv(in_channels, 32, 3, stride=2, padding=0),
        BasicConv(32, 32, 3, padding=0),
        BasicConv(32, 64, 3),
    )


def stem_stride4(in_channels: int) -> nn.Sequential:
    """Inception v3's and Inception-ResNet-v2's stride-4 level: max pool, 1x1 80, valid 3x3 192: 147 -> 73 -> 71."""
    return inception_stage(nn.MaxPool2d(3, stride=2), [BasicConv(in_channels, 80, 1), BasicConv(80, 192, 3, padding=0)])


class TransformInput(nn.Module):
    """ImageNet mean/std-normalised input -> the [-1, 1] scaling Google's checkpoints were trained on."""

    if TYPE_CHECKING:  # the buffers registered in __init__; a runtime annotation would be a string TorchScript rejects
        scale: Tensor
        shift: Tensor

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
        # (x * std + mean - 0.5) / 0.5: undo the ImageNet normalisation, then map [0, 1] to [-1, 1].
        # Constants in float64, rounded once, as torchvision's Python floats are.
        self.register_buffer("scale", (std / 0.5).float(), persistent=False)
        self.register_buffer("shift", ((mean - 0.5) / 0.5).float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


def input_transform(transform_input: bool, in_channels: int) -> nn.Module:
    """The stem module: ``TransformInput`` (RGB input only) when asked for, else ``nn.Identity``."""
    if not transform_input:
        return nn.Identity()
    if in_channels != 3:
        raise ValueError(f"transform_input=True needs in_channels=3 (RGB), got in_channels={in_channels}")
    return TransformInput()


# What a classifier with auxiliary heads returns in training mode (eval mode gives plain logits):
# ``logits`` and ``aux_logits``, shallowest head first. Functional form so that TorchScript sees real
# types (``from __future__ import annotations`` would leave strings in a class body).
InceptionOutputs = NamedTuple("InceptionOutputs", [("logits", Tensor), ("aux_logits", list[Tensor])])  # noqa: UP014
