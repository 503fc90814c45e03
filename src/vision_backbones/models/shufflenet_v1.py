"""ShuffleNet (v1).

Paper: "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices"
(Zhang, Zhou, Lin, Sun; CVPR 2018), https://arxiv.org/abs/1707.01083

The idea: in small networks the dense 1x1 convs dominate the cost, so make them *group*
convolutions; then, so that each group does not only ever see its own inputs, *shuffle* the channels
between groups (``layers.channel_shuffle``: reshape to ``(groups, C/groups)``, transpose, flatten).
The unit (``ShuffleV1Block``, Fig. 2) is a ResNet bottleneck made of
``1x1 group conv -> shuffle -> 3x3 depthwise (no ReLU) -> 1x1 group conv (no ReLU)`` with a quarter of
the unit's output channels in the bottleneck; the downsampling unit averages the shortcut with a
3x3/2 pool and *concatenates* it with the branch instead of adding. Stage 2's first 1x1 conv is not
grouped: its input (24 channels) is too narrow.

Variants (``shufflenet_v1_g{groups}_x{s}``) come from Table 1: stage 2's output channels per group
count at 1x, doubled at each later stage; "ShuffleNet s x" multiplies every stage width by
``width_multiplier = s``. The bottleneck (a quarter of a unit's width) is rounded to a multiple of
``groups`` where it does not split (2 or 4 groups at 0.5x and 1.5x: 25 -> 26, 34 -> 36, ...); the
stem widths are the authors' (not scaled: 24 at 1.5x).
The whole networks' mult-adds land within 2 % of Tables 1 and 5 (``tests/test_shufflenet_v1.py``).

Levels (as ShuffleNet V2): the stem (3x3/2 conv, 3x3/2 max pool) reaches stride 4 in one go, so the
network has no stride-2 level of its own: ``stages[0]`` is the stem at stride 4; ``stages[1..3]``
the three shuffle stages (strides 8, 16, 32). ``output_stride`` 16 or 8 runs the last stages'
strided depthwise convs and shortcut pools at stride 1 and dilates the depthwise convs after them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import (
    ConvNormAct,
    DropPath,
    channel_shuffle,
    conv_pool_stem,
    drop_path_rates,
    make_divisible,
)
from vision_backbones.registry import register_family
from vision_backbones.validate import check_float, check_int, check_ints, check_rate


class ShuffleV1Block(nn.Module):
    """``relu(x + branch(x))``, or ``relu(cat(avgpool(x), branch(x)))`` when strided.

    ``branch``: 1x1 group conv (``first_groups`` groups) -> channel shuffle -> 3x3 depthwise (strided)
    -> 1x1 group conv to ``out_channels`` (less the ``in_channels`` the pooled shortcut brings, when
    strided).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        *,
        stride: int,
        groups: int,
        first_groups: int,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.stride = stride
        self.groups = groups
        branch_channels = out_channels - in_channels if stride == 2 else out_channels
        self.conv1 = ConvNormAct(in_channels, mid_channels, 1, groups=first_groups)
        self.depthwise = ConvNormAct(mid_channels, mid_channels, 3, stride=stride, groups=mid_channels, act_layer=None)
        self.conv2 = ConvNormAct(mid_channels, branch_channels, 1, groups=groups, act_layer=None)
        self.shortcut: nn.Module = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()
        # Stochastic depth only where the unit is residual (stride 1); a strided unit concatenates.
        self.drop_path = DropPath(drop_path) if stride == 1 and drop_path > 0.0 else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)  # (B, M, H, W)
        if self.groups > 1:
            out = channel_shuffle(out, self.groups)
        out = self.conv2(self.depthwise(out))  # (B, C_out [- C_in], H / stride, W / stride)
        if self.stride == 2:
            return F.relu(torch.cat((self.shortcut(x), out), dim=1))
        if self.drop_path is not None:
            out = self.drop_path(out)
        return F.relu(x + out)


class UnitSpec(NamedTuple):
    """The keyword arguments of one ``ShuffleV1Block``."""

    in_channels: int
    out_channels: int
    mid_channels: int
    stride: int
    groups: int
    first_groups: int


def unit_specs(config: ShuffleNetV1Config) -> list[UnitSpec]:
    """Every unit of the network, in order; the first of each stage has stride 2."""
    units, channels = [], config.stem_channels
    for index, (width, depth) in enumerate(zip(config.widths, config.depths)):
        out = make_divisible(width * config.width_multiplier, config.groups)
        mid = make_divisible(out * config.bottleneck_ratio, config.groups)  # the shuffle needs equal groups
        for i in range(depth):
            dense_first = index == 0 and i == 0 and not config.group_first_conv
            first_groups = 1 if dense_first else config.groups
            units.append(UnitSpec(channels, out, mid, 2 if i == 0 else 1, config.groups, first_groups))
            channels = out
    return units


