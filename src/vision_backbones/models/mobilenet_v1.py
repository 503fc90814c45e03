"""MobileNet v1, with the width multiplier alpha (``width_multiplier``).

Paper: "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications"
(Howard et al., 2017), https://arxiv.org/abs/1704.04861.

The idea: replace every full 3x3 convolution by a depthwise-separable one (``DepthwiseSeparable``):
a 3x3 depthwise conv filters each channel alone, a 1x1 pointwise conv mixes channels, each followed
by batch norm and ReLU; 8-9x fewer multiply-adds than a full 3x3 conv at a small accuracy cost.
(The shared ``layers.SeparableConv2d`` has no norm between its two convs, so it does not fit here.)
Two global knobs trade accuracy for cost:

- width multiplier alpha (``MobileNetV1Config.width_multiplier``, variants ``mobilenet_v1_0_25/_0_5/_0_75``):
  every layer's channels times alpha (rounded to a multiple of 8, as timm and TF-slim do), so
  multiply-adds and weights shrink by about alpha squared;
- resolution multiplier rho: not an architecture parameter at all, just the input size
  (224 * rho: 224, 192, 160, 128 in the paper); the network is fully convolutional up to the global pool.

Activation: ReLU6 (``relu6=True``), as in TF-slim's reference code and timm; the paper says ReLU.

Levels: the stem (3x3/2 conv, stride 2) runs before the first level; ``stages[0]`` is the first,
stride-1 separable block (stride 2); each later stage opens with a stride-2 separable block
(strides 4, 8, 16, 32), as timm's ``feature_info`` has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import INCEPTION_MEAN, INCEPTION_STD, DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import ConvNormAct, init_weights, make_divisible
from vision_backbones.layers.conv import LayerFactory
from vision_backbones.registry import register_family
from vision_backbones.validate import check_float, check_int, check_ints, check_rate


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv (strided) -> BN -> act, then 1x1 pointwise conv -> BN -> act."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, act_layer: LayerFactory) -> None:
        super().__init__()
        self.depthwise = ConvNormAct(
            in_channels, in_channels, 3, stride=stride, groups=in_channels, act_layer=act_layer
        )
        self.pointwise = ConvNormAct(in_channels, out_channels, 1, act_layer=act_layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))  # (B, C_out, H / stride, W / stride)


@dataclass(frozen=True)
class MobileNetV1Config:
    """Architecture of one MobileNet v1 variant.

    Attributes:
        width_multiplier: the paper's alpha, applied to every layer's channels.
        stem_channels: channels of the 3x3/2 stem conv, before the width multiplier.
        widths: output channels of each stage's separable blocks, before the width multiplier.
        depths: separable blocks per stage; each stage but the first opens with a stride-2 block.
        relu6: ReLU6 (TF-slim, timm) rather than ReLU (the paper's text).
        drop_rate: dropout before the classifier.
    """

    width_multiplier: float = 1.0
    stem_channels: int = 32
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)
    depths: tuple[int, ...] = (1, 2, 2, 6, 2)
    relu6: bool = True
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        check_float("width_multiplier", self.width_multiplier, min=0, min_open=True)
        check_ints("depths", self.depths, min=1)
        check_ints("widths", self.widths, min=1, length=len(self.depths), per="stage")
        check_int("stem_channels", self.stem_channels, min=1)
        check_rate("drop_rate", self.drop_rate)


class MobileNetV1(Backbone):
    """MobileNet v1 backbone: stride-2 stem, then five levels at strides 2, 4, 8, 16, 32."""

    supports_output_stride = True

    def __init__(self, config: MobileNetV1Config, *, in_channels: int, num_classes: int | None) -> None:
        act = partial(nn.ReLU6 if config.relu6 else nn.ReLU, inplace=True)
        channels = make_divisible(config.stem_channels * config.width_multiplier)
        stem = ConvNormAct(in_channels, channels, 3, stride=2, act_layer=act)  # (B, 32 alpha, H/2, W/2)
        stages: list[nn.Module] = []
        for index, (depth, width) in enumerate(zip(config.depths, config.widths)):
            out = make_divisible(width * config.width_multiplier)
            stride = 1 if index == 0 else 2
            blocks = []
            for i in range(depth):
                blocks.append(DepthwiseSeparable(channels, out, stride=stride if i == 0 else 1, act_layer=act))
                channels = out
            stages.append(nn.Sequential(*blocks))  # (B, C, H / 2^(i+1), W / 2^(i+1))

        head = ClassifierHead(channels, num_classes, dropout=config.drop_rate) if num_classes is not None else None
        super().__init__(stem, stages, in_channels=in_channels, head=head)
        init_weights(self)


VARIANTS: dict[str, MobileNetV1Config] = {
    "mobilenet_v1": MobileNetV1Config(),
    "mobilenet_v1_0_75": MobileNetV1Config(width_multiplier=0.75),
    "mobilenet_v1_0_5": MobileNetV1Config(width_multiplier=0.5),
    "mobilenet_v1_0_25": MobileNetV1Config(width_multiplier=0.25),
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``).
DESIGN = DesignFields(channels=("stem_channels", "widths"), depths=("depths",), width_multiplier="width_multiplier")

# timm's ``mobilenetv1_100`` pretrained_cfg: 224 px, crop 0.875, bicubic, mean = std = 0.5.
PREPROCESSING = Preprocessing(INCEPTION_MEAN, INCEPTION_STD, input_size=224, crop_pct=0.875, interpolation="bicubic")

register_family("mobilenet_v1", VARIANTS, MobileNetV1, design=DESIGN, preprocessing=PREPROCESSING)
