"""Inception v3.

Paper: "Rethinking the Inception Architecture for Computer Vision", https://arxiv.org/abs/1512.00567

The paper's idea is factorizing convolutions: a 5x5 conv becomes two 3x3 convs (the double-3x3
branch of ``inception_a``, Figure 5; the released model keeps a 5x5 branch beside it), an n x n
conv a 1 x n followed by an n x 1 (``inception_b`` at 17x17 with n = 7, Figure 6), and at 8x8
the 3x3s fan out into parallel 1x3 and 3x1 convs (``inception_c``, Figure 7, a nested
``Branches``). The grid shrinks with strided convs and a max pool side by
side (``reduction_a`` / ``reduction_b``, Figure 10) instead of a pool in front of a block, which
would bottleneck the representation. One auxiliary classifier with batch norm (``InceptionV3Aux``)
reads the 17x17 map in training mode; it lives in the head (``head.aux``) and is never built for
the features-only backbone.

Block names follow the v4 paper's A/B/C scheme; torchvision and timm call them InceptionA,
InceptionC, InceptionE (blocks) and InceptionB, InceptionD (reductions). Options match the
references: ``transform_input`` (torchvision), ``aux_logits`` (torchvision on, timm off),
``drop_rate`` (torchvision 0.5, timm 0).

Levels (unpadded stride-2 convs and pools, 299 -> 147 / 71 / 35 / 17 / 8): conv 3x3/2, 3x3, 3x3
(stride 2) | max pool, 1x1, 3x3 (stride 4) | max pool, 3 x A (stride 8) | reduction A, 4 x B
(stride 16) | reduction B, 2 x C (stride 32). The smallest input is 75; the aux head needs 299
(its 5x5 average pool and 5x5 conv expect the 17x17 map).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Union, cast

from torch import Tensor, nn
from torch.nn import functional as F

from vision_backbones.backbone import Backbone
from vision_backbones.family import INCEPTION_MEAN, INCEPTION_STD, DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers.inception import (
    BasicConv,
    Branches,
    InceptionOutputs,
    chain,
    inception_stage,
    input_transform,
    pool_proj,
    split_1x3_3x1,
    stem_convs,
    stem_stride4,
)
from vision_backbones.registry import register_family
from vision_backbones.validate import check_int, check_ints, check_rate


def _pool_proj(in_channels: int, out_channels: int) -> nn.Sequential:
    return pool_proj(in_channels, out_channels, count_include_pad=True)  # as torchvision's F.avg_pool2d


def inception_a(in_channels: int, pool_channels: int) -> Branches:
    """35x35 (Figure 5): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | pool -> 1x1."""
    return Branches(
        in_channels,
        BasicConv(in_channels, 64, 1),
        nn.Sequential(BasicConv(in_channels, 48, 1), BasicConv(48, 64, 5)),
        nn.Sequential(BasicConv(in_channels, 64, 1), BasicConv(64, 96, 3), BasicConv(96, 96, 3)),
        _pool_proj(in_channels, pool_channels),
    )


def reduction_a(in_channels: int) -> Branches:
    """35 -> 17: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2."""
    return Branches(
        in_channels,
        BasicConv(in_channels, 384, 3, stride=2, padding=0),
        nn.Sequential(BasicConv(in_channels, 64, 1), BasicConv(64, 96, 3), BasicConv(96, 96, 3, stride=2, padding=0)),
        nn.MaxPool2d(3, stride=2),
    )


def inception_b(in_channels: int, mid: int) -> Branches:
    """17x17 (Figure 6, n = 7): 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> (7x1 -> 1x7) x 2 | pool -> 1x1."""
    return Branches(
        in_channels,
        BasicConv(in_channels, 192, 1),
        nn.Sequential(BasicConv(in_channels, mid, 1), BasicConv(mid, mid, (1, 7)), BasicConv(mid, 192, (7, 1))),
        nn.Sequential(
            BasicConv(in_channels, mid, 1),
            BasicConv(mid, mid, (7, 1)),
            BasicConv(mid, mid, (1, 7)),
            BasicConv(mid, mid, (7, 1)),
            BasicConv(mid, 192, (1, 7)),
        ),
        _pool_proj(in_channels, 192),
    )


def reduction_b(in_channels: int) -> Branches:
    """17 -> 8: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool 3x3/2."""
    return Branches(
        in_channels,
        nn.Sequential(BasicConv(in_channels, 192, 1), BasicConv(192, 320, 3, stride=2, padding=0)),
        nn.Sequential(
            BasicConv(in_channels, 192, 1),
            BasicConv(192, 192, (1, 7)),
            BasicConv(192, 192, (7, 1)),
            BasicConv(192, 192, 3, stride=2, padding=0),
        ),
        nn.MaxPool2d(3, stride=2),
    )


def inception_c(in_channels: int) -> Branches:
    """8x8 (Figure 7): 1x1 | 1x1 -> (1x3 | 3x1) | 1x1 -> 3x3 -> (1x3 | 3x1) | pool -> 1x1."""
    return Branches(
        in_channels,
        BasicConv(in_channels, 320, 1),
        nn.Sequential(BasicConv(in_channels, 384, 1), split_1x3_3x1(384, 384)),
        nn.Sequential(BasicConv(in_channels, 448, 1), BasicConv(448, 384, 3), split_1x3_3x1(384, 384)),
        _pool_proj(in_channels, 192),
    )


class InceptionV3Aux(nn.Module):
    """Auxiliary classifier on the 17x17 map: 5x5/3 avg pool -> 1x1 conv 128 -> 5x5 conv 768 -> fc."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.min_input_size = 299  # network input that gives the 17x17 map the 5x5 pool and conv need
        self.pool = nn.AvgPool2d(5, stride=3)  # 17x17 -> 5x5
        self.reduce = BasicConv(in_channels, 128, 1)
        self.conv = BasicConv(128, 768, 5, padding=0)  # 5x5 -> 1x1
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(self.reduce(self.pool(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))  # (B, num_classes)


class InceptionV3Head(ClassifierHead):
    """The classifier head, plus the auxiliary classifier (``aux``) used in training mode."""

    def __init__(self, in_channels: int, num_classes: int, *, drop_rate: float, aux_channels: int | None) -> None:
        super().__init__(in_channels, num_classes, dropout=drop_rate)
        self.aux = None if aux_channels is None else InceptionV3Aux(aux_channels, num_classes)


@dataclass(frozen=True)
class InceptionV3Config:
    """Architecture of Inception v3.

    Attributes:
        pool_channels: pool-projection width of each 35x35 block (its length: number of A blocks).
        mid_widths: width of the 1x7 / 7x1 convs of each 17x17 block (number of B blocks).
        num_c_blocks: 8x8 blocks.
        aux_logits: build the auxiliary classifier (classifier models only).
        transform_input: re-normalise ImageNet-normalised input to [-1, 1] first (torchvision).
        drop_rate: dropout before the classifier.
    """

    pool_channels: tuple[int, ...] = (32, 64, 64)
    mid_widths: tuple[int, ...] = (128, 160, 160, 192)
    num_c_blocks: int = 2
    aux_logits: bool = True
    transform_input: bool = False
    drop_rate: float = 0.5

    def __post_init__(self) -> None:
        check_ints("pool_channels", self.pool_channels, min=1)
        check_ints("mid_widths", self.mid_widths, min=1)
        check_int("num_c_blocks", self.num_c_blocks, min=1)
        check_rate("drop_rate", self.drop_rate)


class InceptionV3(Backbone):
    """Stem (strides 2, 4), then A blocks (8), B blocks (16), C blocks (32); aux head in training."""

    if TYPE_CHECKING:  # for mypy only: a class-level annotation would change what TorchScript infers
        head: InceptionV3Head | None

    def __init__(self, config: InceptionV3Config, *, in_channels: int, num_classes: int | None) -> None:
        stem = input_transform(config.transform_input, in_channels)
        convs = stem_convs(in_channels)
        stride4 = stem_stride4(cast(int, convs[-1].out_channels))
        channels = cast(int, cast(nn.Sequential, stride4.blocks)[-1].out_channels)
        blocks_a, channels = chain(channels, [partial(inception_a, pool_channels=p) for p in config.pool_channels])
        stages: list[nn.Module] = [convs, stride4, inception_stage(nn.MaxPool2d(3, stride=2), blocks_a)]  # 35x35

        downsample = reduction_a(channels)
        blocks_b, channels = chain(downsample.out_channels, [partial(inception_b, mid=m) for m in config.mid_widths])
        stages.append(inception_stage(downsample, blocks_b))  # 17x17
        aux_channels = channels

        downsample = reduction_b(channels)
        blocks_c, channels = chain(downsample.out_channels, [inception_c] * config.num_c_blocks)
        stages.append(inception_stage(downsample, blocks_c))  # 8x8

        head = None
        if num_classes is not None:
            aux = aux_channels if config.aux_logits else None
            head = InceptionV3Head(channels, num_classes, drop_rate=config.drop_rate, aux_channels=aux)
        super().__init__(stem, stages, in_channels=in_channels, head=head, min_input_size=75)

    # The override widens ``Backbone.forward``'s return on purpose: training mode with the aux head returns
    # ``InceptionOutputs``, as torchvision's Inception v3 does. ``type: ignore`` must end its line (TorchScript).
    def forward(  # type: ignore[override]
        self, x: Tensor
    ) -> Union[Tensor, list[Tensor], InceptionOutputs]:  # noqa: UP007  (TorchScript)
        """The selected maps (features only), logits (eval, or no aux head), or ``InceptionOutputs``
        (training with the aux head)."""
        self._validate(x)
        head = self.head
        if head is None:  # features only: the selected levels, as every backbone
            return self._run_levels(x, self._out_indices, self._out_indices[-1])[1]
        last = len(self.stages) - 1
        # Nested ifs, not one ``and`` chain: TorchScript then skips the code a None aux head can't run.
        if head.aux is not None:  # noqa: SIM102
            if self.training:
                if min(x.shape[-2:]) < head.aux.min_input_size:
                    raise ValueError(
                        f"the auxiliary classifier needs input >= {head.aux.min_input_size} in training mode, "
                        f"got {x.shape[-2]}x{x.shape[-1]}; use aux_logits=False for smaller inputs"
                    )
                final, taps = self._run_levels(x, [3], last)  # the aux head reads the 17x17 level (stride 16)
                return InceptionOutputs(head(final), [head.aux(taps[0])])
        return head(self._run_levels(x, [], last)[0])


VARIANTS: dict[str, InceptionV3Config] = {"inception_v3": InceptionV3Config()}

# Nothing for scaling or NetAdapt (``family.DesignFields``), and why.
DESIGN = DesignFields(
    fixed_because="its branch widths are hand-written per block in the network (only the pool and 7x7 widths are "
    "config fields), and its block counts are the lengths of those tuples"
)

# torchvision's weights: resize 342, center crop 299, bilinear. They expect input in [-1, 1]
# (mean = std = 0.5, as timm's ``inception_v3.tv_in1k``); ``transform_input=True`` takes ImageNet-normalised
# input instead, as torchvision does (``create_model`` then reports ImageNet's mean and std).
PREPROCESSING = Preprocessing(
    INCEPTION_MEAN, INCEPTION_STD, input_size=299, crop_pct=299 / 342, interpolation="bilinear"
)

register_family("inception_v3", VARIANTS, InceptionV3, design=DESIGN, preprocessing=PREPROCESSING)
