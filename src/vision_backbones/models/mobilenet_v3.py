"""MobileNetV3 (Large and Small).

"Searching for MobileNetV3" (Howard et al., 2019), https://arxiv.org/abs/1905.02244. The blocks are
MobileNetV2's inverted residuals (``layers.inverted_residual``) found by architecture search, with
three changes that show in the code:

- squeeze-and-excitation after the depthwise conv of some blocks, squeezing to a quarter of the
  expanded channels (rounded to 8) with a hard-sigmoid gate (``MBConvRow.se_ratio``);
- hard-swish, ``x * relu6(x + 3) / 6``, instead of ReLU in the deeper blocks (``activation``);
- an "efficient last stage": the 1x1 conv to 6x channels (960 / 576) runs at 7x7, then the
  classifier pools *first* and applies its hidden 1280 / 1024 layer to the pooled vector.

The paper's tables give each block's expanded width explicitly (``MBConvRow.expanded_channels``).

Levels: stride 2 (stem conv, plus the first block in Large), 4, 8, 16, 32. The 1x1 conv to
960 / 576 channels is the ``head_conv``, part of the last level by default;
``include_head_conv=False`` makes the last level the last block's output (160 / 96 channels).
The classifier's hidden layer belongs to the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

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
from vision_backbones.published import TORCHVISION_V1, Published, with_top1
from vision_backbones.registry import register_family
from vision_backbones.validate import check_float, check_int


def _row(kernel_size: int, expanded: int, out_channels: int, se: bool, activation: str, stride: int) -> MBConvRow:
    """One block in the paper's column order: kernel, exp size, #out, SE, NL, s."""
    return MBConvRow(
        None,
        kernel_size,
        stride,
        out_channels,
        se_ratio=0.25 if se else 0.0,
        activation=activation,
        expanded_channels=expanded,
    )


LARGE_ROWS: tuple[MBConvRow, ...] = (  # Table 1
    _row(3, 16, 16, False, "relu", 1),
    _row(3, 64, 24, False, "relu", 2),
    _row(3, 72, 24, False, "relu", 1),
    _row(5, 72, 40, True, "relu", 2),
    _row(5, 120, 40, True, "relu", 1),
    _row(5, 120, 40, True, "relu", 1),
    _row(3, 240, 80, False, "hard_swish", 2),
    _row(3, 200, 80, False, "hard_swish", 1),
    _row(3, 184, 80, False, "hard_swish", 1),
    _row(3, 184, 80, False, "hard_swish", 1),
    _row(3, 480, 112, True, "hard_swish", 1),
    _row(3, 672, 112, True, "hard_swish", 1),
    _row(5, 672, 160, True, "hard_swish", 2),
    _row(5, 960, 160, True, "hard_swish", 1),
    _row(5, 960, 160, True, "hard_swish", 1),
)
SMALL_ROWS: tuple[MBConvRow, ...] = (  # Table 2
    _row(3, 16, 16, True, "relu", 2),
    _row(3, 72, 24, False, "relu", 2),
    _row(3, 88, 24, False, "relu", 1),
    _row(5, 96, 40, True, "hard_swish", 2),
    _row(5, 240, 40, True, "hard_swish", 1),
    _row(5, 240, 40, True, "hard_swish", 1),
    _row(5, 120, 48, True, "hard_swish", 1),
    _row(5, 144, 48, True, "hard_swish", 1),
    _row(5, 288, 96, True, "hard_swish", 2),
    _row(5, 576, 96, True, "hard_swish", 1),
    _row(5, 576, 96, True, "hard_swish", 1),
)


