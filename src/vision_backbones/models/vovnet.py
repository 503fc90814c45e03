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

from vision_backbones.backbone import Backbone, ClassifierHead
from vision_backbones.layers import ConvNormAct, EffectiveSqueezeExcite
from vision_backbones.registry import register_family


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
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            ConvNormAct(in_channels if i == 0 else mid_channels, mid_channels, 3) for i in range(num_layers)
        )
        self.aggregate = ConvNormAct(in_channels + num_layers * mid_channels, out_channels, 1)
        self.ese: nn.Module = EffectiveSqueezeExcite(out_channels) if ese else nn.Identity()
        # The identity shortcut needs matching shapes: in practice every block but a stage's first.
        self.residual = residual and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        features = [x]  # (B, C_in, H, W), then num_layers x (B, C_mid, H, W)
        out = x
        for conv in self.convs:
            out = conv(out)
            features.append(out)
        out = self.ese(self.aggregate(torch.cat(features, dim=1)))  # (B, C_out, H, W)
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
        mid_channels: width of the 3x3 convs inside the OSA blocks, per stage.
        out_channels: output channels of the OSA blocks (after the 1x1 aggregation), per stage.
        depths: OSA blocks per stage.
        num_layers: 3x3 convs per OSA block.
        residual: identity shortcut in each OSA block whose input and output shapes match (V2).
        ese: effective squeeze-excitation after each OSA block's aggregation (V2).
        ese_last_block_only: eSE only in each stage's last block (original code, timm).
        fold_pool_into_stem: replace stage 1's max pool by stride 2 in the stem's last conv
            (original code, timm); that conv then opens stage 1.
        pool_ceil_mode: max pools without padding and ``ceil_mode=True`` (original code, timm).
        drop_rate: dropout before the classifier.
    """

    stem_channels: tuple[int, ...] = (64, 64, 128)
    mid_channels: tuple[int, ...] = (128, 160, 192, 224)
    out_channels: tuple[int, ...] = (256, 512, 768, 1024)
    depths: tuple[int, ...] = (1, 1, 2, 2)
    num_layers: int = 5
    residual: bool = True
    ese: bool = True
    ese_last_block_only: bool = False
    fold_pool_into_stem: bool = False
    pool_ceil_mode: bool = False
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("stem_channels", "mid_channels", "out_channels", "depths"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value or not all(isinstance(v, int) and v > 0 for v in value):
                raise ValueError(f"{name} must be a non-empty tuple of positive ints, got {value!r}")
        if not len(self.mid_channels) == len(self.out_channels) == len(self.depths):
            raise ValueError(
                f"mid_channels {self.mid_channels}, out_channels {self.out_channels} and depths "
                f"{self.depths} must have one entry per stage (equal lengths)"
            )
        if not isinstance(self.num_layers, int) or self.num_layers < 1:
            raise ValueError(f"num_layers must be a positive int, got {self.num_layers!r}")
        if self.fold_pool_into_stem and len(self.stem_channels) < 2:
            raise ValueError(
                f"fold_pool_into_stem=True needs at least 2 stem convs, got stem_channels {self.stem_channels}"
            )
        if self.ese_last_block_only and not self.ese:
            raise ValueError(
                "ese_last_block_only=True needs ese=True; expected ese_last_block_only=False for a model without eSE"
            )
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")


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
        for index, (mid, out, depth) in enumerate(zip(config.mid_channels, config.out_channels, config.depths)):
            blocks: list[OSABlock] = []
            for i in range(depth):
                with_ese = config.ese and (i == depth - 1 or not config.ese_last_block_only)
                blocks.append(
                    OSABlock(channels, mid, out, num_layers=config.num_layers, residual=config.residual, ese=with_ese)
                )
                channels = out
            downsample = first_downsample if index == 0 else _max_pool(config.pool_ceil_mode)
            stages.append(_osa_stage(downsample, blocks))  # (B, out, H/2, W/2) of its input

        head = None if num_classes is None else ClassifierHead(channels, num_classes, dropout=config.drop_rate)
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head)


VARIANTS: dict[str, VoVNetConfig] = {
    "vovnet19_slim": VoVNetConfig(
        mid_channels=(64, 80, 96, 112), out_channels=(112, 256, 384, 512), depths=(1, 1, 1, 1), num_layers=3
    ),
    "vovnet39": VoVNetConfig(),
    "vovnet57": VoVNetConfig(depths=(1, 1, 4, 3)),
    "vovnet99": VoVNetConfig(depths=(1, 3, 9, 3)),
}

register_family("vovnet", VARIANTS, VoVNet)
