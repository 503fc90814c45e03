"""AlexNet, in torchvision's single-tower form.

Paper: "ImageNet Classification with Deep Convolutional Neural Networks" (Krizhevsky et al., 2012),
https://papers.nips.cc/paper/4824; torchvision follows "One weird trick for parallelizing
convolutional neural networks" (Krizhevsky, 2014), https://arxiv.org/abs/1404.5997 (64/192/384/256/256
filters, one GPU, no local response normalization).

The idea: a deep (for 2012) stack of biased convolutions with ReLU, overlapping 3x3/2 max pools,
and a large fully connected classifier regularized by dropout (``AlexNetHead``).

Levels: the first conv strides by 4 at once, so there is no stride-2 level. ``stages[0]`` is that
11x11/4 conv (stride 4); ``stages[1]`` and ``stages[2]`` open with a max pool (strides 8, 16);
``stages[3]`` is the last max pool alone (stride 32), whose output the classifier sees. The pools
have no padding (55 -> 27 -> 13 -> 6 at 224), hence a minimum input of 63 pixels, and no
``output_stride``: an unpadded pool cannot run at stride 1 and keep the level sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.layers import ConvNormAct
from vision_backbones.registry import register_family
from vision_backbones.validate import check_int, check_ints, check_rate


def _conv_relu(
    in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int | None = None
) -> ConvNormAct:
    """Biased conv -> ReLU: AlexNet has no normalization layers."""
    return ConvNormAct(in_channels, out_channels, kernel_size, stride=stride, padding=padding, norm_layer=None)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2)  # overlapping pooling, no padding


class AlexNetHead(nn.Module):
    """Adaptive pool to 6x6 -> flatten -> (dropout -> linear -> ReLU) x 2 -> linear ``fc``."""

    def __init__(
        self, in_channels: int, num_classes: int, *, hidden_channels: int, drop_rate: float, pool_size: int = 6
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(pool_size)  # fixed size whatever the input, for the first linear
        self.drop1 = nn.Dropout(drop_rate)
        self.fc1 = nn.Linear(in_channels * pool_size * pool_size, hidden_channels)
        self.act1 = nn.ReLU(inplace=True)
        self.drop2 = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(hidden_channels, hidden_channels)
        self.act2 = nn.ReLU(inplace=True)
        self.fc = nn.Linear(hidden_channels, num_classes)

    def pre_logits(self, x: Tensor) -> Tensor:
        x = self.pool(x).flatten(1)  # (B, C * 36)
        x = self.act1(self.fc1(self.drop1(x)))
        return self.act2(self.fc2(self.drop2(x)))  # (B, hidden_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pre_logits(x))


@dataclass(frozen=True)
class AlexNetConfig:
    """Architecture of AlexNet.

    Attributes:
        widths: output channels of the five convs (11x11/4, 5x5, 3x3, 3x3, 3x3).
        hidden_channels: width of the classifier's two hidden linear layers.
        drop_rate: dropout before each hidden linear layer.
    """

    widths: tuple[int, int, int, int, int] = (64, 192, 384, 256, 256)
    hidden_channels: int = 4096
    drop_rate: float = 0.5

    def __post_init__(self) -> None:
        check_ints("widths", self.widths, min=1, length=5)
        check_int("hidden_channels", self.hidden_channels, min=1)
        check_rate("drop_rate", self.drop_rate)


def _min_input_size() -> int:
    # Walk back from a 1x1 output: each 3x3/2 pool needs 2*n + 1 inputs, the 11x11/4 conv (padding 2)
    # needs 4*(n - 1) + 11 - 2*2. The 5x5 and 3x3 convs keep the size.
    size = 1
    for _ in range(3):
        size = 2 * size + 1
    return 4 * (size - 1) + 11 - 4  # 63


class AlexNet(Backbone):
    """AlexNet: four levels at strides 4, 8, 16, 32 (the first conv has stride 4)."""

    def __init__(self, config: AlexNetConfig, *, in_channels: int, num_classes: int | None) -> None:
        w = config.widths
        stages: list[nn.Module] = [
            _conv_relu(in_channels, w[0], 11, stride=4, padding=2),  # (B, 64, H/4, W/4)
            nn.Sequential(_pool(), _conv_relu(w[0], w[1], 5)),  # (B, 192, H/8, W/8)
            nn.Sequential(_pool(), _conv_relu(w[1], w[2], 3), _conv_relu(w[2], w[3], 3), _conv_relu(w[3], w[4], 3)),
            _pool(),  # (B, 256, H/32, W/32)
        ]
        head = None
        if num_classes is not None:
            head = AlexNetHead(w[4], num_classes, hidden_channels=config.hidden_channels, drop_rate=config.drop_rate)
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head, min_input_size=_min_input_size())


VARIANTS: dict[str, AlexNetConfig] = {"alexnet": AlexNetConfig()}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``).
DESIGN = DesignFields(channels=("widths",), fixed_because="it has one conv per level, no repeated blocks to count")

# torchvision's IMAGENET1K_V1 weights (``weights.transforms()``): resize 256, center crop 224, bilinear.
PREPROCESSING = Preprocessing(input_size=224, crop_pct=224 / 256, interpolation="bilinear")

register_family("alexnet", VARIANTS, AlexNet, design=DESIGN, preprocessing=PREPROCESSING)
