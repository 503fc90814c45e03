"""EfficientNet B0-B7.

"EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks" (Tan & Le, 2019),
https://arxiv.org/abs/1905.11946. B0 is a searched stack of MBConv blocks (MobileNetV2's inverted
residual with squeeze-and-excitation and SiLU, ``layers.inverted_residual``); B1-B7 scale it
*compoundly*: ``width_multiplier`` scales every channel count (rounded to 8) and ``depth_multiplier``
every stage's block count (rounded up), together with the input resolution (noted per variant).
Stochastic depth ("Deep Networks with Stochastic Depth", https://arxiv.org/abs/1603.09382) drops
residual branches with a probability growing linearly from 0 to ``stochastic_depth`` over the blocks.

Levels: stride 2 (stem conv + the first MBConv stage), 4, 8, 16, 32; the last stage ends with the
1x1 conv to ``1280 * width_multiplier`` channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from torch import nn

from vision_backbones.layers import make_divisible
from vision_backbones.layers.inverted_residual import InvertedResidualNetwork, InvertedResidualSpec
from vision_backbones.registry import register_family


class MBConvStage(NamedTuple):
    """One row of the paper's Table 1: ``repeats`` MBConv blocks, the first with ``stride``."""

    expand_ratio: int
    kernel_size: int
    stride: int
    out_channels: int
    repeats: int


B0_STAGES: tuple[MBConvStage, ...] = (
    MBConvStage(1, 3, 1, 16, 1),
    MBConvStage(6, 3, 2, 24, 2),
    MBConvStage(6, 5, 2, 40, 2),
    MBConvStage(6, 3, 2, 80, 3),
    MBConvStage(6, 5, 1, 112, 3),
    MBConvStage(6, 5, 2, 192, 4),
    MBConvStage(6, 3, 1, 320, 1),
)


@dataclass(frozen=True)
class EfficientNetConfig:
    """Architecture of one EfficientNet variant.

    Attributes:
        width_multiplier: scales every channel count (stem, blocks, final conv).
        depth_multiplier: scales every stage's number of blocks (rounded up).
        dropout: dropout before the classifier.
        stochastic_depth: drop probability of the last block's residual branch (0 at the first).
        bn_eps, bn_momentum: batch norm settings (torchvision's B5-B7, ported from TensorFlow,
            use 1e-3 / 0.01).
        stages: the B0 block table, before scaling.
        stem_channels: channels of the 3x3 stride-2 stem conv, before scaling.
        head_channels: channels of the final 1x1 conv, before scaling.
    """

    width_multiplier: float = 1.0
    depth_multiplier: float = 1.0
    dropout: float = 0.2
    stochastic_depth: float = 0.2
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    stages: tuple[MBConvStage, ...] = B0_STAGES
    stem_channels: int = 32
    head_channels: int = 1280

    def __post_init__(self) -> None:
        if self.width_multiplier <= 0 or self.depth_multiplier <= 0:
            raise ValueError(
                f"width_multiplier and depth_multiplier must be > 0, got {self.width_multiplier} and {self.depth_multiplier}"
            )
        if not self.stages or any(s.repeats < 1 or s.stride not in (1, 2) for s in self.stages):
            raise ValueError(f"stages must be non-empty with repeats >= 1 and stride 1 or 2, got {self.stages}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.stochastic_depth < 1.0:
            raise ValueError(f"dropout and stochastic_depth must be in [0, 1), got {self.dropout} and {self.stochastic_depth}")
        if self.bn_eps <= 0 or not 0.0 <= self.bn_momentum <= 1.0:
            raise ValueError(f"bn_eps must be > 0 and bn_momentum in [0, 1], got {self.bn_eps} and {self.bn_momentum}")


def stage_repeats(config: EfficientNetConfig) -> list[int]:
    """Blocks in each row of the table after depth scaling."""
    return [math.ceil(stage.repeats * config.depth_multiplier) for stage in config.stages]


def block_specs(config: EfficientNetConfig) -> list[InvertedResidualSpec]:
    """Every MBConv block of ``config`` after compound scaling, with its stochastic depth rate."""
    def scale(channels: int) -> int:
        return make_divisible(channels * config.width_multiplier)

    repeats = stage_repeats(config)
    total, index = sum(repeats), 0
    in_channels = scale(config.stem_channels)
    specs: list[InvertedResidualSpec] = []
    for stage, count in zip(config.stages, repeats):
        out_channels = scale(stage.out_channels)
        for repeat in range(count):
            specs.append(
                InvertedResidualSpec(
                    in_channels,
                    out_channels,
                    expanded_channels=make_divisible(in_channels * stage.expand_ratio),
                    kernel_size=stage.kernel_size,
                    stride=stage.stride if repeat == 0 else 1,
                    squeeze_channels=max(1, in_channels // 4),  # a quarter of the block's *input* channels
                    act_layer=nn.SiLU,
                    se_act_layer=nn.SiLU,
                    se_gate_layer=nn.Sigmoid,
                    drop_path=config.stochastic_depth * index / total,
                )
            )
            in_channels = out_channels
            index += 1
    return specs


class EfficientNet(InvertedResidualNetwork):
    """EfficientNet with five levels (strides 2-32) and an optional dropout + linear classifier."""

    def __init__(
        self,
        config: EfficientNetConfig,
        *,
        in_channels: int,
        num_classes: int | None,
        out_indices: Sequence[int] | None,
        frozen_stages: int,
        norm_eval: bool,
    ) -> None:
        super().__init__(
            block_specs(config),
            stem_channels=make_divisible(config.stem_channels * config.width_multiplier),
            head_channels=make_divisible(config.head_channels * config.width_multiplier),
            act_layer=nn.SiLU,
            norm_layer=partial(nn.BatchNorm2d, eps=config.bn_eps, momentum=config.bn_momentum),
            dropout=config.dropout,
            linear_init="uniform",
            in_channels=in_channels,
            num_classes=num_classes,
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
        )


# TensorFlow's batch norm settings, kept by torchvision's B5-B7 weights.
_TF_BN = {"bn_eps": 1e-3, "bn_momentum": 0.01}

VARIANTS: dict[str, EfficientNetConfig] = {
    # name: width, depth, dropout  (training resolution)
    "efficientnet_b0": EfficientNetConfig(1.0, 1.0, dropout=0.2),  # 224
    "efficientnet_b1": EfficientNetConfig(1.0, 1.1, dropout=0.2),  # 240
    "efficientnet_b2": EfficientNetConfig(1.1, 1.2, dropout=0.3),  # 260
    "efficientnet_b3": EfficientNetConfig(1.2, 1.4, dropout=0.3),  # 300
    "efficientnet_b4": EfficientNetConfig(1.4, 1.8, dropout=0.4),  # 380
    "efficientnet_b5": EfficientNetConfig(1.6, 2.2, dropout=0.4, **_TF_BN),  # 456
    "efficientnet_b6": EfficientNetConfig(1.8, 2.6, dropout=0.5, **_TF_BN),  # 528
    "efficientnet_b7": EfficientNetConfig(2.0, 3.1, dropout=0.5, **_TF_BN),  # 600
}

register_family("efficientnet", VARIANTS, EfficientNet)
