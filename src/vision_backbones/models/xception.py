"""Xception.

Paper: "Xception: Deep Learning with Depthwise Separable Convolutions" (Chollet, 2016),
https://arxiv.org/abs/1610.02357

The idea: an Inception module, pushed to the extreme, maps cross-channel and spatial correlations
fully separately. Xception replaces every Inception module by depthwise separable convolutions
(``SeparableConv2d``: depthwise 3x3, then pointwise 1x1, *no* activation between them, unlike
MobileNet) and wraps them in residual blocks (``XceptionBlock``). The network is three flows
(Fig. 5): the entry flow (two plain 3x3 convs, then three blocks that each end with a 3x3/2 max pool
and have a strided 1x1 projection shortcut), the middle flow (eight identical 728-channel blocks of
three separable convs, identity shortcuts) and the exit flow (one 728 -> 1024 downsampling block,
then separable convs to 1536 and 2048, each followed by batch norm and ReLU). Every conv is
followed by batch norm. Residual blocks start with a ReLU (pre-activation of the branch only), so
block outputs -- and the feature levels taken after them -- are pre-ReLU sums.

As in the paper's Keras code and timm's ``legacy_xception`` the two stem convs are unpadded
("valid"): 299 -> 149 -> 147, 224 -> 111 -> 109. The paper puts a 0.5 dropout before the classifier.

Levels: ``stages[0]`` the two stem convs (64 ch, stride 2); ``stages[1]``, ``stages[2]`` the first two
entry blocks (128 ch at stride 4, 256 ch at stride 8); ``stages[3]`` the last entry block and the
middle flow (728 ch, stride 16); ``stages[4]`` the exit flow (2048 ch, stride 32).

``output_stride`` 16 / 8: the blocks' 3x3/2 max pools and strided 1x1 shortcuts of the last one / two
stages run at stride 1, and the separable convs after each pool are dilated (the stem, whose convs
are unpadded, is never touched: it ends at stride 2).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import INCEPTION_MEAN, INCEPTION_STD, DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import ConvNormAct, DropPath, SeparableConv2d, drop_path_rates, init_weights
from vision_backbones.registry import register_family
from vision_backbones.validate import check_int, check_ints, check_rate


def separable_unit(
    in_channels: int, out_channels: int, *, pre_act: bool, post_act: bool, inplace: bool = True
) -> nn.Sequential:
    """``[ReLU] -> SeparableConv2d 3x3 -> BatchNorm -> [ReLU]``; absent activations are ``nn.Identity``."""
    return nn.Sequential(
        OrderedDict(
            pre_act=nn.ReLU(inplace=inplace) if pre_act else nn.Identity(),
            conv=SeparableConv2d(in_channels, out_channels, 3),
            norm=nn.BatchNorm2d(out_channels),
            post_act=nn.ReLU(inplace=True) if post_act else nn.Identity(),
        )
    )


class XceptionBlock(nn.Module):
    """``(ReLU -> SepConv -> BN) x n``, an optional 3x3/2 max pool, plus a shortcut.

    ``channels`` lists the block's input, then each separable conv's output: ``(64, 128, 128)`` grows
    first (entry flow), ``(728, 728, 1024)`` grows last (exit flow). The shortcut is the identity, or
    a strided 1x1 conv + BN when the shape changes.
    """

    def __init__(
        self, channels: Sequence[int], *, stride: int, start_with_relu: bool = True, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        in_channels, out_channels = channels[0], channels[-1]
        units = [
            # The first ReLU must not work in place: the shortcut still reads the block input.
            separable_unit(c_in, c_out, pre_act=start_with_relu or i > 0, post_act=False, inplace=i > 0)
            for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:]))
        ]
        self.units = nn.Sequential(*units)
        self.pool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = ConvNormAct(in_channels, out_channels, 1, stride=stride, act_layer=None)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.pool(self.units(x))  # (B, C_out, H / stride, W / stride)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return out + self.shortcut(x)


@dataclass(frozen=True)
class XceptionConfig:
    """Architecture of Xception.

    Attributes:
        stem_channels: the two unpadded 3x3 stem convs (the first has stride 2).
        entry_channels: output channels of the entry flow's downsampling blocks (two separable convs each).
        middle_blocks: identity blocks of three separable convs in the middle flow.
        exit_channels: the two separable convs of the exit flow's downsampling block.
        head_channels: the exit flow's last separable convs (each followed by BN and ReLU).
        drop_rate: dropout before the classifier (paper: 0.5 on ImageNet).
        drop_path_rate: stochastic depth of the blocks' residual branches (not in the paper), growing
            linearly from 0 at the first block to this rate at the last.
    """

    stem_channels: tuple[int, int] = (32, 64)
    entry_channels: tuple[int, ...] = (128, 256, 728)
    middle_blocks: int = 8
    exit_channels: tuple[int, int] = (728, 1024)
    head_channels: tuple[int, ...] = (1536, 2048)
    drop_rate: float = 0.5
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        check_ints("stem_channels", self.stem_channels, min=1, length=2)
        check_ints("entry_channels", self.entry_channels, min=1, length=3)  # strides 4, 8, 16
        check_int("middle_blocks", self.middle_blocks, min=0)
        check_ints("exit_channels", self.exit_channels, min=1, length=2)
        check_ints("head_channels", self.head_channels, min=1)
        check_rate("drop_rate", self.drop_rate)
        check_rate("drop_path_rate", self.drop_path_rate)


class Xception(Backbone):
    """Entry flow (strides 2..16), middle flow (stride 16), exit flow (stride 32)."""

    supports_output_stride = True

    def __init__(self, config: XceptionConfig, *, in_channels: int, num_classes: int | None) -> None:
        c1, c2 = config.stem_channels
        # Level 0: (B, 3, H, W) -> (B, 64, H/2 - 3, W/2 - 3), unpadded convs.
        stem = nn.Sequential(
            ConvNormAct(in_channels, c1, 3, stride=2, padding=0),
            ConvNormAct(c1, c2, 3, padding=0),
        )
        # The entry flow's first block follows the stem's ReLU, so it does not start with one.
        channels = c2
        rates = iter(drop_path_rates(config.drop_path_rate, len(config.entry_channels) + config.middle_blocks + 1))
        entry = []
        for i, out in enumerate(config.entry_channels):
            entry.append(XceptionBlock((channels, out, out), stride=2, start_with_relu=i > 0, drop_path=next(rates)))
            channels = out
        middle = [XceptionBlock((channels,) * 4, stride=1, drop_path=next(rates)) for _ in range(config.middle_blocks)]
        exit_block = XceptionBlock((channels, *config.exit_channels), stride=2, drop_path=next(rates))
        channels = config.exit_channels[-1]
        head_units = []
        for out in config.head_channels:
            head_units.append(separable_unit(channels, out, pre_act=False, post_act=True))
            channels = out

        stages = [
            stem,
            nn.Sequential(entry[0]),
            nn.Sequential(entry[1]),
            nn.Sequential(entry[2], *middle),
            nn.Sequential(exit_block, *head_units),
        ]
        head = None if num_classes is None else ClassifierHead(channels, num_classes, dropout=config.drop_rate)
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head)
        init_weights(self, linear="default")


VARIANTS: dict[str, XceptionConfig] = {"xception": XceptionConfig()}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``): a block whose
# width changes gets a 1x1 shortcut, so every entry may change on its own.
DESIGN = DesignFields(
    channels=("stem_channels", "entry_channels", "exit_channels", "head_channels"), depths=("middle_blocks",)
)

# timm's ``legacy_xception`` pretrained_cfg: 299 px, crop 0.8975, bicubic, mean = std = 0.5.
PREPROCESSING = Preprocessing(INCEPTION_MEAN, INCEPTION_STD, input_size=299, crop_pct=0.8975, interpolation="bicubic")

register_family("xception", VARIANTS, Xception, design=DESIGN, preprocessing=PREPROCESSING)
