"""MobileNetV2.

"MobileNetV2: Inverted Residuals and Linear Bottlenecks" (Sandler et al., 2018),
https://arxiv.org/abs/1801.04381. Each block expands a narrow tensor by ``expand_ratio`` with a 1x1
conv, filters it with a 3x3 depthwise conv and projects it back with a *linear* 1x1 conv
(``layers.inverted_residual.InvertedResidual``); ReLU6 everywhere else. ``width_multiplier`` scales
every layer's channels (rounded to multiples of 8), except that the final 1280-channel conv only grows.

Levels: stride 2 (stem conv + first block), 4, 8, 16, 32; the last stage ends with the 1x1 conv to
1280 channels, counted in the backbone as in the published figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from torch import nn

from vision_backbones.layers import make_divisible
from vision_backbones.layers.inverted_residual import InvertedResidualNetwork, InvertedResidualSpec
from vision_backbones.registry import register_family


class MobileNetV2Stage(NamedTuple):
    """One row of the paper's Table 2: ``repeats`` blocks, the first with ``stride``."""

    expand_ratio: int
    out_channels: int
    repeats: int
    stride: int


PAPER_STAGES: tuple[MobileNetV2Stage, ...] = (
    MobileNetV2Stage(1, 16, 1, 1),
    MobileNetV2Stage(6, 24, 2, 2),
    MobileNetV2Stage(6, 32, 3, 2),
    MobileNetV2Stage(6, 64, 4, 2),
    MobileNetV2Stage(6, 96, 3, 1),
    MobileNetV2Stage(6, 160, 3, 2),
    MobileNetV2Stage(6, 320, 1, 1),
)


@dataclass(frozen=True)
class MobileNetV2Config:
    """Architecture of one MobileNetV2 variant.

    Attributes:
        width_multiplier: scales every layer's channels (0.35 ... 1.4 in the paper).
        stages: the block table, before the width multiplier.
        stem_channels: channels of the 3x3 stride-2 stem conv, before the width multiplier.
        head_channels: channels of the final 1x1 conv; scaled only by multipliers above 1.
        dropout: dropout before the classifier.
    """

    width_multiplier: float = 1.0
    stages: tuple[MobileNetV2Stage, ...] = PAPER_STAGES
    stem_channels: int = 32
    head_channels: int = 1280
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be > 0, got {self.width_multiplier}")
        if not self.stages or any(s.repeats < 1 or s.stride not in (1, 2) for s in self.stages):
            raise ValueError(f"stages must be non-empty with repeats >= 1 and stride 1 or 2, got {self.stages}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def block_specs(config: MobileNetV2Config) -> list[InvertedResidualSpec]:
    """Every block of ``config``, channels scaled by the width multiplier and rounded to multiples of 8."""
    blocks: list[InvertedResidualSpec] = []
    in_channels = make_divisible(config.stem_channels * config.width_multiplier)
    for stage in config.stages:
        out_channels = make_divisible(stage.out_channels * config.width_multiplier)
        for index in range(stage.repeats):
            blocks.append(
                InvertedResidualSpec(
                    in_channels,
                    out_channels,
                    expanded_channels=round(in_channels * stage.expand_ratio),
                    stride=stage.stride if index == 0 else 1,
                    act_layer=nn.ReLU6,
                )
            )
            in_channels = out_channels
    return blocks


class MobileNetV2(InvertedResidualNetwork):
    """MobileNetV2 with five levels (strides 2-32) and an optional dropout + linear classifier."""

    def __init__(
        self,
        config: MobileNetV2Config,
        *,
        in_channels: int,
        num_classes: int | None,
        out_indices: Sequence[int] | None,
        frozen_stages: int,
        norm_eval: bool,
    ) -> None:
        width = config.width_multiplier
        super().__init__(
            block_specs(config),
            stem_channels=make_divisible(config.stem_channels * width),
            head_channels=make_divisible(config.head_channels * max(1.0, width)),
            act_layer=nn.ReLU6,
            norm_layer=nn.BatchNorm2d,
            dropout=config.dropout,
            in_channels=in_channels,
            num_classes=num_classes,
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
        )


VARIANTS: dict[str, MobileNetV2Config] = {
    "mobilenet_v2": MobileNetV2Config(),
}

register_family("mobilenet_v2", VARIANTS, MobileNetV2)