@dataclass(frozen=True)
class ShuffleNetV1Config:
    """Architecture of one ShuffleNet v1 variant.

    Attributes:
        groups: groups of the 1x1 convs (and of the channel shuffle).
        widths: output channels of the three shuffle stages at 1x (Table 1).
        width_multiplier: "ShuffleNet s x": scales ``widths`` (rounded to a multiple of ``groups``).
        depths: units per stage; the first of each has stride 2.
        stem_channels: the 3x3/2 stem conv (not scaled by ``width_multiplier``).
        bottleneck_ratio: bottleneck width as a fraction of the unit's output channels (paper: 1/4),
            rounded to a multiple of ``groups``.
        group_first_conv: group stage 2's first 1x1 conv too (the paper does not).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth on the residual (stride-1) units, growing linearly from 0 at the
            first unit to this rate at the last.
    """

    groups: int
    widths: tuple[int, ...]
    width_multiplier: float = 1.0
    depths: tuple[int, ...] = (4, 8, 4)
    stem_channels: int = 24
    bottleneck_ratio: float = 0.25
    group_first_conv: bool = False
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        check_ints("depths", self.depths, min=1)
        check_ints("widths", self.widths, min=1, length=len(self.depths), per="stage")
        check_int("groups", self.groups, min=1)
        check_int("stem_channels", self.stem_channels, min=1)
        check_float("width_multiplier", self.width_multiplier, min=0, min_open=True)
        if not 0.0 < self.bottleneck_ratio <= 1.0:
            raise ValueError(f"bottleneck_ratio must be in (0, 1], got {self.bottleneck_ratio}")
        check_rate("drop_rate", self.drop_rate)
        check_rate("drop_path_rate", self.drop_path_rate)
        for unit in unit_specs(self):
            branch = unit.out_channels - unit.in_channels if unit.stride == 2 else unit.out_channels
            sizes = {"branch output": branch}
            if unit.first_groups > 1:
                sizes["unit input"] = unit.in_channels
            bad = {k: v for k, v in sizes.items() if v <= 0 or v % self.groups}
            if bad:
                raise ValueError(
                    f"groups={self.groups} must divide every grouped conv's channels; got {bad} for a unit "
                    f"{unit.in_channels} -> {unit.out_channels} (widths {self.widths}, "
                    f"width_multiplier {self.width_multiplier}, stem_channels {self.stem_channels})"
                )


class ShuffleNetV1(Backbone):
    """Stem (stride 4) + three shuffle stages (strides 8, 16, 32)."""

    supports_output_stride = True

    def __init__(self, config: ShuffleNetV1Config, *, in_channels: int, num_classes: int | None) -> None:
        # (B, in, H, W) -> (B, stem, H/4, W/4)
        stem = conv_pool_stem(in_channels, config.stem_channels)
        specs = unit_specs(config)
        units = iter(specs)
        stages: list[nn.Module] = [stem]
        rates = iter(drop_path_rates(config.drop_path_rate, len(specs)))
        for depth in config.depths:
            blocks = (ShuffleV1Block(**next(units)._asdict(), drop_path=next(rates)) for _ in range(depth))
            stages.append(nn.Sequential(*blocks))
        head = (
            None
            if num_classes is None
            else ClassifierHead(specs[-1].out_channels, num_classes, dropout=config.drop_rate)
        )
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head)


# Table 1: stage 2's output channels at 1x for each group count (stages 3 and 4 double it).
TABLE1_STAGE2_CHANNELS: dict[int, int] = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
# Stem width per width multiplier, as in the authors' released code (github.com/megvii-model/ShuffleNet-Series):
# 24 is kept at 1.5x, which is what the paper's 292 MFLOPs for "1.5x (g=3)" counts (36 gives 300).
STEM_CHANNELS: dict[float, int] = {0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}


def scaled_config(groups: int, width_multiplier: float) -> ShuffleNetV1Config:
    """ "ShuffleNet ``width_multiplier`` x" with ``groups`` groups: Table 1's widths, scaled.

    Every scaled width already splits into ``groups``; the stem is rounded up to a multiple of
    ``groups`` so the first unit's branch does too (8 groups at 0.5x: 16, as the authors' code).
    """
    stage2 = TABLE1_STAGE2_CHANNELS[groups]
    stem = make_divisible(STEM_CHANNELS[width_multiplier], groups)
    return ShuffleNetV1Config(groups, (stage2, 2 * stage2, 4 * stage2), width_multiplier, stem_channels=stem)


VARIANTS: dict[str, ShuffleNetV1Config] = {
    f"shufflenet_v1_g{groups}_x{width:.1f}".replace(".", "_"): scaled_config(groups, width)
    for groups in TABLE1_STAGE2_CHANNELS
    for width in STEM_CHANNELS
}


def _channel_divisor(config: ShuffleNetV1Config) -> int:
    """Multiples of 8 and of ``groups``: every grouped 1x1 conv and its branch split into whole groups."""
    return math.lcm(8, config.groups)


# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``).
DESIGN = DesignFields(
    channels=("stem_channels", "widths"),
    depths=("depths",),
    width_multiplier="width_multiplier",
    channel_divisor=_channel_divisor,
)

# No released weights convert to this family: ImageNet statistics at 224 px (crop 0.875, bilinear).
PREPROCESSING = Preprocessing()

register_family("shufflenet_v1", VARIANTS, ShuffleNetV1, design=DESIGN, preprocessing=PREPROCESSING)
