"""VoVNet: One-Shot Aggregation backbones (V1 and V2).

Papers: VoVNetV1 https://arxiv.org/abs/1904.09730, VoVNetV2 (CenterMask) https://arxiv.org/abs/1911.06667

V1's idea is the One-Shot Aggregation (OSA) block (``OSABlock``): a chain of 3x3 convs whose
outputs are concatenated *once*, at the end, with the block input, then fused by a 1x1 conv. Unlike
DenseNet's concatenation at every layer, each conv keeps a constant input width, which is what makes
the network cheap in memory traffic on GPUs. V2 adds to each block an identity residual (when the
block keeps its shape) and effective squeeze-excitation (eSE: one 1x1 conv, no channel reduction,
hard-sigmoid gate). Both are config fields: ``residual=False, ese=False`` gives V1.

Layout, as in the V1 paper (Table 2) and the seed: ``stages[0]`` is the stem, three 3x3 convs ending
at stride 2; ``stages[1..4]`` each open with a 3x3/2 max pool, then OSA blocks, at strides 4..32.
Options reproduce the original detectron2 code and timm, which differ in three ways:
``fold_pool_into_stem`` (stage 1 has no pool; the stem's last conv gets stride 2 instead, so the
stride-2 level becomes the stem's second conv, as timm's ``feature_info`` declares it),
``pool_ceil_mode`` (max pool without padding, ``ceil_mode=True``) and ``ese_last_block_only``.
The depthwise-separable variants (timm ``*_dw``) are not implemented.

``output_stride`` 16 / 8: the last one / two stages' max pools run at stride 1 (3x3, padded) and their
3x3 convs are dilated by 2 / 2 and 4.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import ConvNormAct, DropPath, EffectiveSqueezeExcite, drop_path_rates
from vision_backbones.published import Published
from vision_backbones.registry import register_family
from vision_backbones.validate import check_int, check_ints, check_rate


class OSABlock(nn.Module):
    """``num_layers`` 3x3 convs, all outputs concatenated once -> 1x1 conv -> eSE -> (+ input)."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        *,
        num_layers: int,
        residual: bool,
        ese: bool,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            ConvNormAct(in_channels if i == 0 else mid_channels, mid_channels, 3) for i in range(num_layers)
        )
        self.aggregate = ConvNormAct(in_channels + num_layers * mid_channels, out_channels, 1)
        self.ese: nn.Module = EffectiveSqueezeExcite(out_channels) if ese else nn.Identity()
        # The identity shortcut needs matching shapes: in practice every block but a stage's first.
        self.residual = residual and in_channels == out_channels
        self.drop_path = DropPath(drop_path) if self.residual and drop_path > 0.0 else None

    def forward(self, x: Tensor) -> Tensor:
        features = [x]  # (B, C_in, H, W), then num_layers x (B, C_mid, H, W)
        out = x
        for conv in self.convs:
            out = conv(out)
            features.append(out)
        out = self.ese(self.aggregate(torch.cat(features, dim=1)))  # (B, C_out, H, W)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return out + x if self.residual else out


def _max_pool(ceil_mode: bool) -> nn.MaxPool2d:
    # Both halve even sizes alike, but the windows sit one pixel apart: padded windows cover
    # [2i-1, 2i+1], ceil-mode windows [2i, 2i+2]. Weights trained with one do not fit the other.
    if ceil_mode:
        return nn.MaxPool2d(3, stride=2, ceil_mode=True)
    return nn.MaxPool2d(3, stride=2, padding=1)


def _osa_stage(downsample: nn.Module, blocks: Sequence[OSABlock]) -> nn.Sequential:
    """One feature level: halve the resolution (max pool or strided conv), then OSA blocks."""
    return nn.Sequential(OrderedDict(downsample=downsample, blocks=nn.Sequential(*blocks)))


