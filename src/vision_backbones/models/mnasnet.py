"""MnasNet (torchvision's MNASNet, the B1 model of the paper).

Paper: "MnasNet: Platform-Aware Neural Architecture Search for Mobile" (Tan et al., CVPR 2019),
https://arxiv.org/abs/1807.11626

The idea: search the architecture with a reward that multiplies accuracy by measured phone latency
(``ACC * (LAT / T) ** w``), in a *factorized hierarchical* space where each stage picks its own block
type, kernel size, expansion and depth, so different stages may differ (unlike cell-repeating NAS).
The result here is a MobileNetV2-style stack of inverted residual blocks
(``layers.InvertedResidual``: 1x1 expand -> depthwise kxk -> linear 1x1 project, residual when the
shape is kept) whose per-stage kernels (3 or 5), expansions (3 or 6) and depths come from the search
(``MnasNetConfig.blocks``). As in torchvision this is MnasNet-B1: no squeeze-and-excitation (the
paper's A1 adds it). The depth multiplier scales every channel count but the 1280 head conv,
rounded to multiples of 8 (never down by more than 10 %).

Levels: ``stages[0]`` the 3x3/2 stem conv and the separable conv block (16 ch at 1.0, stride 2);
a new stage opens at each strided block (strides 4, 8, 16, 32); the last holds the 1x1 head conv (1280).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from torch import nn

from vision_backbones.layers import make_divisible
from vision_backbones.layers.inverted_residual import InvertedResidualNetwork, InvertedResidualSpec
from vision_backbones.registry import register_family


class MnasStage(NamedTuple):
    """One row of the searched network: ``repeats`` blocks, the first with ``stride``."""

    expansion: int
    channels: int
    repeats: int
    stride: int
    kernel_size: int


# MnasNet-B1 (paper Fig. 7 without SE; torchvision). The first row is the "SepConv" block: no expansion.
_B1_STAGES = (
    MnasStage(1, 16, 1, 1, 3),
    MnasStage(3, 24, 3, 2, 3),
    MnasStage(3, 40, 3, 2, 5),
    MnasStage(6, 80, 3, 2, 5),
    MnasStage(6, 96, 2, 1, 3),
    MnasStage(6, 192, 4, 2, 5),
    MnasStage(6, 320, 1, 1, 3),
)


@dataclass(frozen=True)
class MnasNetConfig:
    """Architecture of one MnasNet variant.

    Attributes:
        width_mult: depth multiplier ("alpha") applied to the stem and every block's channels.
        stem_channels: output channels of the 3x3/2 stem conv at ``width_mult=1``.
        stages: the searched rows (expansion, channels, repeats, stride, kernel size).
        head_channels: the 1x1 head conv before pooling (not scaled).
        dropout: before the classifier.
        bn_momentum: batch-norm momentum (torchvision: 1 - 0.9997, TensorFlow's decay).
    """

    width_mult: float = 1.0
    stem_channels: int = 32
    stages: tuple[MnasStage, ...] = _B1_STAGES
    head_channels: int = 1280
    dropout: float = 0.2
    bn_momentum: float = 1 - 0.9997

    def __post_init__(self) -> None:
        if not self.width_mult > 0:
            raise ValueError(f"width_mult must be > 0, got {self.width_mult}")
        if not self.stages or not all(isinstance(s, tuple) and len(s) == 5 for s in self.stages):
            raise ValueError(
                f"stages must be a non-empty tuple of (expansion, channels, repeats, stride, kernel), got {self.stages!r}"
            )
        for row in map(MnasStage._make, self.stages):
            sizes = (row.expansion, row.channels, row.repeats)
            if row.stride not in (1, 2) or row.kernel_size % 2 == 0 or min(sizes) < 1:
                raise ValueError(f"bad stage {row}; expected stride 1 or 2, an odd kernel and positive sizes")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.bn_momentum < 1.0:
            raise ValueError(f"bn_momentum must be in (0, 1), got {self.bn_momentum}")


def block_specs(config: MnasNetConfig) -> list[InvertedResidualSpec]:
    """Every block with its rounded channels, in order (the converter names layers from this list)."""
    specs = []
    channels = make_divisible(config.stem_channels * config.width_mult, 8)
    for row in map(MnasStage._make, config.stages):
        out = make_divisible(row.channels * config.width_mult, 8)
        for i in range(row.repeats):
            stride = row.stride if i == 0 else 1
            expanded = channels * row.expansion
            specs.append(InvertedResidualSpec(channels, out, expanded, kernel_size=row.kernel_size, stride=stride))
            channels = out
    return specs


class MnasNet(InvertedResidualNetwork):
    """Stem + inverted residual stages at strides 2, 4, 8, 16, 32; the last ends with the head conv."""

    def __init__(
        self,
        config: MnasNetConfig,
        *,
        in_channels: int,
        num_classes: int | None,
        out_indices: Sequence[int] | None,
        frozen_stages: int,
        norm_eval: bool,
    ) -> None:
        super().__init__(
            block_specs(config),
            stem_channels=make_divisible(config.stem_channels * config.width_mult, 8),
            head_channels=config.head_channels,
            act_layer=nn.ReLU,
            norm_layer=partial(nn.BatchNorm2d, momentum=config.bn_momentum),
            dropout=config.dropout,
            in_channels=in_channels,
            num_classes=num_classes,
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
        )


VARIANTS: dict[str, MnasNetConfig] = {
    "mnasnet0_5": MnasNetConfig(width_mult=0.5),
    "mnasnet0_75": MnasNetConfig(width_mult=0.75),
    "mnasnet1_0": MnasNetConfig(width_mult=1.0),
    "mnasnet1_3": MnasNetConfig(width_mult=1.3),
}

register_family("mnasnet", VARIANTS, MnasNet)
