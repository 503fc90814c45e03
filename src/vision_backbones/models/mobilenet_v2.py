"""MobileNetV2.

"MobileNetV2: Inverted Residuals and Linear Bottlenecks" (Sandler et al., 2018),
https://arxiv.org/abs/1801.04381. Each block expands a narrow tensor by ``expand_ratio`` with a 1x1
conv, filters it with a 3x3 depthwise conv and projects it back with a *linear* 1x1 conv
(``layers.inverted_residual.InvertedResidual``); ReLU6 everywhere else. ``width_multiplier`` scales
every layer's channels (rounded to multiples of 8), except that the final 1280-channel conv only grows.

Levels: stride 2 (stem conv + first block), 4, 8, 16, 32. The final 1x1 conv to 1280 channels is
the ``head_conv``: part of the last level by default (as in the published figures);
``include_head_conv=False`` makes the last level the last block's output (320 channels).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import init_weights, make_divisible
from vision_backbones.layers.inverted_residual import (
    InvertedResidualSpec,
    MBConvRow,
    build_mbconv,
    check_mbconv_config,
    config_specs,
)
from vision_backbones.published import TORCHVISION_V1, Published
from vision_backbones.registry import register_family
from vision_backbones.validate import check_int

# The paper's Table 2; columns t (expansion), k, s, c, n; every block ReLU6, no SE.
PAPER_ROWS: tuple[MBConvRow, ...] = (
    MBConvRow(1, 3, 1, 16, 1, activation="relu6"),
    MBConvRow(6, 3, 2, 24, 2, activation="relu6"),
    MBConvRow(6, 3, 2, 32, 3, activation="relu6"),
    MBConvRow(6, 3, 2, 64, 4, activation="relu6"),
    MBConvRow(6, 3, 1, 96, 3, activation="relu6"),
    MBConvRow(6, 3, 2, 160, 3, activation="relu6"),
    MBConvRow(6, 3, 1, 320, 1, activation="relu6"),
)


@dataclass(frozen=True)
class MobileNetV2Config:
    """Architecture of one MobileNetV2 variant.

    Attributes:
        width_multiplier: scales every layer's channels (0.35 ... 1.4 in the paper).
        depth_multiplier: scales every row's number of blocks (rounded up).
        rows: the block table, before the multipliers (``MBConvRow``s, or mappings / sequences of their fields).
        stem_channels: channels of the 3x3 stride-2 stem conv, before the width multiplier.
        head_channels: channels of the final 1x1 conv; scaled only by multipliers above 1.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth of the last block (0 in the paper).
    """

    width_multiplier: float = 1.0
    depth_multiplier: float = 1.0
    rows: tuple[MBConvRow, ...] = PAPER_ROWS
    stem_channels: int = 32
    head_channels: int = 1280
    drop_rate: float = 0.2
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        check_mbconv_config(self)
        check_int("head_channels", self.head_channels, min=1)


def block_specs(config: MobileNetV2Config) -> list[InvertedResidualSpec]:
    """Every block of ``config``, channels scaled by the width multiplier and rounded to multiples of 8."""
    return config_specs(config)


class MobileNetV2(Backbone):
    """MobileNetV2 with five levels (strides 2-32) and an optional dropout + linear classifier."""

    supports_output_stride = True

    def __init__(self, config: MobileNetV2Config, *, in_channels: int, num_classes: int | None) -> None:
        head_channels = make_divisible(config.head_channels * max(1.0, config.width_multiplier))
        stages, head_conv = build_mbconv(
            in_channels, block_specs(config), head_channels, act_layer=nn.ReLU6, norm_layer=nn.BatchNorm2d
        )
        head = ClassifierHead(head_channels, num_classes, dropout=config.drop_rate) if num_classes is not None else None
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head, head_conv=head_conv)
        init_weights(self)


VARIANTS: dict[str, MobileNetV2Config] = {
    "mobilenet_v2": MobileNetV2Config(),
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``).
DESIGN = DesignFields(
    channels=("stem_channels", "rows.out_channels", "head_channels"),
    depths=("rows.repeats",),
    kernels=("rows.kernel_size",),
    width_multiplier="width_multiplier",
    depth_multiplier="depth_multiplier",
)

# torchvision's IMAGENET1K_V1 weights (``weights.transforms()``): resize 256, center crop 224, bilinear.
PREPROCESSING = Preprocessing(input_size=224, crop_pct=224 / 256, interpolation="bilinear")

# Seed README figures (GFLOPs printed with one decimal); top-1 of torchvision's IMAGENET1K_V1 weights.
PUBLISHED = {"mobilenet_v2": Published(2.22, 0.6, gflops_decimals=1, top1=71.878, top1_source=TORCHVISION_V1)}

register_family("mobilenet_v2", VARIANTS, MobileNetV2, design=DESIGN, preprocessing=PREPROCESSING, published=PUBLISHED)