@dataclass(frozen=True)
class VoVNetConfig:
    """Architecture of one VoVNet variant.

    Attributes:
        stem_channels: output channels of the stem's 3x3 convs (the first has stride 2).
        mid_widths: width of the 3x3 convs inside the OSA blocks, per stage.
        widths: output channels of the OSA blocks (after the 1x1 aggregation), per stage.
        depths: OSA blocks per stage.
        num_layers: 3x3 convs per OSA block.
        residual: identity shortcut in each OSA block whose input and output shapes match (V2).
        ese: effective squeeze-excitation after each OSA block's aggregation (V2).
        ese_last_block_only: eSE only in each stage's last block (original code, timm).
        fold_pool_into_stem: replace stage 1's max pool by stride 2 in the stem's last conv
            (original code, timm); that conv then opens stage 1.
        pool_ceil_mode: max pools without padding and ``ceil_mode=True`` (original code, timm).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth on the residual OSA blocks (timm), growing linearly from 0 at
            the first block to this rate at the last.
    """

    stem_channels: tuple[int, ...] = (64, 64, 128)
    mid_widths: tuple[int, ...] = (128, 160, 192, 224)
    widths: tuple[int, ...] = (256, 512, 768, 1024)
    depths: tuple[int, ...] = (1, 1, 2, 2)
    num_layers: int = 5
    residual: bool = True
    ese: bool = True
    ese_last_block_only: bool = False
    fold_pool_into_stem: bool = False
    pool_ceil_mode: bool = False
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        check_ints("stem_channels", self.stem_channels, min=1)
        check_ints("depths", self.depths, min=1)
        check_ints("mid_widths", self.mid_widths, min=1, length=len(self.depths), per="stage")
        check_ints("widths", self.widths, min=1, length=len(self.depths), per="stage")
        check_int("num_layers", self.num_layers, min=1)
        if self.fold_pool_into_stem and len(self.stem_channels) < 2:
            raise ValueError(
                f"fold_pool_into_stem=True needs at least 2 stem convs, got stem_channels {self.stem_channels}"
            )
        if self.ese_last_block_only and not self.ese:
            raise ValueError(
                "ese_last_block_only=True needs ese=True; expected ese_last_block_only=False for a model without eSE"
            )
        check_rate("drop_rate", self.drop_rate)
        check_rate("drop_path_rate", self.drop_path_rate)


class VoVNet(Backbone):
    """Stem level (stride 2) + OSA stages (strides 4, 8, 16, 32)."""

    supports_output_stride = True

    def __init__(self, config: VoVNetConfig, *, in_channels: int, num_classes: int | None) -> None:
        # Stem level: 3x3 convs, the first at stride 2: (B, C_in, H, W) -> (B, stem_channels[-1], H/2, W/2).
        widths = (in_channels, *config.stem_channels)
        stem = [ConvNormAct(widths[i], widths[i + 1], 3, stride=2 if i == 0 else 1) for i in range(len(widths) - 1)]
        first_downsample: nn.Module = _max_pool(config.pool_ceil_mode)
        if config.fold_pool_into_stem:
            # timm: the last stem conv takes stride 2 and does stage 1's downsampling instead of the
            # pool, so it opens stage 1 and the stride-2 level is the stem's second-to-last conv.
            first_downsample = ConvNormAct(widths[-2], widths[-1], 3, stride=2)
            stem.pop()
        stages: list[nn.Module] = [nn.Sequential(*stem)]

        channels = config.stem_channels[-1]
        rates = iter(drop_path_rates(config.drop_path_rate, sum(config.depths)))
        for index, (mid, out, depth) in enumerate(zip(config.mid_widths, config.widths, config.depths)):
            blocks: list[OSABlock] = []
            for i in range(depth):
                with_ese = config.ese and (i == depth - 1 or not config.ese_last_block_only)
                blocks.append(
                    OSABlock(
                        channels,
                        mid,
                        out,
                        num_layers=config.num_layers,
                        residual=config.residual,
                        ese=with_ese,
                        drop_path=next(rates),
                    )
                )
                channels = out
            downsample = first_downsample if index == 0 else _max_pool(config.pool_ceil_mode)
            stages.append(_osa_stage(downsample, blocks))  # (B, out, H/2, W/2) of its input

        head = None if num_classes is None else ClassifierHead(channels, num_classes, dropout=config.drop_rate)
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head)


VARIANTS: dict[str, VoVNetConfig] = {
    "vovnet19_slim": VoVNetConfig(
        mid_widths=(64, 80, 96, 112), widths=(112, 256, 384, 512), depths=(1, 1, 1, 1), num_layers=3
    ),
    "vovnet39": VoVNetConfig(),
    "vovnet57": VoVNetConfig(depths=(1, 1, 4, 3)),
    "vovnet99": VoVNetConfig(depths=(1, 3, 9, 3)),
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``). Any widths fit: an
# OSA block concatenates whatever its convs give, and its identity shortcut applies only where the
# block's input and output widths already match.
DESIGN = DesignFields(channels=("stem_channels", "mid_widths", "widths"), depths=("depths",))

# timm's ``ese_vovnet*b`` / ``vovnet*a`` pretrained_cfg: 224 px, crop 0.875, bicubic.
PREPROCESSING = Preprocessing(input_size=224, crop_pct=0.875, interpolation="bicubic")

# Seed README figures.
PUBLISHED = {"vovnet39": Published(25.18, 15.62), "vovnet57": Published(41.45, 19.35), "vovnet99": Published(69.52)}

register_family("vovnet", VARIANTS, VoVNet, design=DESIGN, preprocessing=PREPROCESSING, published=PUBLISHED)
