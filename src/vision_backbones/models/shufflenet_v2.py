"""ShuffleNet V2.

Paper: "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design" (Ma, Zhang, Zheng,
Sun; ECCV 2018), https://arxiv.org/abs/1807.11164

The idea: FLOPs do not predict speed; memory access and parallelism do. Four guidelines follow
(equal input/output widths, few groups, little fragmentation, few element-wise ops), and the unit
(``ShuffleV2Block``) obeys them: *channel split* sends half the channels through untouched and the
other half through ``1x1 conv -> 3x3 depthwise -> 1x1 conv`` (no group convs, equal widths), the
halves are *concatenated* (no add) and a *channel shuffle* (``layers.channel_shuffle``, 2 groups)
mixes them for the next unit. The downsampling unit feeds the whole input to both branches (the
other one ``3x3/2 depthwise -> 1x1 conv``), doubling the channels.

Widths: Table 5 lists each width ("0.5x" .. "2x") by its channels, which are not one base scaled
(58 would be half of 1x's 116; the paper has 48), so the variant table keeps them as data
(``WIDTHS``, keyed by the width multiplier) rather than a ``width_multiplier`` field.

Levels: the stem (3x3/2 conv, 3x3/2 max pool) reaches stride 4 in one go, so the network has no
stride-2 level of its own: ``stages[0]`` is the stem at stride 4; ``stages[1..3]`` are the three
shuffle stages (strides 8, 16, 32). The 1x1 conv5 before the pool is the ``head_conv``: by default
it belongs to the last level (1024 channels, the published parameter count); with
``include_head_conv=False`` the last level is the last unit's output (464 channels at 1x).
No ``output_stride``: a downsampling unit strides in two parallel branches, which the generic
dilation rewrite, walking modules in order, would dilate differently.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import ConvNormAct, channel_shuffle, conv_pool_stem
from vision_backbones.layers.conv import opened, run_chain
from vision_backbones.registry import register_family
from vision_backbones.validate import check_int, check_ints, check_rate


class ShuffleV2Block(nn.Module):
    """Split (or copy, when strided) -> two branches -> concatenate -> shuffle with 2 groups.

    ``branch``: 1x1 conv -> 3x3 depthwise (strided, no ReLU) -> 1x1 conv, on half the channels.
    ``shortcut``: for stride 1 the untouched other half; for stride 2 a 3x3/2 depthwise conv (no ReLU)
    -> 1x1 conv on the whole input.
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if out_channels % 2 or (stride == 1 and in_channels != out_channels):
            raise ValueError(
                "expected an even out_channels, equal to in_channels for stride 1; "
                f"got {in_channels} -> {out_channels} (stride {stride})"
            )
        self.stride = stride
        half = out_channels // 2
        self.shortcut: nn.Module = nn.Identity()
        if stride == 2:
            self.shortcut = nn.Sequential(
                ConvNormAct(in_channels, in_channels, 3, stride=2, groups=in_channels, act_layer=None),
                ConvNormAct(in_channels, half, 1),
            )
        self.branch = nn.Sequential(
            ConvNormAct(in_channels if stride == 2 else half, half, 1),
            ConvNormAct(half, half, 3, stride=stride, groups=half, act_layer=None),
            ConvNormAct(half, half, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            return self._forward_inline(x)
        if self.stride == 1:
            kept, x = x.chunk(2, dim=1)  # 2 x (B, C/2, H, W)
        else:
            kept = self.shortcut(x)  # (B, C_out/2, H/2, W/2)
        out = torch.cat((kept, self.branch(x)), dim=1)  # (B, C_out, H / stride, W / stride)
        return channel_shuffle(out, 2)

    @torch.jit.unused
    def _forward_inline(self, x: Tensor) -> Tensor:
        """``forward`` with the branches' containers opened (``run_chain``), as torchvision's flat branches."""
        modules = self._modules
        if self.stride == 1:
            kept, x = x.chunk(2, dim=1)
        else:
            kept = run_chain(x, opened(modules["shortcut"]))  # type: ignore[arg-type]
        return channel_shuffle(torch.cat((kept, run_chain(x, opened(modules["branch"]))), dim=1), 2)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ShuffleNetV2Config:
    """Architecture of one ShuffleNet V2 width (paper Table 5).

    Attributes:
        widths: output channels of the three shuffle stages (even).
        depths: units per stage; the first of each has stride 2.
        stem_channels: the 3x3/2 stem conv.
        head_channels: the 1x1 conv5 (``head_conv``) before pooling.
        drop_rate: dropout before the classifier. (No ``drop_path_rate``: a unit concatenates its branch
            with the untouched half instead of adding it, so there is no residual branch to drop.)
    """

    widths: tuple[int, ...]
    depths: tuple[int, ...] = (4, 8, 4)
    stem_channels: int = 24
    head_channels: int = 1024
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        check_ints("depths", self.depths, min=1)
        check_ints("widths", self.widths, min=1, length=len(self.depths), per="stage")
        odd = [c for c in self.widths if c % 2]
        if odd:
            raise ValueError(f"expected even widths (each unit splits its channels in two), got {odd} in {self.widths}")
        check_int("stem_channels", self.stem_channels, min=1)
        check_int("head_channels", self.head_channels, min=1)
        check_rate("drop_rate", self.drop_rate)


class ShuffleNetV2(Backbone):
    """Stem (stride 4) + three shuffle stages (strides 8, 16, 32), then conv5 as the head conv."""

    supports_output_stride = True  # both branches' strided depthwise convs keep the previous dilation

    def __init__(self, config: ShuffleNetV2Config, *, in_channels: int, num_classes: int | None) -> None:
        # (B, in, H, W) -> (B, 24, H/4, W/4)
        stem = conv_pool_stem(in_channels, config.stem_channels)
        stages: list[nn.Module] = [stem]
        channels = config.stem_channels
        for out, depth in zip(config.widths, config.depths):
            blocks = [ShuffleV2Block(channels if i == 0 else out, out, stride=2 if i == 0 else 1) for i in range(depth)]
            stages.append(nn.Sequential(OrderedDict(blocks=nn.Sequential(*blocks))))
            channels = out
        head_conv = ConvNormAct(channels, config.head_channels, 1)  # conv5: (B, 1024, H/32, W/32)
        head = (
            None if num_classes is None else ClassifierHead(config.head_channels, num_classes, dropout=config.drop_rate)
        )
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head, head_conv=head_conv)


# Table 5: stage output channels and conv5 width of each width multiplier.
WIDTHS: dict[float, tuple[tuple[int, int, int], int]] = {
    0.5: ((48, 96, 192), 1024),
    1.0: ((116, 232, 464), 1024),
    1.5: ((176, 352, 704), 1024),
    2.0: ((244, 488, 976), 2048),
}

VARIANTS: dict[str, ShuffleNetV2Config] = {
    f"shufflenet_v2_x{width:.1f}".replace(".", "_"): ShuffleNetV2Config(channels, head_channels=head)
    for width, (channels, head) in WIDTHS.items()
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``); multiples of 8 keep
# the split into two branches even.
DESIGN = DesignFields(channels=("stem_channels", "widths", "head_channels"), depths=("depths",))

# torchvision's IMAGENET1K_V1 weights (``weights.transforms()``): center crop 224 after resizing to 256 (0.5x, 1.0x) or 232 (1.5x, 2.0x, trained later), bilinear.
PREPROCESSING = {
    name: Preprocessing(
        input_size=224, crop_pct=224 / (232 if name in ("shufflenet_v2_x1_5", "shufflenet_v2_x2_0") else 256)
    )
    for name in VARIANTS
}

register_family("shufflenet_v2", VARIANTS, ShuffleNetV2, design=DESIGN, preprocessing=PREPROCESSING)
