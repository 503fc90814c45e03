"""BN-Inception (Inception v2): GoogLeNet with batch normalization everywhere.

Paper: "Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate
Shift", https://arxiv.org/abs/1502.03167 (architecture in the appendix table, Figure 5).

The paper's subject is batch norm; its network changes GoogLeNet where the code shows it:
every convolution is followed by batch norm (``BasicConv``); the 5x5 branch becomes two stacked
3x3 convs (the "double 3x3" branch of ``bn_inception_block``); the pooling branch uses average
pooling in most blocks; and 3c and 4e are stride-2 blocks (no 1x1 branch, stride-2 3x3 convs,
the max pool passes its input through), which replace GoogLeNet's max pools between levels.

``inception_widths`` is the table, one row per block. The table's output-depth column disagrees
with its own branch columns for 4c-4e (576 / 576 / 1024 written, 608 / 608 / 1056 summed); the
branches are what is built, as in the widely used Caffe reproduction. Not from the paper (which
does not say): stride-2 convs and pools are padded, so level sizes are ``ceil(H / stride)``;
average pools exclude padding (as TensorFlow's); the table's first conv is built as a plain 7x7/2
conv; no auxiliary classifiers and no dropout (the paper removed it for BN networks).

Levels: conv 7x7/2 (stride 2) | max pool, 1x1, 3x3 (stride 4) | max pool, 3a-3b (stride 8) |
3c, 4a-4d (stride 16) | 4e, 5a-5b (stride 32).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers.inception import BasicConv, Branches, googlenet_stem, inception_stage
from vision_backbones.registry import register_family
from vision_backbones.validate import check_ints, check_rate

# One table row: (stride, #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool, pool proj).
# Stride-2 rows have #1x1 = 0 and pool proj = 0: a max pool passes its input through.
Row = tuple[int, int, int, int, int, int, str, int]


def bn_inception_block(in_channels: int, row: Row) -> Branches:
    """One row of the table: [1x1] | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool [-> 1x1]."""
    stride, c1, c3_reduce, c3, d3_reduce, d3, pool, pool_proj = row
    branches: list[nn.Module] = [BasicConv(in_channels, c1, 1)] if c1 else []
    branches.append(nn.Sequential(BasicConv(in_channels, c3_reduce, 1), BasicConv(c3_reduce, c3, 3, stride=stride)))
    double = [BasicConv(in_channels, d3_reduce, 1), BasicConv(d3_reduce, d3, 3), BasicConv(d3, d3, 3, stride=stride)]
    branches.append(nn.Sequential(*double))  # the paper's replacement for the 5x5 branch
    if pool == "avg":
        pooling: nn.Module = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    else:
        pooling = nn.MaxPool2d(3, stride=stride, padding=1)
    branches.append(nn.Sequential(pooling, BasicConv(in_channels, pool_proj, 1)) if pool_proj else pooling)
    return Branches(in_channels, *branches)


@dataclass(frozen=True)
class BNInceptionConfig:
    """Architecture of BN-Inception.

    Attributes:
        stem_channels: the 7x7/2 conv, then the 1x1 reduce and 3x3 conv after the first max pool.
        inception_widths: the paper's table, rows 3a..5b (see ``Row``); each stride-2 row opens
            a new level, the rows before the first one follow a max pool.
        drop_rate: dropout before the classifier.
    """

    stem_channels: tuple[int, int, int] = (64, 64, 192)
    inception_widths: tuple[Row, ...] = (
        (1, 64, 64, 64, 64, 96, "avg", 32),  # 3a
        (1, 64, 64, 96, 64, 96, "avg", 64),  # 3b
        (2, 0, 128, 160, 64, 96, "max", 0),  # 3c
        (1, 224, 64, 96, 96, 128, "avg", 128),  # 4a
        (1, 192, 96, 128, 96, 128, "avg", 128),  # 4b
        (1, 160, 128, 160, 128, 160, "avg", 128),  # 4c
        (1, 96, 128, 192, 160, 192, "avg", 128),  # 4d
        (2, 0, 128, 192, 192, 256, "max", 0),  # 4e
        (1, 352, 192, 320, 160, 224, "avg", 128),  # 5a
        (1, 352, 192, 320, 192, 224, "max", 128),  # 5b
    )
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        check_ints("stem_channels", self.stem_channels, min=1, length=3)
        if not self.inception_widths or self.inception_widths[0][0] != 1:
            raise ValueError("inception_widths must be non-empty and start with a stride-1 row (it follows a max pool)")
        for row in self.inception_widths:
            if len(row) != 8 or row[0] not in (1, 2) or row[6] not in ("avg", "max"):
                raise ValueError(f"bad inception_widths row {row!r}; expected (1|2, 5 widths, 'avg'|'max', pool proj)")
            if not all(isinstance(c, int) and c >= 0 for c in (*row[1:6], row[7])) or min(row[2:6]) < 1:
                raise ValueError(f"bad widths in inception_widths row {row!r}; expected ints >= 0, 3x3 branches > 0")
            if row[0] == 2 and (row[1] or row[7]):
                raise ValueError(f"stride-2 row {row!r} must have #1x1 = 0 and pool proj = 0 (pool passes through)")
        check_rate("drop_rate", self.drop_rate)


class BNInception(Backbone):
    """Stem conv (stride 2), stem level (stride 4), then one level per group of table rows."""

    def __init__(self, config: BNInceptionConfig, *, in_channels: int, num_classes: int | None) -> None:
        stages = googlenet_stem(in_channels, config.stem_channels, nn.MaxPool2d(3, stride=2, padding=1))
        channels = config.stem_channels[-1]

        # Group the rows into levels: a stride-2 row is the downsample of the next level.
        levels: list[tuple[nn.Module, list[nn.Module]]] = [(nn.MaxPool2d(3, stride=2, padding=1), [])]
        for row in config.inception_widths:
            block = bn_inception_block(channels, row)
            channels = block.out_channels
            if row[0] == 2:
                levels.append((block, []))
            else:
                levels[-1][1].append(block)
        stages += [inception_stage(downsample, blocks) for downsample, blocks in levels]

        head = None if num_classes is None else ClassifierHead(channels, num_classes, dropout=config.drop_rate)
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head)


VARIANTS: dict[str, BNInceptionConfig] = {"bninception": BNInceptionConfig()}

# Nothing for scaling or NetAdapt (``family.DesignFields``), and why.
DESIGN = DesignFields(
    fixed_because="its branch widths and pool types are a hand-written table, one row per Inception block"
)

# No released weights convert to this family (Cadene's port expects BGR in [0, 255]): ImageNet statistics
# at 224 px (crop 0.875, bilinear).
PREPROCESSING = Preprocessing()

register_family("bninception", VARIANTS, BNInception, design=DESIGN, preprocessing=PREPROCESSING)