@dataclass(frozen=True)
class MobileNetV3Config:
    """Architecture of one MobileNetV3 variant.

    Attributes:
        rows: the block table, before the multipliers (``MBConvRow``s, or mappings / sequences of their fields).
        hidden_channels: width of the classifier's hidden layer (1280 Large, 1024 Small).
        width_multiplier: scales every channel count (rounded to multiples of 8).
        depth_multiplier: scales every row's number of blocks (rounded up).
        stem_channels: channels of the 3x3 stride-2 stem conv, before the width multiplier.
        head_expand_ratio: the final 1x1 conv has this many times the last block's channels.
        drop_rate: dropout between the hidden layer and the classifier.
        drop_path_rate: stochastic depth of the last block (0 in the paper).
        bn_eps, bn_momentum: batch norm settings (torchvision's port of the TF weights uses
            1e-3 / 0.01; timm's ``mobilenetv3_large_100`` uses PyTorch's defaults 1e-5 / 0.1).
    """

    rows: tuple[MBConvRow, ...]
    hidden_channels: int
    width_multiplier: float = 1.0
    depth_multiplier: float = 1.0
    stem_channels: int = 16
    head_expand_ratio: int = 6
    drop_rate: float = 0.2
    drop_path_rate: float = 0.0
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01

    def __post_init__(self) -> None:
        check_mbconv_config(self)
        check_int("hidden_channels", self.hidden_channels, min=1)
        check_int("head_expand_ratio", self.head_expand_ratio, min=1)
        check_float("bn_eps", self.bn_eps, min=0, min_open=True)
        check_float("bn_momentum", self.bn_momentum, min=0, max=1)


def block_specs(config: MobileNetV3Config) -> list[InvertedResidualSpec]:
    """Every block of ``config``, channels scaled by the width multiplier and rounded to multiples of 8."""
    return config_specs(
        config,
        se_act_layer=nn.ReLU,
        se_gate_layer=nn.Hardsigmoid,
    )


class MobileNetV3(Backbone):
    """MobileNetV3 with five levels (strides 2-32) and a pooled hidden-layer classifier."""

    supports_output_stride = True

    def __init__(self, config: MobileNetV3Config, *, in_channels: int, num_classes: int | None) -> None:
        specs = block_specs(config)
        head_channels = config.head_expand_ratio * specs[-1].out_channels  # 960 Large, 576 Small
        norm = partial(nn.BatchNorm2d, eps=config.bn_eps, momentum=config.bn_momentum)
        stages, head_conv = build_mbconv(in_channels, specs, head_channels, act_layer=nn.Hardswish, norm_layer=norm)
        head = None
        if num_classes is not None:
            head = ClassifierHead(
                head_channels,
                num_classes,
                hidden_channels=make_divisible(config.hidden_channels * config.width_multiplier),
                hidden_activation=nn.Hardswish,
                dropout=config.drop_rate,
            )
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head, head_conv=head_conv)
        init_weights(self)


VARIANTS: dict[str, MobileNetV3Config] = {
    "mobilenet_v3_large": MobileNetV3Config(LARGE_ROWS, hidden_channels=1280),
    "mobilenet_v3_small": MobileNetV3Config(SMALL_ROWS, hidden_channels=1024),
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``); a row's explicit
# expanded width shrinks with its output width.
DESIGN = DesignFields(
    channels=("stem_channels", "rows.out_channels"),
    depths=("rows.repeats",),
    kernels=("rows.kernel_size",),
    width_multiplier="width_multiplier",
    depth_multiplier="depth_multiplier",
    follows=(("rows.expanded_channels", "rows.out_channels"),),
)

# torchvision's IMAGENET1K_V1 weights (``weights.transforms()``): resize 256, center crop 224, bilinear.
PREPROCESSING = Preprocessing(input_size=224, crop_pct=224 / 256, interpolation="bilinear")

# Seed README figures; top-1 of torchvision's IMAGENET1K_V1 weights.
PUBLISHED = with_top1(
    {"mobilenet_v3_large": Published(2.97, 0.45), "mobilenet_v3_small": Published(0.93, 0.12)},
    {"mobilenet_v3_large": 74.042, "mobilenet_v3_small": 67.668},
    source=TORCHVISION_V1,
)

register_family("mobilenet_v3", VARIANTS, MobileNetV3, design=DESIGN, preprocessing=PREPROCESSING, published=PUBLISHED)
