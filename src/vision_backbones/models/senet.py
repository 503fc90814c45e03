"""SENet: SE-ResNet, SE-ResNeXt and SENet-154.

Paper: "Squeeze-and-Excitation Networks" (Hu, Shen, Albanie, Sun, Wu; CVPR 2018 / TPAMI),
https://arxiv.org/abs/1709.01507

The idea is the SE block (``layers.SqueezeExcite``): *squeeze* each channel of a feature map to one
number by global average pooling, *excite* with a bottleneck of two fully connected layers
(``C -> C/r`` with ReLU, ``C/r -> C`` with a sigmoid; here 1x1 convs, ``se_ratio = 1/r = 1/16``) and rescale every
channel by its gate. In SE-ResNet/ResNeXt the block recalibrates the residual branch, *before* it is
added to the shortcut (``SEBottleneck``: ``relu(se(branch(x)) + shortcut(x))``).

The variants follow the released Caffe models (the weights timm ships as ``legacy_*``):
- SE-ResNet-50/101/152: the original ResNet ("v1") bottleneck, which strides in its first 1x1 conv
  (``stride_in_1x1``), as the paper's ResNet-50 baseline (3.86 GFLOPs, i.e. mult-adds) does.
- SE-ResNeXt-50/101 (32x4d): grouped 3x3 conv (32 groups of 4 channels at the first stage), stride there.
- SENet-154 (paper, appendix): SE blocks in a 64x4d ResNeXt-152, modified by (1) halving the first
  1x1 conv of each bottleneck (``reduce_ratio=0.5``), (2) three 3x3 stem convs instead of the 7x7
  (``deep_stem``, 64-64-128), (3) 3x3 instead of 1x1 stride-2 projection shortcuts
  (``downsample_kernel_size``), (4) dropout 0.2 before the classifier.
The Caffe models' stem max pool has no padding and rounds up (``pool_ceil_mode``).

Levels (as ResNet): ``stages[0]`` the stem (stride 2); ``stages[1]`` the 3x3/2 max pool and the first
SE stage (stride 4); ``stages[2..4]`` the other SE stages (strides 8, 16, 32). ``output_stride`` 16 / 8
dilates the last one / two SE stages, as for ResNet.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from typing import TypedDict

from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import ConvNormAct, DropPath, SqueezeExcite, drop_path_rates, init_weights
from vision_backbones.registry import register_family
from vision_backbones.validate import check_choice, check_float, check_int, check_ints, check_rate


class SEBottleneck(nn.Module):
    """1x1 reduce -> 3x3 (grouped) -> 1x1 expand -> SE gate, plus the shortcut, then ReLU.

    ``reduce_channels`` is the first 1x1's output, ``mid_channels`` the 3x3's (they differ only in
    SENet-154, where the 3x3 widens 2x). ``stride_in_1x1`` puts the stride on the first 1x1 conv
    (original ResNet) instead of the 3x3.
    """

    def __init__(
        self,
        in_channels: int,
        reduce_channels: int,
        mid_channels: int,
        out_channels: int,
        *,
        stride: int,
        groups: int,
        se_ratio: float,
        stride_in_1x1: bool,
        downsample_kernel_size: int,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, reduce_channels, 1, stride=stride if stride_in_1x1 else 1)
        self.conv2 = ConvNormAct(reduce_channels, mid_channels, 3, stride=1 if stride_in_1x1 else stride, groups=groups)
        self.conv3 = ConvNormAct(mid_channels, out_channels, 1, act_layer=None)  # activation after the sum
        # floor(C * ratio), guarded against float error (C / 16 for the paper's r = 16), at least 1
        self.se = SqueezeExcite(out_channels, max(1, math.floor(out_channels * se_ratio + 1e-9)))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else None
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            kernel = downsample_kernel_size if stride != 1 else 1  # only strided projections widen (SENet-154)
            self.shortcut = ConvNormAct(in_channels, out_channels, kernel, stride=stride, act_layer=None)
        self.act = nn.ReLU(inplace=True)  # in place is safe: the sum is a fresh tensor

    def forward(self, x: Tensor) -> Tensor:
        branch = self.se(self.conv3(self.conv2(self.conv1(x))))  # (B, C_out, H / stride, W / stride)
        if self.drop_path is not None:
            branch = self.drop_path(branch)
        return self.act(branch + self.shortcut(x))


@dataclass(frozen=True)
class SENetConfig:
    """Architecture of one SENet variant.

    Attributes:
        depths: bottleneck blocks per SE stage.
        widths: base width ("planes") of each stage; a stage outputs ``4 * width`` channels.
        groups: cardinality of the 3x3 conv (1: SE-ResNet, 32: SE-ResNeXt, 64: SENet-154).
        width_per_group: the 3x3 conv has ``int(width * width_per_group / 64) * groups`` channels.
        reduce_ratio: the first 1x1 conv has ``reduce_ratio`` x the 3x3 conv's channels (SENet-154: 0.5).
        se_ratio: SE width as a fraction of the block's output channels (the paper's ``1 / r``, r = 16).
        stem_channels: output channels of the stem.
        deep_stem: three 3x3 convs (64, 64, ``stem_channels``) instead of one 7x7 conv (SENet-154).
        stride_in_1x1: downsampling blocks stride in the first 1x1 conv, not the 3x3 (original ResNet).
        downsample_kernel_size: kernel of the strided projection shortcuts (SENet-154: 3).
        pool_ceil_mode: the stem max pool has no padding and rounds up (the Caffe models).
        drop_rate: dropout before the classifier (SENet-154: 0.2).
        drop_path_rate: stochastic depth of the last block's residual branch, growing linearly from 0.
    """

    depths: tuple[int, ...]
    widths: tuple[int, ...] = (64, 128, 256, 512)
    groups: int = 1
    width_per_group: int = 64
    reduce_ratio: float = 1.0
    se_ratio: float = 1 / 16
    stem_channels: int = 64
    deep_stem: bool = False
    stride_in_1x1: bool = False
    downsample_kernel_size: int = 1
    pool_ceil_mode: bool = True
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        check_ints("depths", self.depths, min=1)
        check_ints("widths", self.widths, min=1, length=len(self.depths), per="stage")
        check_int("groups", self.groups, min=1)
        check_int("width_per_group", self.width_per_group, min=1)
        check_int("stem_channels", self.stem_channels, min=1)
        check_float("se_ratio", self.se_ratio, min=0, max=1, min_open=True)
        if not 0.0 < self.reduce_ratio <= 1.0:
            raise ValueError(f"reduce_ratio must be in (0, 1], got {self.reduce_ratio}")
        check_choice("downsample_kernel_size", self.downsample_kernel_size, (1, 3))
        check_rate("drop_rate", self.drop_rate)
        check_rate("drop_path_rate", self.drop_path_rate)


def _stem(in_channels: int, config: SENetConfig) -> nn.Sequential:
    """(B, in, H, W) -> (B, stem_channels, H/2, W/2): one 7x7/2 conv, or three 3x3 convs (the first strided)."""
    if not config.deep_stem:
        return nn.Sequential(ConvNormAct(in_channels, config.stem_channels, 7, stride=2))
    return nn.Sequential(
        ConvNormAct(in_channels, 64, 3, stride=2),
        ConvNormAct(64, 64, 3),
        ConvNormAct(64, config.stem_channels, 3),
    )


class SENet(Backbone):
    """Stem (stride 2) + four SE stages (strides 4, 8, 16, 32)."""

    supports_output_stride = True

    def __init__(self, config: SENetConfig, *, in_channels: int, num_classes: int | None) -> None:
        stages: list[nn.Module] = [_stem(in_channels, config)]
        channels = config.stem_channels
        rates = drop_path_rates(config.drop_path_rate, sum(config.depths))
        for index, (depth, width) in enumerate(zip(config.depths, config.widths)):
            mid = int(width * config.width_per_group / 64) * config.groups
            reduce = int(mid * config.reduce_ratio)
            out = 4 * width
            blocks = [
                SEBottleneck(
                    channels if i == 0 else out,
                    reduce,
                    mid,
                    out,
                    stride=2 if i == 0 and index > 0 else 1,
                    groups=config.groups,
                    se_ratio=config.se_ratio,
                    stride_in_1x1=config.stride_in_1x1,
                    downsample_kernel_size=config.downsample_kernel_size,
                    drop_path=rates[sum(config.depths[:index]) + i],
                )
                for i in range(depth)
            ]
            # The first SE stage halves the resolution with the stem's max pool, the others with a block.
            pool: nn.Module = nn.Identity()
            if index == 0:
                ceil = config.pool_ceil_mode
                pool = nn.MaxPool2d(3, stride=2, padding=0 if ceil else 1, ceil_mode=ceil)
            stages.append(nn.Sequential(OrderedDict(pool=pool, blocks=nn.Sequential(*blocks))))
            channels = out

        head = None if num_classes is None else ClassifierHead(channels, num_classes, dropout=config.drop_rate)
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head)
        init_weights(self, zero_conv_bias=False, linear="default")  # the SE convs keep their default bias


class _VariantFields(TypedDict, total=False):
    stride_in_1x1: bool
    groups: int
    width_per_group: int


_SE_RESNET: _VariantFields = {"stride_in_1x1": True}
_SE_RESNEXT: _VariantFields = {"groups": 32, "width_per_group": 4}
VARIANTS: dict[str, SENetConfig] = {
    "seresnet50": SENetConfig((3, 4, 6, 3), **_SE_RESNET),
    "seresnet101": SENetConfig((3, 4, 23, 3), **_SE_RESNET),
    "seresnet152": SENetConfig((3, 8, 36, 3), **_SE_RESNET),
    "seresnext50_32x4d": SENetConfig((3, 4, 6, 3), **_SE_RESNEXT),
    "seresnext101_32x4d": SENetConfig((3, 4, 23, 3), **_SE_RESNEXT),
    "senet154": SENetConfig(
        (3, 8, 36, 3),
        groups=64,
        width_per_group=4,
        reduce_ratio=0.5,
        stem_channels=128,
        deep_stem=True,
        downsample_kernel_size=3,
        drop_rate=0.2,
    ),
}


def _channel_divisor(config: SENetConfig) -> int:
    """Widths stay multiples of 8 and of what keeps whole channels per group in the grouped 3x3 conv and
    in the ``reduce_ratio`` 1x1 conv before it: ``width * width_per_group / 64`` must be a multiple of
    ``reduce_ratio``'s denominator (SE-ResNeXt 32x4d: 16; SENet-154, ratio 1/2: 32)."""
    denominator = Fraction(config.reduce_ratio).limit_denominator(64).denominator
    return math.lcm(8, 64 * denominator // math.gcd(64 * denominator, config.width_per_group))


# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``).
DESIGN = DesignFields(channels=("stem_channels", "widths"), depths=("depths",), channel_divisor=_channel_divisor)

# timm's ``legacy_se*`` pretrained_cfg (the Caffe models): 224 px, crop 0.875, bilinear.
PREPROCESSING = Preprocessing(input_size=224, crop_pct=0.875, interpolation="bilinear")

register_family("senet", VARIANTS, SENet, design=DESIGN, preprocessing=PREPROCESSING)
