"""ResNet, ResNeXt and Wide ResNet.

- ResNet, "Deep Residual Learning for Image Recognition" (He et al., 2015),
  https://arxiv.org/abs/1512.03385: every block learns a residual ``F(x)`` added to its input
  (``BasicBlock`` / ``Bottleneck``: ``act(branch(x) + shortcut(x))``). As in torchvision and timm
  this is "ResNet v1.5": a downsampling ``Bottleneck`` strides in its 3x3 conv, not its first 1x1.
- ResNeXt, "Aggregated Residual Transformations for Deep Neural Networks" (Xie et al., 2016),
  https://arxiv.org/abs/1611.05431: the bottleneck's 3x3 conv is split into ``groups`` parallel
  paths ("cardinality") of ``width_per_group`` channels each (``ResNetConfig.groups``).
- Wide ResNet, "Wide Residual Networks" (Zagoruyko & Komodakis, 2016), https://arxiv.org/abs/1605.07146,
  in torchvision's form: the bottleneck's inner width is doubled (``width_per_group=128``).
- ``zero_init_residual``: the last norm of each branch starts at zero, so every block starts as the
  identity ("Accurate, Large Minibatch SGD", Goyal et al., 2017, https://arxiv.org/abs/1706.02677).
- ``drop_path_rate``: stochastic depth ("Deep Networks with Stochastic Depth", Huang et al., 2016,
  https://arxiv.org/abs/1603.09382), growing linearly from 0 at the first block to the rate at the last.

Levels: ``stages[0]`` is the 7x7 stride-2 conv (stride 2), ``stages[1]`` the 3x3 max pool and the
first residual stage (stride 4), ``stages[2..]`` the other residual stages (strides 8, 16, 32).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import torch
from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import ConvNormAct, DropPath, drop_path_rates, init_weights
from vision_backbones.layers.conv import run_chain
from vision_backbones.published import TORCHVISION_V1, Published, with_top1
from vision_backbones.registry import register_family
from vision_backbones.validate import check_choice, check_int, check_ints, check_rate


def _drop_path(rate: float) -> nn.Module:
    return DropPath(rate) if rate > 0.0 else nn.Identity()


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity, or a strided 1x1 projection + norm where shape changes (the paper's option B)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return ConvNormAct(in_channels, out_channels, 1, stride=stride, act_layer=None)


@torch.jit.unused
def _inline_tail(out: Tensor, x: Tensor, drop_path: nn.Module, shortcut: nn.Module, act: nn.Module) -> Tensor:
    """``act(drop_path(out) + shortcut(x))`` without calling the ``nn.Identity`` modules: with the
    containers opened (``run_chain``) a block makes 5 module calls fewer, 80 per ResNet-50 forward
    (torchvision's block makes 9-11 calls, ours made 14-16)."""
    if not isinstance(drop_path, nn.Identity):
        out = drop_path(out)
    out += x if isinstance(shortcut, nn.Identity) else run_chain(x, (shortcut,))
    return act(out)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34): ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, drop_path: float = 0.0) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, 3, stride=stride)
        self.conv2 = ConvNormAct(out_channels, out_channels, 3, act_layer=None)  # activation after the sum
        self.drop_path = _drop_path(drop_path)
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.act = nn.ReLU(inplace=True)  # in place is safe: the sum is the branch's fresh tensor

    def zero_init_last(self) -> None:
        nn.init.zeros_(cast(nn.BatchNorm2d, self.conv2.norm).weight)  # ConvNormAct's default norm

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            return self._forward_inline(x)
        out = self.drop_path(self.conv2(self.conv1(x)))
        out += self.shortcut(
            x
        )  # in place, as torchvision: a fresh sum costs page faults (channels_last eval was 1.04x)
        return self.act(out)

    @torch.jit.unused
    def _forward_inline(self, x: Tensor) -> Tensor:
        """``forward`` with the containers opened and the identities skipped (``_inline_tail``)."""
        modules = self._modules
        out = run_chain(x, (modules["conv1"], modules["conv2"]))  # type: ignore[arg-type]
        return _inline_tail(out, x, self.drop_path, self.shortcut, self.act)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (strided, grouped for ResNeXt) -> 1x1 expand by 4, plus the shortcut."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        groups: int = 1,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, mid_channels, 1)
        self.conv2 = ConvNormAct(mid_channels, mid_channels, 3, stride=stride, groups=groups)  # v1.5: stride here
        self.conv3 = ConvNormAct(mid_channels, out_channels, 1, act_layer=None)
        self.drop_path = _drop_path(drop_path)
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.act = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        nn.init.zeros_(cast(nn.BatchNorm2d, self.conv3.norm).weight)  # ConvNormAct's default norm

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            return self._forward_inline(x)
        out = self.drop_path(self.conv3(self.conv2(self.conv1(x))))
        out += self.shortcut(x)  # in place (the branch output is fresh and nothing saves it for backward)
        return self.act(out)

    @torch.jit.unused
    def _forward_inline(self, x: Tensor) -> Tensor:
        """``forward`` with the containers opened and the identities skipped (``_inline_tail``)."""
        modules = self._modules
        out = run_chain(x, (modules["conv1"], modules["conv2"], modules["conv3"]))  # type: ignore[arg-type]
        return _inline_tail(out, x, self.drop_path, self.shortcut, self.act)


