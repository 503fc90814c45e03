"""EfficientNet B0-B7.

"EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks" (Tan & Le, 2019),
https://arxiv.org/abs/1905.11946. B0 is a searched stack of MBConv blocks (MobileNetV2's inverted
residual with squeeze-and-excitation and SiLU, ``layers.inverted_residual``); B1-B7 scale it
*compoundly*: ``width_multiplier`` scales every channel count (rounded to 8) and ``depth_multiplier``
every row's block count (rounded up), together with the input resolution (noted per variant).
Stochastic depth ("Deep Networks with Stochastic Depth", https://arxiv.org/abs/1603.09382) drops
residual branches with a probability growing linearly from 0 to ``drop_path_rate`` over the blocks.

Levels: stride 2 (stem conv + the first MBConv row), 4, 8, 16, 32. The 1x1 conv to
``1280 * width_multiplier`` channels is the ``head_conv``, part of the last level by default (the
published tables); ``include_head_conv=False`` makes the last level the last block's output
(B0: 320 channels), the map EfficientDet-style necks take.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TypedDict

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

# Every B0 block: SE to a quarter of the block's input channels, SiLU.
_row = partial(MBConvRow, se_ratio=0.25, activation="silu")

# The paper's Table 1; columns: expansion, kernel, stride, channels, repeats.
B0_ROWS: tuple[MBConvRow, ...] = (
    _row(1, 3, 1, 16, 1),
    _row(6, 3, 2, 24, 2),
    _row(6, 5, 2, 40, 2),
    _row(6, 3, 2, 80, 3),
    _row(6, 5, 1, 112, 3),
    _row(6, 5, 2, 192, 4),
    _row(6, 3, 1, 320, 1),
)


@dataclass(frozen=True)
class EfficientNetConfig:
    """Architecture of one EfficientNet variant.

    Attributes:
        width_multiplier: scales every channel count (stem, blocks, final conv).
        depth_multiplier: scales every row's number of blocks (rounded up).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth of the last block's residual branch (0 at the first).
        bn_eps, bn_momentum: batch norm settings (torchvision's B5-B7, ported from TensorFlow,
            use 1e-3 / 0.01).
        rows: the B0 block table, before scaling (``MBConvRow``s, or mappings / sequences of their fields).
        stem_channels: channels of the 3x3 stride-2 stem conv, before scaling.
        head_channels: channels of the final 1x1 conv, before scaling.
    """

    width_multiplier: float = 1.0
    depth_multiplier: float = 1.0
    drop_rate: float = 0.2
    drop_path_rate: float = 0.2
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    rows: tuple[MBConvRow, ...] = B0_ROWS
    stem_channels: int = 32
    head_channels: int = 1280

    def __post_init__(self) -> None:
        check_mbconv_config(self)
        check_int("head_channels", self.head_channels, min=1)
        check_float("bn_eps", self.bn_eps, min=0, min_open=True)
        check_float("bn_momentum", self.bn_momentum, min=0, max=1)


def block_specs(config: EfficientNetConfig) -> list[InvertedResidualSpec]:
    """Every MBConv block of ``config`` after compound scaling, with its stochastic depth rate."""
    return config_specs(
        config,
        se_of_input=True,  # a quarter of the block's *input* channels
        se_act_layer=nn.SiLU,
        se_gate_layer=nn.Sigmoid,
    )


class EfficientNet(Backbone):
    """EfficientNet with five levels (strides 2-32) and an optional dropout + linear classifier."""

    supports_output_stride = True

    def __init__(self, config: EfficientNetConfig, *, in_channels: int, num_classes: int | None) -> None:
        head_channels = make_divisible(config.head_channels * config.width_multiplier)
        norm = partial(nn.BatchNorm2d, eps=config.bn_eps, momentum=config.bn_momentum)
        stages, head_conv = build_mbconv(
            in_channels, block_specs(config), head_channels, act_layer=nn.SiLU, norm_layer=norm
        )
        head = ClassifierHead(head_channels, num_classes, dropout=config.drop_rate) if num_classes is not None else None
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head, head_conv=head_conv)
        init_weights(self, linear="uniform")


class _BatchNormSettings(TypedDict):
    bn_eps: float
    bn_momentum: float


# TensorFlow's batch norm settings, kept by torchvision's B5-B7 weights.
_TF_BN: _BatchNormSettings = {"bn_eps": 1e-3, "bn_momentum": 0.01}

VARIANTS: dict[str, EfficientNetConfig] = {
    # name: width, depth, dropout  (training resolution)
    "efficientnet_b0": EfficientNetConfig(1.0, 1.0, drop_rate=0.2),  # 224
    "efficientnet_b1": EfficientNetConfig(1.0, 1.1, drop_rate=0.2),  # 240
    "efficientnet_b2": EfficientNetConfig(1.1, 1.2, drop_rate=0.3),  # 260
    "efficientnet_b3": EfficientNetConfig(1.2, 1.4, drop_rate=0.3),  # 300
    "efficientnet_b4": EfficientNetConfig(1.4, 1.8, drop_rate=0.4),  # 380
    "efficientnet_b5": EfficientNetConfig(1.6, 2.2, drop_rate=0.4, **_TF_BN),  # 456
    "efficientnet_b6": EfficientNetConfig(1.8, 2.6, drop_rate=0.5, **_TF_BN),  # 528
    "efficientnet_b7": EfficientNetConfig(2.0, 3.1, drop_rate=0.5, **_TF_BN),  # 600
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``).
DESIGN = DesignFields(
    channels=("stem_channels", "rows.out_channels", "head_channels"),
    depths=("rows.repeats",),
    kernels=("rows.kernel_size",),
    width_multiplier="width_multiplier",
    depth_multiplier="depth_multiplier",
)

# torchvision's IMAGENET1K_V1 weights (``weights.transforms()``): per variant (center crop, resize), bicubic.
_EVAL_SIZES = {
    "b0": (224, 256),
    "b1": (240, 256),
    "b2": (288, 288),
    "b3": (300, 320),
    "b4": (380, 384),
    "b5": (456, 456),
    "b6": (528, 528),
    "b7": (600, 600),
}
PREPROCESSING = {
    f"efficientnet_{key}": Preprocessing(input_size=crop, crop_pct=crop / resize, interpolation="bicubic")
    for key, (crop, resize) in _EVAL_SIZES.items()
}

# Seed README figures; top-1 of torchvision's IMAGENET1K_V1 weights.
PUBLISHED = with_top1(
    {
        "efficientnet_b0": Published(4.01, 0.80),
        "efficientnet_b1": Published(6.51, 1.18),
        "efficientnet_b2": Published(7.70, 1.36),
        "efficientnet_b3": Published(10.70, 1.98),
        "efficientnet_b4": Published(17.55, 3.09),
        "efficientnet_b5": Published(28.34, 4.82),
        "efficientnet_b6": Published(40.74, 6.86),
        "efficientnet_b7": Published(63.79, 10.53),
    },
    {
        "efficientnet_b0": 77.692,
        "efficientnet_b1": 78.642,
        "efficientnet_b2": 80.608,
        "efficientnet_b3": 82.008,
        "efficientnet_b4": 83.384,
        "efficientnet_b5": 83.444,
        "efficientnet_b6": 84.008,
        "efficientnet_b7": 84.122,
    },
    source=TORCHVISION_V1,
)

register_family("efficientnet", VARIANTS, EfficientNet, design=DESIGN, preprocessing=PREPROCESSING, published=PUBLISHED)
