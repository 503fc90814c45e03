"""Inception-ResNet-v2.

Paper: "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
https://arxiv.org/abs/1602.07261 (Figures 15-19).

The paper's idea is the residual Inception block (``InceptionResidual``): the concatenated
branches are projected back to the input width by a biased 1x1 conv (no batch norm), scaled down
(0.17 / 0.10 / 0.20 at 35x35 / 17x17 / 8x8; the paper found scaling residuals by 0.1-0.3 keeps
very wide residual networks from dying early in training), added to the input and passed
through ReLU. Grid reductions (``reduction_a``, ``reduction_b``) are plain Inception blocks.

The layout is the TF-slim release that timm's ``inception_resnet_v2`` ports, not the paper's
figure: an Inception v3-style stem and ``mixed_5b`` block (320 channels at 35x35), 10 / 20 / 10
residual blocks, the last one unscaled and without ReLU, then a 1x1 conv to 1536 channels.

Levels (unpadded stride-2 convs and pools, 299 -> 147 / 71 / 35 / 17 / 8): convs (stride 2) |
max pool, 1x1, 3x3 (stride 4) | max pool, mixed_5b, 10 x block35 (stride 8) | reduction A,
20 x block17 (stride 16) | reduction B, 10 x block8, 1x1 conv (stride 32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import INCEPTION_MEAN, INCEPTION_STD, DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import DropPath, drop_path_rates
from vision_backbones.layers.inception import (
    BasicConv,
    Branches,
    inception_stage,
    pool_proj,
    stem_convs,
    stem_stride4,
)
from vision_backbones.registry import register_family
from vision_backbones.validate import check_int, check_ints, check_rate


class InceptionResidual(Branches):
    """Branches -> concat -> biased 1x1 projection to ``in_channels`` -> x + scale * out -> ReLU."""

    def __init__(
        self, in_channels: int, *branches: nn.Module, scale: float, activate: bool = True, drop_path: float = 0.0
    ) -> None:
        super().__init__(in_channels, *branches)
        self.project = nn.Conv2d(self.out_channels, in_channels, 1)  # biased: no norm after it
        self.act: nn.Module = nn.ReLU() if activate else nn.Identity()
        self.scale = scale
        self.out_channels = in_channels
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.scale * self.project(self.concat(x))
        if self.drop_path is not None:
            out = self.drop_path(out)
        return self.act(x + out)


def mixed_5b(in_channels: int) -> Branches:
    """35x35 entry block: 1x1 96 | 1x1 48 -> 5x5 64 | 1x1 64 -> 3x3 96 -> 3x3 96 | pool -> 1x1 64."""
    return Branches(
        in_channels,
        BasicConv(in_channels, 96, 1),
        nn.Sequential(BasicConv(in_channels, 48, 1), BasicConv(48, 64, 5)),
        nn.Sequential(BasicConv(in_channels, 64, 1), BasicConv(64, 96, 3), BasicConv(96, 96, 3)),
        pool_proj(in_channels, 64, count_include_pad=False),
    )


def block35(channels: int, scale: float, drop_path: float = 0.0) -> InceptionResidual:
    """Inception-ResNet-A (Figure 16): 1x1 32 | 1x1 32 -> 3x3 32 | 1x1 32 -> 3x3 48 -> 3x3 64."""
    return InceptionResidual(
        channels,
        BasicConv(channels, 32, 1),
        nn.Sequential(BasicConv(channels, 32, 1), BasicConv(32, 32, 3)),
        nn.Sequential(BasicConv(channels, 32, 1), BasicConv(32, 48, 3), BasicConv(48, 64, 3)),
        scale=scale,
        drop_path=drop_path,
    )


def reduction_a(in_channels: int) -> Branches:
    """35 -> 17 (Figure 7 with k, l, m, n = 256, 256, 384, 384): 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool."""
    return Branches(
        in_channels,
        BasicConv(in_channels, 384, 3, stride=2, padding=0),
        nn.Sequential(
            BasicConv(in_channels, 256, 1), BasicConv(256, 256, 3), BasicConv(256, 384, 3, stride=2, padding=0)
        ),
        nn.MaxPool2d(3, stride=2),
    )


def block17(channels: int, scale: float, drop_path: float = 0.0) -> InceptionResidual:
    """Inception-ResNet-B (Figure 17): 1x1 192 | 1x1 128 -> 1x7 160 -> 7x1 192."""
    return InceptionResidual(
        channels,
        BasicConv(channels, 192, 1),
        nn.Sequential(BasicConv(channels, 128, 1), BasicConv(128, 160, (1, 7)), BasicConv(160, 192, (7, 1))),
        scale=scale,
        drop_path=drop_path,
    )


def reduction_b(in_channels: int) -> Branches:
    """17 -> 8 (Figure 18): 1x1 -> 3x3/2 384 | 1x1 -> 3x3/2 288 | 1x1 -> 3x3 -> 3x3/2 320 | max pool."""
    return Branches(
        in_channels,
        nn.Sequential(BasicConv(in_channels, 256, 1), BasicConv(256, 384, 3, stride=2, padding=0)),
        nn.Sequential(BasicConv(in_channels, 256, 1), BasicConv(256, 288, 3, stride=2, padding=0)),
        nn.Sequential(
            BasicConv(in_channels, 256, 1), BasicConv(256, 288, 3), BasicConv(288, 320, 3, stride=2, padding=0)
        ),
        nn.MaxPool2d(3, stride=2),
    )


def block8(channels: int, scale: float, activate: bool = True, drop_path: float = 0.0) -> InceptionResidual:
    """Inception-ResNet-C (Figure 19): 1x1 192 | 1x1 192 -> 1x3 224 -> 3x1 256."""
    return InceptionResidual(
        channels,
        BasicConv(channels, 192, 1),
        nn.Sequential(BasicConv(channels, 192, 1), BasicConv(192, 224, (1, 3)), BasicConv(224, 256, (3, 1))),
        scale=scale,
        activate=activate,
        drop_path=drop_path,
    )


@dataclass(frozen=True)
class InceptionResNetV2Config:
    """Architecture of Inception-ResNet-v2.

    Attributes:
        depths: residual blocks at 35x35, 17x17 and 8x8; the last 8x8 block is unscaled and
            has no ReLU (TF-slim).
        residual_scales: scale of the residual branch at each of the three grid sizes.
        head_channels: the 1x1 conv that ends the network.
        drop_rate: dropout before the classifier (the paper keeps 0.8, i.e. drops 0.2; timm 0).
        drop_path_rate: stochastic depth of the residual blocks' branches (not in the paper), growing
            linearly from 0 at the first residual block to this rate at the last.
    """

    depths: tuple[int, int, int] = (10, 20, 10)
    residual_scales: tuple[float, float, float] = (0.17, 0.10, 0.20)
    head_channels: int = 1536
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        check_ints("depths", self.depths, min=1, length=3)  # 35x35, 17x17, 8x8 blocks
        if len(self.residual_scales) != 3 or not all(0.0 < s <= 1.0 for s in self.residual_scales):
            raise ValueError(f"residual_scales must be 3 floats in (0, 1], got {self.residual_scales!r}")
        check_int("head_channels", self.head_channels, min=1)
        check_rate("drop_rate", self.drop_rate)
        check_rate("drop_path_rate", self.drop_path_rate)


class InceptionResNetV2(Backbone):
    """Stem (strides 2, 4), then residual Inception blocks at strides 8, 16, 32."""

    def __init__(self, config: InceptionResNetV2Config, *, in_channels: int, num_classes: int | None) -> None:
        n35, n17, n8 = config.depths
        s35, s17, s8 = config.residual_scales
        stem = stem_convs(in_channels)  # 299 -> 147
        stem4 = stem_stride4(cast(int, stem[-1].out_channels))  # -> 71
        entry = mixed_5b(cast(int, cast(nn.Sequential, stem4.blocks)[-1].out_channels))
        reduce_a = reduction_a(entry.out_channels)
        reduce_b = reduction_b(reduce_a.out_channels)
        c35, c17, c8 = entry.out_channels, reduce_a.out_channels, reduce_b.out_channels  # 320, 1088, 2080
        rates = iter(drop_path_rates(config.drop_path_rate, n35 + n17 + n8))
        blocks35 = [block35(c35, s35, drop_path=next(rates)) for _ in range(n35)]
        blocks17 = [block17(c17, s17, drop_path=next(rates)) for _ in range(n17)]
        blocks8 = [block8(c8, s8, drop_path=next(rates)) for _ in range(n8 - 1)]
        blocks8.append(block8(c8, 1.0, activate=False, drop_path=next(rates)))
        stages: list[nn.Module] = [
            stem,
            stem4,
            inception_stage(nn.MaxPool2d(3, stride=2), [entry, *blocks35]),  # 35
            inception_stage(reduce_a, blocks17),  # 17
            inception_stage(reduce_b, blocks8, BasicConv(c8, config.head_channels, 1)),  # 8
        ]
        channels = config.head_channels
        head = None if num_classes is None else ClassifierHead(channels, num_classes, dropout=config.drop_rate)
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head, min_input_size=75)


VARIANTS: dict[str, InceptionResNetV2Config] = {"inception_resnet_v2": InceptionResNetV2Config()}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``), and why not more.
DESIGN = DesignFields(
    depths=("depths",),
    fixed_because="its branch widths are hand-written per block type in the network (the paper's figures)",
)

# timm's ``inception_resnet_v2`` pretrained_cfg: 299 px, crop 0.8975, bicubic, mean = std = 0.5.
PREPROCESSING = Preprocessing(INCEPTION_MEAN, INCEPTION_STD, input_size=299, crop_pct=0.8975, interpolation="bicubic")

register_family("inception_resnet_v2", VARIANTS, InceptionResNetV2, design=DESIGN, preprocessing=PREPROCESSING)