class ResNetStage(nn.Module):
    """Optional pooling (the max pool before the first residual stage), then the residual blocks."""

    def __init__(self, pool: nn.Module, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.pool = pool
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.pool(x))


@dataclass(frozen=True)
class ResNetConfig:
    """Architecture of one ResNet variant.

    Attributes:
        block: ``"basic"`` (two 3x3 convs) or ``"bottleneck"`` (1x1-3x3-1x1, 4x expansion).
        depths: blocks per residual stage.
        widths: base width ("planes") of each residual stage; a stage outputs ``width * expansion``.
        stem_channels: channels of the 7x7 stem conv.
        groups: cardinality of the bottleneck's 3x3 conv (ResNeXt).
        width_per_group: channels per group at the first stage's base width 64; the bottleneck's
            inner width is ``int(width * width_per_group / 64) * groups`` (128 gives Wide ResNet).
        zero_init_residual: start the last norm of each residual branch at zero.
        drop_path_rate: stochastic depth rate of the last block.
        drop_rate: dropout before the classifier (0 in torchvision's recipe).
    """

    block: Literal["basic", "bottleneck"]
    depths: tuple[int, ...]
    widths: tuple[int, ...] = (64, 128, 256, 512)
    stem_channels: int = 64
    groups: int = 1
    width_per_group: int = 64
    zero_init_residual: bool = False
    drop_path_rate: float = 0.0
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        check_choice("block", self.block, ("basic", "bottleneck"))
        check_ints("depths", self.depths, min=1)
        check_ints("widths", self.widths, min=1, length=len(self.depths), per="stage")
        check_int("stem_channels", self.stem_channels, min=1)
        check_int("groups", self.groups, min=1)
        check_int("width_per_group", self.width_per_group, min=1)
        if self.block == "basic" and (self.groups, self.width_per_group) != (1, 64):
            raise ValueError(
                f"block='basic' takes groups=1 and width_per_group=64, got {self.groups} and {self.width_per_group}; "
                "use block='bottleneck' for ResNeXt or Wide ResNet"
            )
        check_rate("drop_path_rate", self.drop_path_rate)
        check_rate("drop_rate", self.drop_rate)


