"""Darknet-19/53 (YOLOv2/YOLOv3) and CSPDarknet (CSPNet, YOLOv4).

Papers: YOLOv2 https://arxiv.org/abs/1612.08242, YOLOv3 https://arxiv.org/abs/1804.02767,
CSPNet https://arxiv.org/abs/1911.11929, YOLOv4 https://arxiv.org/abs/2004.10934

Darknet-53 (YOLOv3) is a stride-1 3x3 stem conv, then five stages that each open with a stride-2
3x3 conv followed by residual ``DarknetBlock``s (1x1 conv to half the channels, 3x3 conv back, add).
Darknet-19 is YOLOv2's network rebuilt with YOLOv3's two improvements, as the seed does: each
"2x2 max pool + 3x3 conv" becomes one stride-2 3x3 conv, and each 1x1/3x3 pair becomes a residual
``DarknetBlock``. So both share ``DarknetStage`` and differ only in ``depths``.

CSPNet's idea (``CSPStage``): split a stage's features into two paths; only one goes through the
blocks, the other (the "cross-stage partial" path) bypasses them, and a 1x1 transition conv fuses the
concatenation. The blocks see half the channels: CSPDarknet-53 costs a third fewer FLOPs than
Darknet-53. The split is two separate 1x1 convs (``cross_conv``, ``block_conv``), the YOLOv5 way:
the same maths as timm's one 1x1 conv followed by a channel split, whose weights convert by cutting
that conv's output channels in two (``convert/darknet.py``).

Activations: LeakyReLU(0.1) for Darknet, as in the YOLO papers; ReLU for CSPDarknet, as the seed
(``negative_slope=0.0``; YOLOv4 used Mish, timm LeakyReLU(0.01)). Two options reproduce timm's
``cspdarknet53`` (the original YOLOv4 layout): ``csp_wide_first_stage`` (stage 0's paths keep the
full width and its block is a 0.5 bottleneck) and ``csp_block_transition`` (a 1x1 conv on the block
path after the blocks).

``output_stride`` 16 / 8: the last one / two stages' stride-2 convs run at stride 1 and the 3x3 convs
after them are dilated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import ConvNormAct, DropPath, drop_path_rates
from vision_backbones.published import Published
from vision_backbones.registry import register_family
from vision_backbones.validate import check_float, check_int, check_ints, check_rate

ConvFactory = Callable[..., ConvNormAct]


class DarknetBlock(nn.Module):
    """YOLOv3 residual block: 1x1 conv to ``expansion * channels``, 3x3 conv back, add the input."""

    def __init__(self, channels: int, *, expansion: float, conv: ConvFactory, drop_path: float = 0.0) -> None:
        super().__init__()
        mid_channels = int(channels * expansion)
        self.conv1 = conv(channels, mid_channels, 1)
        self.conv2 = conv(mid_channels, channels, 3)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))  # (B, C, H, W)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return x + out


class DarknetStage(nn.Sequential):
    """Stride-2 3x3 conv, then ``depth`` ``DarknetBlock``s (none for Darknet-19's first stage)."""

    def __init__(
        self, in_channels: int, out_channels: int, depth: int, *, conv: ConvFactory, drop_paths: Sequence[float] = ()
    ) -> None:
        super().__init__()
        rates = list(drop_paths) or [0.0] * depth
        self.down = conv(in_channels, out_channels, 3, stride=2)
        self.blocks = nn.Sequential(
            *[DarknetBlock(out_channels, expansion=0.5, conv=conv, drop_path=rates[i]) for i in range(depth)]
        )
        self.out_channels = out_channels


class CSPStage(nn.Module):
    """Stride-2 3x3 conv, split into a cross path and a block path, concatenate, 1x1 transition.

    ``wide_split``: each path keeps all ``out_channels`` and the blocks bottleneck to half (YOLOv4's
    first stage); otherwise each path gets half and the blocks keep that width (seed, YOLOv5).
    ``block_transition``: a 1x1 conv on the block path after the blocks (YOLOv4, timm).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int,
        *,
        conv: ConvFactory,
        wide_split: bool,
        block_transition: bool,
        drop_paths: Sequence[float] = (),
    ) -> None:
        super().__init__()
        rates = list(drop_paths) or [0.0] * depth
        split_channels = out_channels if wide_split else out_channels // 2
        self.down = conv(in_channels, out_channels, 3, stride=2)
        self.cross_conv = conv(out_channels, split_channels, 1)
        self.block_conv = conv(out_channels, split_channels, 1)
        expansion = 0.5 if wide_split else 1.0
        self.blocks = nn.Sequential(
            *[DarknetBlock(split_channels, expansion=expansion, conv=conv, drop_path=rates[i]) for i in range(depth)]
        )
        self.block_transition: nn.Module = nn.Identity()
        if block_transition:
            self.block_transition = conv(split_channels, split_channels, 1)
        self.transition = conv(2 * split_channels, out_channels, 1)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        x = self.down(x)  # (B, C, H/2, W/2)
        cross = self.cross_conv(x)  # (B, S, H/2, W/2), S = C/2 (or C when wide_split)
        blocks = self.block_transition(self.blocks(self.block_conv(x)))  # (B, S, H/2, W/2)
        return self.transition(torch.cat([cross, blocks], dim=1))  # (B, 2S, ...) -> (B, C, H/2, W/2)


@dataclass(frozen=True)
class DarknetConfig:
    """Architecture of one Darknet / CSPDarknet variant.

    Attributes:
        depths: ``DarknetBlock``s per stage (0: the stage is only its stride-2 conv).
        widths: output channels per stage.
        stem_channels: output channels of the stride-1 3x3 stem conv.
        csp: CSPNet stages (``CSPStage``) wherever a stage has blocks.
        negative_slope: LeakyReLU slope of every activation; ``0.0`` means ReLU.
        csp_wide_first_stage: stage 0's CSP paths keep the full width, its blocks bottleneck to half
            (YOLOv4's original layout, timm).
        csp_block_transition: a 1x1 conv after the blocks on each CSP block path (YOLOv4, timm).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth of the last ``DarknetBlock``'s residual branch, growing linearly from 0.
    """

    depths: tuple[int, ...] = (1, 2, 8, 8, 4)
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)
    stem_channels: int = 32
    csp: bool = False
    negative_slope: float = 0.1
    csp_wide_first_stage: bool = False
    csp_block_transition: bool = False
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        check_ints("depths", self.depths, min=0)
        check_ints("widths", self.widths, min=1, length=len(self.depths), per="stage")
        check_int("stem_channels", self.stem_channels, min=1)
        check_float("negative_slope", self.negative_slope, min=0)
        if (self.csp_wide_first_stage or self.csp_block_transition) and not self.csp:
            raise ValueError(
                "csp_wide_first_stage / csp_block_transition need csp=True; expected both False for plain Darknet"
            )
        odd = [w for w in self.widths if w % 2]
        if self.csp and odd:
            raise ValueError(f"CSP stages split channels in two; expected even widths, got {odd} in {self.widths}")
        check_rate("drop_rate", self.drop_rate)
        check_rate("drop_path_rate", self.drop_path_rate)


class Darknet(Backbone):
    """Stride-1 stem conv + stages at strides 2, 4, 8, 16, 32, each opening with a stride-2 conv."""

    supports_output_stride = True

    def __init__(self, config: DarknetConfig, *, in_channels: int, num_classes: int | None) -> None:
        act_layer = partial(nn.LeakyReLU, config.negative_slope) if config.negative_slope > 0 else nn.ReLU
        conv: ConvFactory = partial(ConvNormAct, act_layer=act_layer)
        stem = conv(in_channels, config.stem_channels, 3)
        stages: list[DarknetStage | CSPStage] = []
        channels = config.stem_channels
        rates = iter(drop_path_rates(config.drop_path_rate, sum(config.depths)))
        for index, (depth, width) in enumerate(zip(config.depths, config.widths)):
            drop_paths = [next(rates) for _ in range(depth)]
            stage: DarknetStage | CSPStage
            if config.csp and depth > 0:
                wide = config.csp_wide_first_stage and index == 0
                stage = CSPStage(
                    channels,
                    width,
                    depth,
                    conv=conv,
                    wide_split=wide,
                    block_transition=config.csp_block_transition,
                    drop_paths=drop_paths,
                )
            else:
                stage = DarknetStage(channels, width, depth, conv=conv, drop_paths=drop_paths)
            stages.append(stage)
            channels = stage.out_channels
        head = ClassifierHead(channels, num_classes, dropout=config.drop_rate) if num_classes is not None else None
        super().__init__(stem, stages, in_channels=in_channels, head=head)


VARIANTS: dict[str, DarknetConfig] = {
    "darknet19": DarknetConfig(depths=(0, 1, 1, 2, 2)),
    "darknet53": DarknetConfig(depths=(1, 2, 8, 8, 4)),
    "cspdarknet19": DarknetConfig(depths=(0, 1, 1, 2, 2), csp=True, negative_slope=0.0),
    "cspdarknet53": DarknetConfig(depths=(1, 2, 8, 8, 4), csp=True, negative_slope=0.0),
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``); multiples of 8
# keep every CSP split even.
DESIGN = DesignFields(channels=("stem_channels", "widths"), depths=("depths",))

# timm's pretrained_cfg: 256 px, crop 0.887; ``darknet53`` bicubic, ``cspdarknet53`` bilinear (the 19-layer
# variants have no released weights and take their 53-layer sibling's).
PREPROCESSING = {
    name: Preprocessing(input_size=256, crop_pct=0.887, interpolation="bilinear" if config.csp else "bicubic")
    for name, config in VARIANTS.items()
}

# Seed README figures (its Darknet rows carried a channel typo, 258 for 256, that its authors later fixed;
# these are the fixed figures); Darknet-53's top-1 is the seed's own ImageNet training.
PUBLISHED = {
    "darknet19": Published(19.82, 5.53),
    "darknet53": Published(40.58, 14.31, top1=77.3, top1_source="seed README, its own ImageNet training"),
    "cspdarknet53": Published(26.24, 9.44),
}

register_family("darknet", VARIANTS, Darknet, design=DESIGN, preprocessing=PREPROCESSING, published=PUBLISHED)
