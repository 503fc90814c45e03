"""VGG-11/13/16/19, with or without batch norm.

Paper: "Very Deep Convolutional Networks for Large-Scale Image Recognition" (Simonyan & Zisserman,
2014), https://arxiv.org/abs/1409.1556. Batch norm variants: "Batch Normalization" (Ioffe & Szegedy,
2015), https://arxiv.org/abs/1502.03167, as torchvision's ``vgg*_bn``.

The idea: depth from nothing but stacked 3x3 convs (two 3x3 see as far as one 5x5, three as one
7x7, with fewer weights and more non-linearities), five blocks each closed by a 2x2 max pool, widths
doubling from 64 to 512. Variants differ only in ``depths`` (convs per block, the paper's
configurations A, B, D, E); ``batch_norm`` adds a norm after every conv (``VGGConfig.batch_norm``).

Levels: each block's max pool ends a level, so ``stages[0..4]`` are the five blocks at strides
2, 4, 8, 16, 32. The classifier (``VGGHead``) is the paper's three fully connected layers after an
adaptive 7x7 pool; its last linear is ``head.fc``. ``output_stride`` 16 or 8 removes the last one or
two max pools and dilates the convs after them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.layers import ConvNormAct, init_weights
from vision_backbones.registry import register_family
from vision_backbones.validate import check_int, check_ints, check_rate


def _vgg_block(in_channels: int, out_channels: int, depth: int, *, batch_norm: bool) -> nn.Sequential:
    """``depth`` 3x3 convs (+ norm) + ReLU, then the 2x2 max pool that halves the resolution."""
    # Without norm the conv keeps its bias; with norm, torchvision's conv bias is redundant (the norm
    # subtracts the mean) and the converter folds it into the norm's running mean.
    norm = nn.BatchNorm2d if batch_norm else None
    convs = [
        ConvNormAct(in_channels if i == 0 else out_channels, out_channels, 3, norm_layer=norm) for i in range(depth)
    ]
    return nn.Sequential(OrderedDict(convs=nn.Sequential(*convs), pool=nn.MaxPool2d(kernel_size=2, stride=2)))


class VGGHead(nn.Module):
    """Adaptive pool to 7x7 -> flatten -> (linear -> ReLU -> dropout) x 2 -> linear ``fc``."""

    def __init__(
        self, in_channels: int, num_classes: int, *, hidden_channels: int, drop_rate: float, pool_size: int = 7
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(pool_size)  # 7x7 at 224 already; fixed size for other inputs
        self.fc1 = nn.Linear(in_channels * pool_size * pool_size, hidden_channels)
        self.act1 = nn.ReLU(inplace=True)
        self.drop1 = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(hidden_channels, hidden_channels)
        self.act2 = nn.ReLU(inplace=True)
        self.drop2 = nn.Dropout(drop_rate)
        self.fc = nn.Linear(hidden_channels, num_classes)

    def pre_logits(self, x: Tensor) -> Tensor:
        x = self.pool(x).flatten(1)  # (B, C * 49)
        x = self.drop1(self.act1(self.fc1(x)))
        return self.drop2(self.act2(self.fc2(x)))  # (B, hidden_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pre_logits(x))


@dataclass(frozen=True)
class VGGConfig:
    """Architecture of one VGG variant.

    Attributes:
        depths: 3x3 convs per block (one block per level).
        widths: output channels of each block.
        batch_norm: batch norm after every conv (torchvision ``vgg*_bn``).
        hidden_channels: width of the classifier's two hidden linear layers.
        drop_rate: dropout after each hidden linear layer.
    """

    depths: tuple[int, ...]
    widths: tuple[int, ...] = (64, 128, 256, 512, 512)
    batch_norm: bool = False
    hidden_channels: int = 4096
    drop_rate: float = 0.5

    def __post_init__(self) -> None:
        check_ints("depths", self.depths, min=1)
        check_ints("widths", self.widths, min=1, length=len(self.depths), per="stage")
        check_int("hidden_channels", self.hidden_channels, min=1)
        check_rate("drop_rate", self.drop_rate)


class VGG(Backbone):
    """VGG backbone: one level per block, at strides 2, 4, 8, 16, 32."""

    # Padded 3x3 convs and 2x2/2 pools: the generic rewrite drops the pools of the last blocks and
    # dilates their convs (DeepLab-v1 did this to VGG-16).
    supports_output_stride = True

    def __init__(self, config: VGGConfig, *, in_channels: int, num_classes: int | None) -> None:
        stages, channels = [], in_channels
        for depth, width in zip(config.depths, config.widths):
            stages.append(_vgg_block(channels, width, depth, batch_norm=config.batch_norm))  # (B, width, H/2, W/2)
            channels = width
        head = None
        if num_classes is not None:
            head = VGGHead(channels, num_classes, hidden_channels=config.hidden_channels, drop_rate=config.drop_rate)
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head)
        init_weights(self)


# Convs per block: the paper's configurations A (11 layers), B (13), D (16) and E (19).
_DEPTHS: dict[str, tuple[int, ...]] = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}

VARIANTS: dict[str, VGGConfig] = {
    **{name: VGGConfig(depths) for name, depths in _DEPTHS.items()},
    **{f"{name}_bn": VGGConfig(depths, batch_norm=True) for name, depths in _DEPTHS.items()},
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``).
DESIGN = DesignFields(channels=("widths",), depths=("depths",))

# torchvision's IMAGENET1K_V1 weights (``weights.transforms()``): resize 256, center crop 224, bilinear.
PREPROCESSING = Preprocessing(input_size=224, crop_pct=224 / 256, interpolation="bilinear")

register_family("vgg", VARIANTS, VGG, design=DESIGN, preprocessing=PREPROCESSING)