class ResNet(Backbone):
    """ResNet / ResNeXt / Wide ResNet backbone: five levels at strides 2, 4, 8, 16, 32."""

    supports_output_stride = True

    def __init__(self, config: ResNetConfig, *, in_channels: int, num_classes: int | None) -> None:
        expansion = Bottleneck.expansion if config.block == "bottleneck" else BasicBlock.expansion
        # Level 0: (B, in, H, W) -> (B, 64, H/2, W/2)
        stages: list[nn.Module] = [ConvNormAct(in_channels, config.stem_channels, 7, stride=2)]
        rates = iter(drop_path_rates(config.drop_path_rate, sum(config.depths)))
        in_ch = config.stem_channels
        for stage_index, (depth, width) in enumerate(zip(config.depths, config.widths)):
            out_ch = width * expansion
            # The first residual stage halves the resolution with a max pool, the others with
            # their first block's stride.
            first = stage_index == 0
            pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if first else nn.Identity()
            blocks: list[nn.Module] = []
            for i in range(depth):
                stride = 2 if i == 0 and not first else 1
                rate = next(rates)
                if config.block == "bottleneck":
                    mid = int(width * config.width_per_group / 64) * config.groups
                    block: nn.Module = Bottleneck(
                        in_ch, mid, out_ch, stride=stride, groups=config.groups, drop_path=rate
                    )
                else:
                    block = BasicBlock(in_ch, out_ch, stride=stride, drop_path=rate)
                blocks.append(block)
                in_ch = out_ch
            stages.append(ResNetStage(pool, blocks))

        head = ClassifierHead(in_ch, num_classes, dropout=config.drop_rate) if num_classes is not None else None
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head)
        init_weights(self, linear="default")  # torchvision's scheme: Linear left at default
        if config.zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    module.zero_init_last()


VARIANTS: dict[str, ResNetConfig] = {
    "resnet18": ResNetConfig("basic", (2, 2, 2, 2)),
    "resnet34": ResNetConfig("basic", (3, 4, 6, 3)),
    "resnet50": ResNetConfig("bottleneck", (3, 4, 6, 3)),
    "resnet101": ResNetConfig("bottleneck", (3, 4, 23, 3)),
    "resnet152": ResNetConfig("bottleneck", (3, 8, 36, 3)),
    "resnext50_32x4d": ResNetConfig("bottleneck", (3, 4, 6, 3), groups=32, width_per_group=4),
    "resnext101_32x8d": ResNetConfig("bottleneck", (3, 4, 23, 3), groups=32, width_per_group=8),
    "wide_resnet50_2": ResNetConfig("bottleneck", (3, 4, 6, 3), width_per_group=128),
    "wide_resnet101_2": ResNetConfig("bottleneck", (3, 4, 23, 3), width_per_group=128),
}


def _channel_divisor(config: ResNetConfig) -> int:
    """Widths stay multiples of 8 and of ``64 / gcd(64, width_per_group)``, so a bottleneck's grouped 3x3 conv
    (``width * width_per_group / 64 * groups`` channels) keeps a whole number of channels per group
    (ResNeXt 32x4d: multiples of 16)."""
    return math.lcm(8, 64 // math.gcd(64, config.width_per_group))


# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``).
DESIGN = DesignFields(channels=("stem_channels", "widths"), depths=("depths",), channel_divisor=_channel_divisor)

# torchvision's IMAGENET1K_V1 weights (``weights.transforms()``): resize 256, center crop 224, bilinear.
PREPROCESSING = Preprocessing(input_size=224, crop_pct=224 / 256, interpolation="bilinear")

# Seed README figures; top-1 of torchvision's IMAGENET1K_V1 weights (its model docs), which convert to these
# models with identical logits.
PUBLISHED = with_top1(
    {
        "resnet18": Published(11.18, 3.64),
        "resnet34": Published(21.28, 7.34),
        "resnet50": Published(23.51, 8.22),
        "resnet101": Published(42.50, 15.66),
        "resnet152": Published(58.14, 23.11),
        "resnext50_32x4d": Published(22.98, 8.51),
        "resnext101_32x8d": Published(86.74, 32.95),
        "wide_resnet50_2": Published(66.83),
        "wide_resnet101_2": Published(124.84),
    },
    {
        "resnet18": 69.758,
        "resnet34": 73.314,
        "resnet50": 76.130,
        "resnet101": 77.374,
        "resnet152": 78.312,
        "resnext50_32x4d": 77.618,
        "resnext101_32x8d": 79.312,
        "wide_resnet50_2": 78.468,
        "wide_resnet101_2": 78.848,
    },
    source=TORCHVISION_V1,
)

register_family("resnet", VARIANTS, ResNet, design=DESIGN, preprocessing=PREPROCESSING, published=PUBLISHED)
