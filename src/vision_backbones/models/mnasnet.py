"""MnasNet (torchvision's MNASNet, the B1 model of the paper).

Paper: "MnasNet: Platform-Aware Neural Architecture Search for Mobile" (Tan et al., CVPR 2019),
https://arxiv.org/abs/1807.11626

The idea: search the architecture with a reward that multiplies accuracy by measured phone latency
(``ACC * (LAT / T) ** w``), in a *factorized hierarchical* space where each stage picks its own block
type, kernel size, expansion and depth, so different stages may differ (unlike cell-repeating NAS).
The result here is a MobileNetV2-style stack of inverted residual blocks
(``layers.InvertedResidual``: 1x1 expand -> depthwise kxk -> linear 1x1 project, residual when the
shape is kept) whose per-stage kernels (3 or 5), expansions (3 or 6) and depths come from the search
(``MnasNetConfig.rows``). As in torchvision this is MnasNet-B1: no squeeze-and-excitation (the
paper's A1 adds it). The paper's "depth multiplier" alpha is a *width* multiplier here
(``width_multiplier``, as in every MBConv family): it scales every channel count but the 1280 head
conv, rounded to multiples of 8 (never down by more than 10 %).

Levels: ``stages[0]`` the 3x3/2 stem conv and the separable conv block (16 ch at 1.0, stride 2);
a new stage opens at each strided block (strides 4, 8, 16, 32). The 1x1 conv to 1280 channels is the
``head_conv``, part of the last level by default; ``include_head_conv=False`` ends it at the last block.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from torch import nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import init_weights
from vision_backbones.layers.inverted_residual import (
    InvertedResidualSpec,
    MBConvRow,
    build_mbconv,
    check_mbconv_config,
    config_specs,
)
from vision_backbones.registry import register_family
from vision_backbones.validate import check_float, check_int

# MnasNet-B1 (paper Fig. 7 without SE; torchvision); columns: expansion, kernel, stride, channels, repeats.
# The first row is the "SepConv" block: no expansion.
B1_ROWS: tuple[MBConvRow, ...] = (
    MBConvRow(1, 3, 1, 16, 1),
    MBConvRow(3, 3, 2, 24, 3),
    MBConvRow(3, 5, 2, 40, 3),
    MBConvRow(6, 5, 2, 80, 3),
    MBConvRow(6, 3, 1, 96, 2),
    MBConvRow(6, 5, 2, 192, 4),
    MBConvRow(6, 3, 1, 320, 1),
)


@dataclass(frozen=True)
class MnasNetConfig:
    """Architecture of one MnasNet variant.

    Attributes:
        width_multiplier: the paper's depth multiplier alpha, applied to the stem and every block's channels.
        depth_multiplier: scales every row's number of blocks (rounded up; 1 in torchvision).
        stem_channels: output channels of the 3x3/2 stem conv at ``width_multiplier=1``.
        rows: the searched rows (``MBConvRow``s, or mappings / sequences of their fields).
        head_channels: the 1x1 head conv before pooling (not scaled).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth of the last block (0 in torchvision).
        bn_momentum: batch-norm momentum (torchvision: 1 - 0.9997, TensorFlow's decay).
    """

    width_multiplier: float = 1.0
    depth_multiplier: float = 1.0
    stem_channels: int = 32
    rows: tuple[MBConvRow, ...] = B1_ROWS
    head_channels: int = 1280
    drop_rate: float = 0.2
    drop_path_rate: float = 0.0
    bn_momentum: float = 1 - 0.9997

    def __post_init__(self) -> None:
        check_mbconv_config(self)
        check_int("head_channels", self.head_channels, min=1)
        check_float("bn_momentum", self.bn_momentum, min=0, max=1, min_open=True, max_open=True)


def block_specs(config: MnasNetConfig) -> list[InvertedResidualSpec]:
    """Every block with its rounded channels, in order (the converter names layers from this list)."""
    return config_specs(config)


class MnasNet(Backbone):
    """Stem + inverted residual stages at strides 2, 4, 8, 16, 32, then the 1x1 head conv."""

    supports_output_stride = True

    def __init__(self, config: MnasNetConfig, *, in_channels: int, num_classes: int | None) -> None:
        norm = partial(nn.BatchNorm2d, momentum=config.bn_momentum)
        stages, head_conv = build_mbconv(
            in_channels, block_specs(config), config.head_channels, act_layer=nn.ReLU, norm_layer=norm
        )
        head = (
            ClassifierHead(config.head_channels, num_classes, dropout=config.drop_rate)
            if num_classes is not None
            else None
        )
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head, head_conv=head_conv)
        init_weights(self)


VARIANTS: dict[str, MnasNetConfig] = {
    "mnasnet0_5": MnasNetConfig(width_multiplier=0.5),
    "mnasnet0_75": MnasNetConfig(width_multiplier=0.75),
    "mnasnet1_0": MnasNetConfig(width_multiplier=1.0),
    "mnasnet1_3": MnasNetConfig(width_multiplier=1.3),
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``).
DESIGN = DesignFields(
    channels=("stem_channels", "rows.out_channels", "head_channels"),
    depths=("rows.repeats",),
    kernels=("rows.kernel_size",),
    width_multiplier="width_multiplier",
    depth_multiplier="depth_multiplier",
)

# torchvision's IMAGENET1K_V1 weights (``weights.transforms()``): center crop 224 after resizing to 256 (0.5x, 1.0x) or 232 (0.75x, 1.3x, trained later), bilinear.
PREPROCESSING = {
    name: Preprocessing(input_size=224, crop_pct=224 / (232 if name in ("mnasnet0_75", "mnasnet1_3") else 256))
    for name in VARIANTS
}

register_family("mnasnet", VARIANTS, MnasNet, design=DESIGN, preprocessing=PREPROCESSING)
