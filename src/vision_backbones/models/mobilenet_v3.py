"""MobileNetV3 (Large and Small).

"Searching for MobileNetV3" (Howard et al., 2019), https://arxiv.org/abs/1905.02244. The blocks are
MobileNetV2's inverted residuals (``layers.inverted_residual``) found by architecture search, with
three changes that show in the code:

- squeeze-and-excitation after the depthwise conv of some blocks, squeezing to a quarter of the
  expanded channels (rounded to 8) with a hard-sigmoid gate (``MobileNetV3Block.squeeze_excite``);
- hard-swish, ``x * relu6(x + 3) / 6``, instead of ReLU in the deeper blocks (``hard_swish``);
- an "efficient last stage": the 1x1 conv to 6x channels (960 / 576) runs at 7x7, then the
  classifier pools *first* and applies its hidden 1280 / 1024 layer to the pooled vector.

Levels: stride 2 (stem conv, plus the first block in Large), 4, 8, 16, 32; the last stage ends with
the 1x1 conv to 960 / 576 channels. The classifier's hidden layer belongs to the head.
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


class MobileNetV3Block(NamedTuple):
    """One row of the paper's Tables 1 and 2 (the block's input is the previous row's output)."""

    kernel_size: int
    expanded_channels: int
    out_channels: int
    squeeze_excite: bool
    hard_swish: bool  # False: ReLU
    stride: int


_B = MobileNetV3Block
LARGE_BLOCKS: tuple[MobileNetV3Block, ...] = (
    _B(3, 16, 16, False, False, 1),
    _B(3, 64, 24, False, False, 2),
    _B(3, 72, 24, False, False, 1),
    _B(5, 72, 40, True, False, 2),
    _B(5, 120, 40, True, False, 1),
    _B(5, 120, 40, True, False, 1),
    _B(3, 240, 80, False, True, 2),
    _B(3, 200, 80, False, True, 1),
    _B(3, 184, 80, False, True, 1),
    _B(3, 184, 80, False, True, 1),
    _B(3, 480, 112, True, True, 1),
    _B(3, 672, 112, True, True, 1),
    _B(5, 672, 160, True, True, 2),
    _B(5, 960, 160, True, True, 1),
    _B(5, 960, 160, True, True, 1),
)
SMALL_BLOCKS: tuple[MobileNetV3Block, ...] = (
    _B(3, 16, 16, True, False, 2),
    _B(3, 72, 24, False, False, 2),
    _B(3, 88, 24, False, False, 1),
    _B(5, 96, 40, True, True, 2),
    _B(5, 240, 40, True, True, 1),
    _B(5, 240, 40, True, True, 1),
    _B(5, 120, 48, True, True, 1),
    _B(5, 144, 48, True, True, 1),
    _B(5, 288, 96, True, True, 2),
    _B(5, 576, 96, True, True, 1),
    _B(5, 576, 96, True, True, 1),
)


@dataclass(frozen=True)
class MobileNetV3Config:
    """Architecture of one MobileNetV3 variant.

    Attributes:
        blocks: the block table, before the width multiplier.
        hidden_channels: width of the classifier's hidden layer (1280 Large, 1024 Small).
        width_multiplier: scales every channel count (rounded to multiples of 8).
        stem_channels: channels of the 3x3 stride-2 stem conv, before the width multiplier.
        head_expand_ratio: the final 1x1 conv has this many times the last block's channels.
        dropout: dropout between the hidden layer and the classifier.
        bn_eps, bn_momentum: batch norm settings (torchvision's port of the TF weights uses
            1e-3 / 0.01; timm's ``mobilenetv3_large_100`` uses PyTorch's defaults 1e-5 / 0.1).
    """

    blocks: tuple[MobileNetV3Block, ...]
    hidden_channels: int
    width_multiplier: float = 1.0
    stem_channels: int = 16
    head_expand_ratio: int = 6
    dropout: float = 0.2
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01

    def __post_init__(self) -> None:
        if not self.blocks or any(b.stride not in (1, 2) for b in self.blocks):
            raise ValueError(f"blocks must be non-empty with stride 1 or 2, got {self.blocks}")
        if self.width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be > 0, got {self.width_multiplier}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.bn_eps <= 0 or not 0.0 <= self.bn_momentum <= 1.0:
            raise ValueError(f"bn_eps must be > 0 and bn_momentum in [0, 1], got {self.bn_eps} and {self.bn_momentum}")


def block_specs(config: MobileNetV3Config) -> list[InvertedResidualSpec]:
    """Every block of ``config``, channels scaled by the width multiplier and rounded to multiples of 8."""
    width = config.width_multiplier
    in_channels = make_divisible(config.stem_channels * width)
    specs: list[InvertedResidualSpec] = []
    for block in config.blocks:
        expanded = make_divisible(block.expanded_channels * width)
        out_channels = make_divisible(block.out_channels * width)
        specs.append(
            InvertedResidualSpec(
                in_channels,
                out_channels,
                expanded_channels=expanded,
                kernel_size=block.kernel_size,
                stride=block.stride,
                squeeze_channels=make_divisible(expanded // 4) if block.squeeze_excite else 0,
                act_layer=nn.Hardswish if block.hard_swish else nn.ReLU,
                se_act_layer=nn.ReLU,
                se_gate_layer=nn.Hardsigmoid,
            )
        )
        in_channels = out_channels
    return specs


class MobileNetV3(InvertedResidualNetwork):
    """MobileNetV3 with five levels (strides 2-32) and a pooled hidden-layer classifier."""

    def __init__(
        self,
        config: MobileNetV3Config,
        *,
        in_channels: int,
        num_classes: int | None,
        out_indices: Sequence[int] | None,
        frozen_stages: int,
        norm_eval: bool,
    ) -> None:
        blocks = block_specs(config)
        super().__init__(
            blocks,
            stem_channels=make_divisible(config.stem_channels * config.width_multiplier),
            head_channels=config.head_expand_ratio * blocks[-1].out_channels,  # 960 Large, 576 Small
            act_layer=nn.Hardswish,
            norm_layer=partial(nn.BatchNorm2d, eps=config.bn_eps, momentum=config.bn_momentum),
            dropout=config.dropout,
            hidden_channels=make_divisible(config.hidden_channels * config.width_multiplier),
            hidden_activation=nn.Hardswish,
            in_channels=in_channels,
            num_classes=num_classes,
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
        )


VARIANTS: dict[str, MobileNetV3Config] = {
    "mobilenet_v3_large": MobileNetV3Config(LARGE_BLOCKS, hidden_channels=1280),
    "mobilenet_v3_small": MobileNetV3Config(SMALL_BLOCKS, hidden_channels=1024),
}

register_family("mobilenet_v3", VARIANTS, MobileNetV3)
