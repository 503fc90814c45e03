"""SENet: SE-ResNet, SE-ResNeXt and SENet-154.

Paper: "Squeeze-and-Excitation Networks" (Hu, Shen, Albanie, Sun, Wu; CVPR 2018 / TPAMI),
https://arxiv.org/abs/1709.01507

The idea is the SE block (``layers.SqueezeExcite``): *squeeze* each channel of a feature map to one
number by global average pooling, *excite* with a bottleneck of two fully connected layers
(``C -> C/r`` with ReLU, ``C/r -> C`` with a sigmoid; here 1x1 convs, ``r = 16``) and rescale every
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

from collections import OrderedDict
from dataclasses import dataclass

from torch import Tensor, nn

from vision_backbones.backbone import Backbone, ClassifierHead
from vision_backbones.layers import ConvNormAct, SqueezeExcite, init_weights
from vision_backbones.registry import register_family


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
        se_reduction: int,
        stride_in_1x1: bool,
        downsample_kernel_size: int,
    ) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, reduce_channels, 1, stride=stride if stride_in_1x1 else 1)
        self.conv2 = ConvNormAct(reduce_channels, mid_channels, 3, stride=1 if stride_in_1x1 else stride, groups=groups)
        self.conv3 = ConvNormAct(mid_channels, out_channels, 1, act_layer=None)  # activation after the sum
        self.se = SqueezeExcite(out_channels, out_channels // se_reduction)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            kernel = downsample_kernel_size if stride != 1 else 1  # only strided projections widen (SENet-154)
            self.shortcut = ConvNormAct(in_channels, out_channels, kernel, stride=stride, act_layer=None)
        self.act = nn.ReLU(inplace=True)  # in place is safe: the sum is a fresh tensor

    def forward(self, x: Tensor) -> Tensor:
        branch = self.se(self.conv3(self.conv2(self.conv1(x))))  # (B, C_out, H / stride, W / stride)
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
        se_reduction: SE bottleneck ratio ``r`` (squeeze to ``C // r`` channels).
        stem_channels: output channels of the stem.
        deep_stem: three 3x3 convs (64, 64, ``stem_channels``) instead of one 7x7 conv (SENet-154).
        stride_in_1x1: downsampling blocks stride in the first 1x1 conv, not the 3x3 (original ResNet).
        downsample_kernel_size: kernel of the strided projection shortcuts (SENet-154: 3).
        pool_ceil_mode: the stem max pool has no padding and rounds up (the Caffe models).
        drop_rate: dropout before the classifier (SENet-154: 0.2).
    """

    depths: tuple[int, ...]
    widths: tuple[int, ...] = (64, 128, 256, 512)
    groups: int = 1
    width_per_group: int = 64
    reduce_ratio: float = 1.0
    se_reduction: int = 16
    stem_channels: int = 64
    deep_stem: bool = False
    stride_in_1x1: bool = False
    downsample_kernel_size: int = 1
    pool_ceil_mode: bool = True
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("depths", "widths"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value or not all(isinstance(v, int) and v > 0 for v in value):
                raise ValueError(f"{name} must be a non-empty tuple of positive ints, got {value!r}")
        if len(self.depths) != len(self.widths):
            raise ValueError(f"depths {self.depths} and widths {self.widths} must have one entry per stage")
        for name in ("groups", "width_per_group", "se_reduction", "stem_channels"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not 0.0 < self.reduce_ratio <= 1.0:
            raise ValueError(f"reduce_ratio must be in (0, 1], got {self.reduce_ratio}")
        if self.downsample_kernel_size not in (1, 3):
            raise ValueError(f"downsample_kernel_size must be 1 or 3, got {self.downsample_kernel_size}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")


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
                    se_reduction=config.se_reduction,
                    stride_in_1x1=config.stride_in_1x1,
                    downsample_kernel_size=config.downsample_kernel_size,
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


_SE_RESNET = {"stride_in_1x1": True}
_SE_RESNEXT = {"groups": 32, "width_per_group": 4}
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

register_family("senet", VARIANTS, SENet)
