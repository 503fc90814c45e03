"""Pre-activation ResNet (ResNet v2): 18/34/50/101/152.

Paper: "Identity Mappings in Deep Residual Networks" (He et al., 2016), https://arxiv.org/abs/1603.05027.

The idea: move each block's norm and ReLU *before* its convs (``PreActBasicBlock``,
``PreActBottleneck``: ``x + F(x)`` with ``F = conv(relu(bn(...)))`` twice or three times) and add
nothing after the sum, so the shortcut path is a pure identity from any block to any later one:
signals and gradients pass the whole network unchanged. Because no block normalizes its output,
the network ends with one extra norm + ReLU (``final_norm``) before the global pool.

As in timm's ``resnetv2_*`` (with batch norm), a block that changes shape projects its shortcut with
a strided 1x1 conv applied to the *pre-activated* input ``relu(bn(x))``, and the bottleneck strides
in its 3x3 conv. The stem is a bare 7x7/2 conv (the first block's norm follows it); ``stem_norm``
adds a norm + ReLU after it, as in the original post-activation stem.

Levels: ``stages[0]`` is the stem conv (stride 2), ``stages[1]`` the 3x3/2 max pool and the first
residual stage (stride 4), ``stages[2..4]`` the other residual stages (strides 8, 16, 32); the last
one ends with the final norm + ReLU. The inner levels are raw residual sums (not normalized), as the
architecture has them. ``output_stride`` 16 / 8 dilates the last one / two residual stages, as for ResNet.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import INCEPTION_MEAN, INCEPTION_STD, DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import DropPath, drop_path_rates, init_weights
from vision_backbones.registry import register_family
from vision_backbones.validate import check_choice, check_int, check_ints, check_rate


def _norm_act(channels: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(norm=nn.BatchNorm2d(channels), act=nn.ReLU(inplace=True)))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Conv2d | None:
    """None (identity) or a strided 1x1 projection, without norm: the block's next norm follows."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class PreActBasicBlock(nn.Module):
    """``x + conv(relu(bn(conv(relu(bn(x))))))``, two 3x3 convs."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm_act1 = _norm_act(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm_act2 = _norm_act(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x_pre = self.norm_act1(x)
        shortcut = x if self.shortcut is None else self.shortcut(x_pre)  # projection sees the normalized input
        return shortcut + self.drop_path(self.conv2(self.norm_act2(self.conv1(x_pre))))


class PreActBottleneck(nn.Module):
    """``x + F(x)`` with ``F``: BN-ReLU-1x1 reduce, BN-ReLU-3x3 (strided), BN-ReLU-1x1 expand by 4."""

    expansion = 4

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, *, stride: int = 1, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.norm_act1 = _norm_act(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.norm_act2 = _norm_act(mid_channels)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, stride=stride, padding=1, bias=False)
        self.norm_act3 = _norm_act(mid_channels)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x_pre = self.norm_act1(x)
        shortcut = x if self.shortcut is None else self.shortcut(x_pre)
        out = self.conv3(self.norm_act3(self.conv2(self.norm_act2(self.conv1(x_pre)))))
        return shortcut + self.drop_path(out)


@dataclass(frozen=True)
class PreActResNetConfig:
    """Architecture of one pre-activation ResNet variant.

    Attributes:
        block: ``"basic"`` (two 3x3 convs) or ``"bottleneck"`` (1x1-3x3-1x1, 4x expansion).
        depths: blocks per residual stage.
        widths: base width of each residual stage; a stage outputs ``width * expansion``.
        stem_channels: channels of the 7x7 stem conv.
        stem_norm: norm + ReLU after the stem conv (timm has none).
        final_norm: norm + ReLU after the last stage (the paper and timm have it).
        drop_path_rate: stochastic depth rate of the last block, growing linearly from 0.
        drop_rate: dropout before the classifier.
    """

    block: Literal["basic", "bottleneck"]
    depths: tuple[int, ...]
    widths: tuple[int, ...] = (64, 128, 256, 512)
    stem_channels: int = 64
    stem_norm: bool = False
    final_norm: bool = True
    drop_path_rate: float = 0.0
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        check_choice("block", self.block, ("basic", "bottleneck"))
        check_ints("depths", self.depths, min=1)
        check_ints("widths", self.widths, min=1, length=len(self.depths), per="stage")
        check_int("stem_channels", self.stem_channels, min=1)
        check_rate("drop_path_rate", self.drop_path_rate)
        check_rate("drop_rate", self.drop_rate)


class PreActResNet(Backbone):
    """Pre-activation ResNet backbone: five levels at strides 2, 4, 8, 16, 32."""

    supports_output_stride = True

    def __init__(self, config: PreActResNetConfig, *, in_channels: int, num_classes: int | None) -> None:
        # Level 0: (B, in, H, W) -> (B, 64, H/2, W/2)
        stem: dict[str, nn.Module] = {
            "conv": nn.Conv2d(in_channels, config.stem_channels, 7, stride=2, padding=3, bias=False)
        }
        if config.stem_norm:
            stem.update(_norm_act(config.stem_channels).named_children())
        stages: list[nn.Module] = [nn.Sequential(OrderedDict(stem))]

        bottleneck = config.block == "bottleneck"
        expansion = PreActBottleneck.expansion if bottleneck else PreActBasicBlock.expansion
        rates = iter(drop_path_rates(config.drop_path_rate, sum(config.depths)))
        in_ch = config.stem_channels
        for stage_index, (depth, width) in enumerate(zip(config.depths, config.widths)):
            out_ch = width * expansion
            blocks: list[nn.Module] = []
            for i in range(depth):
                # The first residual stage halves the resolution with a max pool, the others with a strided first block.
                stride = 2 if i == 0 and stage_index > 0 else 1
                rate = next(rates)
                if bottleneck:
                    blocks.append(PreActBottleneck(in_ch, width, out_ch, stride=stride, drop_path=rate))
                else:
                    blocks.append(PreActBasicBlock(in_ch, out_ch, stride=stride, drop_path=rate))
                in_ch = out_ch
            parts: dict[str, nn.Module] = {}
            if stage_index == 0:
                parts["pool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            parts["blocks"] = nn.Sequential(*blocks)
            if stage_index == len(config.depths) - 1 and config.final_norm:
                parts.update(_norm_act(out_ch).named_children())  # no block normalizes its output
            stages.append(nn.Sequential(OrderedDict(parts)))

        head = ClassifierHead(in_ch, num_classes, dropout=config.drop_rate) if num_classes is not None else None
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head)
        init_weights(self)  # timm's scheme


VARIANTS: dict[str, PreActResNetConfig] = {
    "preact_resnet18": PreActResNetConfig("basic", (2, 2, 2, 2)),
    "preact_resnet34": PreActResNetConfig("basic", (3, 4, 6, 3)),
    "preact_resnet50": PreActResNetConfig("bottleneck", (3, 4, 6, 3)),
    "preact_resnet101": PreActResNetConfig("bottleneck", (3, 4, 23, 3)),
    "preact_resnet152": PreActResNetConfig("bottleneck", (3, 8, 36, 3)),
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``).
DESIGN = DesignFields(channels=("stem_channels", "widths"), depths=("depths",))

# timm's ``resnetv2_*`` pretrained_cfg: 224 px, crop 0.95, bicubic, mean = std = 0.5.
PREPROCESSING = Preprocessing(INCEPTION_MEAN, INCEPTION_STD, input_size=224, crop_pct=0.95, interpolation="bicubic")

register_family("preact_resnet", VARIANTS, PreActResNet, design=DESIGN, preprocessing=PREPROCESSING)
