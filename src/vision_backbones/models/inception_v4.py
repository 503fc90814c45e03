"""Inception v4.

Paper: "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
https://arxiv.org/abs/1602.07261 (Figures 3-9).

The paper's idea is uniformity: one streamlined stem (Figure 3: three 3x3 convs, then three
splits where a strided conv and a max pool, or two conv towers, run side by side and are
concatenated: ``stem_split_pool``, ``stem_split_convs``, ``stem_split_reduce``), then a fixed
choice of blocks per grid size: 4 x Inception-A at 35x35, Reduction-A, 7 x Inception-B at 17x17,
Reduction-B, 3 x Inception-C at 8x8. The blocks reuse Inception v3's factorizations (two 3x3 for
a 5x5, 1x7 / 7x1 pairs, parallel 1x3 / 3x1 tails, here nested ``Branches``).

Branch order and the average pools (padding not counted) follow timm's ``inception_v4`` (the
TF-slim port), whose weights this converts. Levels: convs (stride 2, 147x147 at 299) | stem
split 1 and 2 (stride 4, 71x71) | stem split 3 + 4 x A (stride 8, 35x35) | Reduction-A + 7 x B
(stride 16, 17x17) | Reduction-B + 3 x C (stride 32, 8x8). The stride-4 level ends after the
second split (192 channels), where the grid next halves; timm's feature_info taps it one block
earlier (160 channels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from torch import nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import INCEPTION_MEAN, INCEPTION_STD, DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers.inception import (
    BasicConv,
    Branches,
    chain,
    inception_stage,
    pool_proj,
    split_1x3_3x1,
    stem_convs,
)
from vision_backbones.registry import register_family
from vision_backbones.validate import check_ints, check_rate


def _pool_proj(in_channels: int, out_channels: int) -> nn.Sequential:
    return pool_proj(in_channels, out_channels, count_include_pad=False)


def stem_split_pool(in_channels: int) -> Branches:
    """147 -> 73: max pool 3x3/2 | 3x3/2 conv 96 (Figure 3, first split)."""
    return Branches(in_channels, nn.MaxPool2d(3, stride=2), BasicConv(in_channels, 96, 3, stride=2, padding=0))


def stem_split_convs(in_channels: int) -> Branches:
    """73 -> 71: 1x1 -> 3x3 | 1x1 -> 7x1 -> 1x7 -> 3x3, all valid (Figure 3, second split)."""
    return Branches(
        in_channels,
        nn.Sequential(BasicConv(in_channels, 64, 1), BasicConv(64, 96, 3, padding=0)),
        nn.Sequential(
            BasicConv(in_channels, 64, 1),
            BasicConv(64, 64, (1, 7)),
            BasicConv(64, 64, (7, 1)),
            BasicConv(64, 96, 3, padding=0),
        ),
    )


def stem_split_reduce(in_channels: int) -> Branches:
    """71 -> 35: 3x3/2 conv 192 | max pool 3x3/2 (Figure 3, third split)."""
    return Branches(in_channels, BasicConv(in_channels, 192, 3, stride=2, padding=0), nn.MaxPool2d(3, stride=2))


def inception_a(in_channels: int) -> Branches:
    """35x35 (Figure 4): 1x1 96 | 1x1 -> 3x3 96 | 1x1 -> 3x3 -> 3x3 96 | pool -> 1x1 96."""
    return Branches(
        in_channels,
        BasicConv(in_channels, 96, 1),
        nn.Sequential(BasicConv(in_channels, 64, 1), BasicConv(64, 96, 3)),
        nn.Sequential(BasicConv(in_channels, 64, 1), BasicConv(64, 96, 3), BasicConv(96, 96, 3)),
        _pool_proj(in_channels, 96),
    )


def reduction_a(in_channels: int, k: int = 192, l: int = 224, m: int = 256, n: int = 384) -> Branches:  # noqa: E741
    """35 -> 17 (Figure 7, Table 1's k, l, m, n): 3x3/2 n | 1x1 k -> 3x3 l -> 3x3/2 m | max pool."""
    return Branches(
        in_channels,
        BasicConv(in_channels, n, 3, stride=2, padding=0),
        nn.Sequential(BasicConv(in_channels, k, 1), BasicConv(k, l, 3), BasicConv(l, m, 3, stride=2, padding=0)),
        nn.MaxPool2d(3, stride=2),
    )


def inception_b(in_channels: int) -> Branches:
    """17x17 (Figure 5): 1x1 384 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | pool -> 1x1 128."""
    return Branches(
        in_channels,
        BasicConv(in_channels, 384, 1),
        nn.Sequential(BasicConv(in_channels, 192, 1), BasicConv(192, 224, (1, 7)), BasicConv(224, 256, (7, 1))),
        nn.Sequential(
            BasicConv(in_channels, 192, 1),
            BasicConv(192, 192, (7, 1)),
            BasicConv(192, 224, (1, 7)),
            BasicConv(224, 224, (7, 1)),
            BasicConv(224, 256, (1, 7)),
        ),
        _pool_proj(in_channels, 128),
    )


def reduction_b(in_channels: int) -> Branches:
    """17 -> 8 (Figure 8): 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool."""
    return Branches(
        in_channels,
        nn.Sequential(BasicConv(in_channels, 192, 1), BasicConv(192, 192, 3, stride=2, padding=0)),
        nn.Sequential(
            BasicConv(in_channels, 256, 1),
            BasicConv(256, 256, (1, 7)),
            BasicConv(256, 320, (7, 1)),
            BasicConv(320, 320, 3, stride=2, padding=0),
        ),
        nn.MaxPool2d(3, stride=2),
    )


def inception_c(in_channels: int) -> Branches:
    """8x8 (Figure 6): 1x1 256 | 1x1 -> (1x3 | 3x1) | 1x1 -> 3x1 -> 1x3 -> (1x3 | 3x1) | pool -> 1x1 256."""
    return Branches(
        in_channels,
        BasicConv(in_channels, 256, 1),
        nn.Sequential(BasicConv(in_channels, 384, 1), split_1x3_3x1(384, 256)),
        nn.Sequential(
            BasicConv(in_channels, 384, 1),
            BasicConv(384, 448, (3, 1)),
            BasicConv(448, 512, (1, 3)),
            split_1x3_3x1(512, 256),
        ),
        _pool_proj(in_channels, 256),
    )


@dataclass(frozen=True)
class InceptionV4Config:
    """Architecture of Inception v4.

    Attributes:
        depths: Inception-A, -B and -C blocks (at 35x35, 17x17 and 8x8).
        drop_rate: dropout before the classifier (the paper keeps 0.8, i.e. drops 0.2; timm 0).
    """

    depths: tuple[int, int, int] = (4, 7, 3)
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        check_ints("depths", self.depths, min=0, length=3)  # A, B, C blocks
        check_rate("drop_rate", self.drop_rate)


class InceptionV4(Backbone):
    """Stem convs (stride 2), stem splits (4, 8), then A (8), B (16) and C (32) blocks."""

    def __init__(self, config: InceptionV4Config, *, in_channels: int, num_classes: int | None) -> None:
        stem = stem_convs(in_channels)  # 299 -> 147
        split_pool = stem_split_pool(cast(int, stem[-1].out_channels))
        split_convs = stem_split_convs(split_pool.out_channels)
        stages: list[nn.Module] = [stem, inception_stage(split_pool, [split_convs])]

        downsample: nn.Module = stem_split_reduce(split_convs.out_channels)
        channels = cast(int, downsample.out_channels)  # every Inception block sets out_channels
        reductions = (None, reduction_a, reduction_b)  # what opens the A, B and C levels after the stem split
        for reduce, block, depth in zip(reductions, (inception_a, inception_b, inception_c), config.depths):
            if reduce is not None:
                downsample = reduce(channels)
                channels = downsample.out_channels
            blocks, channels = chain(channels, [block] * depth)
            stages.append(inception_stage(downsample, blocks))

        head = None if num_classes is None else ClassifierHead(channels, num_classes, dropout=config.drop_rate)
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head, min_input_size=75)


VARIANTS: dict[str, InceptionV4Config] = {"inception_v4": InceptionV4Config()}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``), and why not more.
DESIGN = DesignFields(
    depths=("depths",),
    fixed_because="its branch widths are hand-written per block type in the network (the paper's figures)",
)

# timm's ``inception_v4`` pretrained_cfg: 299 px, crop 0.875, bicubic, mean = std = 0.5.
PREPROCESSING = Preprocessing(INCEPTION_MEAN, INCEPTION_STD, input_size=299, crop_pct=0.875, interpolation="bicubic")

register_family("inception_v4", VARIANTS, InceptionV4, design=DESIGN, preprocessing=PREPROCESSING)
