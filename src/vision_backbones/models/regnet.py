"""RegNet (RegNetX and RegNetY).

"Designing Network Design Spaces" (Radosavovic et al., 2020), https://arxiv.org/abs/2003.13678: instead
of searching for single networks, the paper narrows a design space (AnyNet: a stem, four stages of
residual bottleneck blocks, a head) until good networks follow a simple rule, and samples from it.

- The quantized linear rule (``RegNetConfig.from_design_space``): block ``j`` of ``depth`` blocks gets
  the width ``u_j = w_0 + w_a * j``, snapped to ``w_0 * w_m ** round(log(u_j / w_0) / log(w_m))`` and
  to a multiple of 8; consecutive blocks of equal width form a stage. Six numbers (``depth``, ``w_0``,
  ``w_a``, ``w_m``, group width, bottleneck ratio) give every variant; the config keeps the resulting
  per-stage ``widths`` and ``depths``, so scaling, NetAdapt and search spaces can change them one by one.
- The X block (``XBlock``): a residual bottleneck, 1x1 -> 3x3 grouped conv of ``group_width`` channels
  per group (strided in the first block of a stage) -> 1x1, the inner width being ``width *
  bottleneck_ratio`` (1 in every published RegNet: the paper found no bottleneck best), plus a strided
  1x1 projection shortcut where the shape changes.
- RegNetY = RegNetX + squeeze-and-excitation ("Squeeze-and-Excitation Networks", Hu et al., 2017,
  https://arxiv.org/abs/1709.01507) after the 3x3 conv, squeezing to ``se_ratio`` (0.25) of the
  block's *input* width.
- ``drop_path_rate``: stochastic depth (https://arxiv.org/abs/1603.09382) on the residual branch, the
  library's linear schedule (``layers.drop_path_rates``); torchvision's RegNet has none, so it is 0 by
  default. ``drop_rate``: dropout before the classifier.

The inner width is rounded to a multiple of the group width (the paper's width/group compatibility
adjustment, torchvision's ``_adjust_widths_groups_compatibilty``, applied where it matters): the
published widths are already multiples, so nothing changes for them, and any widths a design tool picks
(multiples of 8) still build, with the group width clamped to the inner width in narrow stages.

Levels: ``stages[0]`` is the stem (a 3x3 stride-2 conv, stride 2), ``stages[1..4]`` the four stages,
each halving the resolution in its first block (strides 4, 8, 16, 32), so RegNet's levels are
ResNet's. ``frozen_stages=1`` freezes the stem conv; ``frozen_stages=2`` also the first stage
(mmdetection's RegNet ``frozen_stages=1``).

Head: global average pool -> dropout -> ``fc`` (torchvision's, plus ``drop_rate``).

``output_stride`` 16 and 8 are supported: every stage downsamples with a strided odd-kernel conv (the
3x3 and the 1x1 projection), which ``dilation.py`` runs at stride 1 and dilates, as for ResNet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import ConvNormAct, DropPath, SqueezeExcite, drop_path_rates, init_weights, make_divisible
from vision_backbones.published import TORCHVISION_V1, Published
from vision_backbones.registry import register_family
from vision_backbones.validate import check_float, check_int, check_ints, check_rate

_WIDTH_QUANTUM = 8  # the quantized linear rule snaps block widths to multiples of 8


@dataclass(frozen=True)
class RegNetConfig:
    """Architecture of one RegNet variant.

    Attributes:
        depths: blocks per stage.
        widths: output channels of each stage.
        group_width: channels per group of each block's 3x3 conv (clamped to the inner width).
        bottleneck_ratio: a block's inner width over its output width (the paper's ``b``; 1.0 in RegNet).
        se_ratio: squeeze-and-excitation width as a fraction of the block's input width; 0.0: none (RegNetX).
        stem_channels: channels of the 3x3 stride-2 stem conv.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth rate of the last block.
    """

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    group_width: int
    bottleneck_ratio: float = 1.0
    se_ratio: float = 0.0
    stem_channels: int = 32
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        check_ints("depths", self.depths, min=1)
        check_ints("widths", self.widths, min=1, length=len(self.depths))
        check_int("group_width", self.group_width, min=1)
        check_float("bottleneck_ratio", self.bottleneck_ratio, min=0.0, min_open=True)
        check_float("se_ratio", self.se_ratio, min=0.0, max=1.0)  # 0: no squeeze-and-excitation (RegNetX)
        check_int("stem_channels", self.stem_channels, min=1)
        check_rate("drop_rate", self.drop_rate)
        check_rate("drop_path_rate", self.drop_path_rate)

    @classmethod
    def from_design_space(
        cls,
        *,
        depth: int,
        w_0: int,
        w_a: float,
        w_m: float,
        group_width: int,
        bottleneck_ratio: float = 1.0,
        se_ratio: float = 0.0,
    ) -> RegNetConfig:
        """The variant the quantized linear rule gives (the paper's section 3.3, torchvision's ``BlockParams``).

        ``depth`` blocks, initial width ``w_0``, slope ``w_a``, width multiplier ``w_m`` per step.
        """
        if depth < 1 or w_a < 0 or w_0 <= 0 or w_m <= 1 or w_0 % _WIDTH_QUANTUM != 0:
            raise ValueError(
                f"expected depth >= 1, w_a >= 0, w_0 > 0 and a multiple of 8, w_m > 1; "
                f"got depth={depth}, w_0={w_0}, w_a={w_a}, w_m={w_m}"
            )
        block_widths = []
        for j in range(depth):
            step = round(math.log((w_0 + w_a * j) / w_0) / math.log(w_m))  # u_j = w_0 * w_m ** step
            block_widths.append(round(w_0 * w_m**step / _WIDTH_QUANTUM) * _WIDTH_QUANTUM)
        widths: list[int] = []
        depths: list[int] = []
        for width in block_widths:  # consecutive blocks of one width form a stage
            if widths and widths[-1] == width:
                depths[-1] += 1
            else:
                widths.append(width)
                depths.append(1)
        # Width/group compatibility: the inner width must be a multiple of the (clamped) group width.
        compatible = []
        for width in widths:
            inner = int(width * bottleneck_ratio)
            inner = make_divisible(inner, min(group_width, inner))
            compatible.append(int(inner / bottleneck_ratio))
        return cls(
            depths=tuple(depths),
            widths=tuple(compatible),
            group_width=group_width,
            bottleneck_ratio=bottleneck_ratio,
            se_ratio=se_ratio,
        )


def _drop_path(rate: float) -> nn.Module:
    return DropPath(rate) if rate > 0.0 else nn.Identity()


class XBlock(nn.Module):
    """1x1 -> 3x3 grouped (strided) [-> squeeze-excite] -> 1x1, plus the shortcut; the Y block with SE."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        group_width: int,
        bottleneck_ratio: float,
        se_ratio: float,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        inner = max(1, round(out_channels * bottleneck_ratio))
        group_width = min(group_width, inner)
        inner = make_divisible(inner, group_width)  # unchanged for every published variant
        self.conv1 = ConvNormAct(in_channels, inner, 1)
        self.conv2 = ConvNormAct(inner, inner, 3, stride=stride, groups=inner // group_width)
        # The SE width is relative to the block's input, not its inner width (the paper's, torchvision's).
        self.se = SqueezeExcite(inner, max(1, round(se_ratio * in_channels))) if se_ratio > 0.0 else nn.Identity()
        self.conv3 = ConvNormAct(inner, out_channels, 1, act_layer=None)  # activation after the sum
        self.drop_path = _drop_path(drop_path)
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = (
            ConvNormAct(in_channels, out_channels, 1, stride=stride, act_layer=None)
            if needs_projection
            else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.drop_path(self.conv3(self.se(self.conv2(self.conv1(x)))))
        out += self.shortcut(x)  # in place: the branch output is fresh, as in ResNet's blocks
        return self.act(out)


class RegNetStage(nn.Module):
    """A stage of X (or Y) blocks of one width; the first halves the resolution (the paper's AnyStage)."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


class RegNet(Backbone):
    """RegNetX / RegNetY backbone: five levels at strides 2, 4, 8, 16, 32."""

    supports_output_stride = True

    def __init__(self, config: RegNetConfig, *, in_channels: int, num_classes: int | None) -> None:
        # Level 0, the stem: (B, in, H, W) -> (B, stem_channels, H/2, W/2)
        stages: list[nn.Module] = [ConvNormAct(in_channels, config.stem_channels, 3, stride=2)]
        rates = iter(drop_path_rates(config.drop_path_rate, sum(config.depths)))
        width_in = config.stem_channels
        for depth, width in zip(config.depths, config.widths):
            blocks: list[nn.Module] = []
            for index in range(depth):  # the first block of each stage halves the resolution
                blocks.append(
                    XBlock(
                        width_in,
                        width,
                        stride=2 if index == 0 else 1,
                        group_width=config.group_width,
                        bottleneck_ratio=config.bottleneck_ratio,
                        se_ratio=config.se_ratio,
                        drop_path=next(rates),
                    )
                )
                width_in = width
            stages.append(RegNetStage(blocks))
        head = ClassifierHead(width_in, num_classes, dropout=config.drop_rate) if num_classes is not None else None
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head)
        # torchvision's scheme: He normal (fan out) convs, N(0, 0.01) linear; SE conv biases keep PyTorch's default.
        init_weights(self, zero_conv_bias=False, linear="normal")


# The paper's parameters of torchvision's variants (its ``regnet_*`` builders): depth, w_0, w_a, w_m, group width.
_REGNET_X = {
    "regnet_x_400mf": (22, 24, 24.48, 2.54, 16),
    "regnet_x_800mf": (16, 56, 35.73, 2.28, 16),
    "regnet_x_1_6gf": (18, 80, 34.01, 2.25, 24),
    "regnet_x_3_2gf": (25, 88, 26.31, 2.25, 48),
    "regnet_x_8gf": (23, 80, 49.56, 2.88, 120),
    "regnet_x_16gf": (22, 216, 55.59, 2.1, 128),
    "regnet_x_32gf": (23, 320, 69.86, 2.0, 168),
}
_REGNET_Y = {  # RegNetX's rule plus squeeze-and-excitation at 0.25
    "regnet_y_400mf": (16, 48, 27.89, 2.09, 8),
    "regnet_y_800mf": (14, 56, 38.84, 2.4, 16),
    "regnet_y_1_6gf": (27, 48, 20.71, 2.65, 24),
    "regnet_y_3_2gf": (21, 80, 42.63, 2.66, 24),
    "regnet_y_8gf": (17, 192, 76.82, 2.19, 56),
    "regnet_y_16gf": (18, 200, 106.23, 2.48, 112),
    "regnet_y_32gf": (20, 232, 115.89, 2.53, 232),
}

VARIANTS: dict[str, RegNetConfig] = {
    **{
        name: RegNetConfig.from_design_space(depth=d, w_0=w_0, w_a=w_a, w_m=w_m, group_width=g)
        for name, (d, w_0, w_a, w_m, g) in _REGNET_X.items()
    },
    **{
        name: RegNetConfig.from_design_space(depth=d, w_0=w_0, w_a=w_a, w_m=w_m, group_width=g, se_ratio=0.25)
        for name, (d, w_0, w_a, w_m, g) in _REGNET_Y.items()
    },
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``). Channel counts stay
# multiples of 8 (the rule's quantum), not of the group width: each block rounds its inner width to a
# multiple of its (clamped) group width, so every multiple of 8 builds, and the stem (one divisor for
# every channel field) is not forced to 232 channels in RegNetY-32GF.
DESIGN = DesignFields(channels=("stem_channels", "widths"), depths=("depths",))

# torchvision's IMAGENET1K_V1 weights: resize 256, center crop 224, bilinear.
PREPROCESSING = Preprocessing(input_size=224, crop_pct=224 / 256, interpolation="bilinear")

# torchvision's IMAGENET1K_V1 weight metadata (``RegNet_Y_400MF_Weights.IMAGENET1K_V1.meta``). Its
# ``num_params`` includes the head's ``fc`` (1000 C + 1000), so the backbone has ``num_params - fc``.
# Its ``_ops`` are multiply-adds of the whole model, without the batch norms and pooling the seed's
# convention adds (2.1 % of RegNetY-400MF), so the GFLOPs here are the seed's convention counted on
# torchvision's own model without its head (``flops.count_flops``), whose 2 x MACs plus the ``fc``
# are ``2 x _ops``: ``tests/test_regnet.py`` checks both against the installed metadata. The V2 weights
# (same architecture) reach a higher top-1; ``budget.published_top1`` reads every weight enum.
_TORCHVISION_METADATA = {  # name: (num_params, backbone GFLOPs in the seed's convention, acc@1)
    "regnet_x_400mf": (5_495_976, 0.840, 72.834),
    "regnet_x_800mf": (7_259_656, 1.619, 75.212),
    "regnet_x_1_6gf": (9_190_136, 3.236, 77.040),
    "regnet_x_3_2gf": (15_296_552, 6.397, 78.364),
    "regnet_x_8gf": (39_572_648, 16.043, 79.344),
    "regnet_x_16gf": (54_278_536, 31.979, 80.058),
    "regnet_x_32gf": (107_811_560, 63.612, 80.622),
    "regnet_y_400mf": (4_344_144, 0.820, 74.046),
    "regnet_y_800mf": (6_432_512, 1.690, 76.420),
    "regnet_y_1_6gf": (11_202_430, 3.259, 77.950),
    "regnet_y_3_2gf": (19_436_338, 6.401, 78.948),
    "regnet_y_8gf": (39_381_472, 17.030, 80.032),
    "regnet_y_16gf": (83_590_140, 31.920, 80.424),
    "regnet_y_32gf": (145_046_770, 64.688, 80.878),
}
PUBLISHED = {
    name: Published(
        round((params - (1000 * VARIANTS[name].widths[-1] + 1000)) / 1e6, 2),
        gflops,
        top1=top1,
        source="torchvision weight metadata; GFLOPs counted on torchvision's model",
        gflops_decimals=3,
        top1_source=TORCHVISION_V1,
    )
    for name, (params, gflops, top1) in _TORCHVISION_METADATA.items()
}

register_family("regnet", VARIANTS, RegNet, design=DESIGN, preprocessing=PREPROCESSING, published=PUBLISHED)
