"""The inverted residual ("MBConv") block and the one row table MobileNetV2/V3, MnasNet and EfficientNet share.

MobileNetV2 (https://arxiv.org/abs/1801.04381) turned the ResNet bottleneck inside out: a 1x1 conv
*expands* a narrow input, a depthwise kxk conv filters each channel on its own, and a *linear* 1x1 conv
projects back to a narrow output; the residual joins the narrow ends. MobileNetV3
(https://arxiv.org/abs/1905.02244) and EfficientNet (https://arxiv.org/abs/1905.11946) put
squeeze-and-excitation between the depthwise conv and the projection; EfficientNet adds stochastic
depth on the residual branch.

All four networks are ``3x3/2 stem conv -> inverted residual blocks [-> 1x1 head conv]``. Each
describes its blocks as a tuple of ``MBConvRow`` (``repeats`` blocks of one kind, the first with
``stride``); ``expand_rows`` turns rows + width / depth multipliers + stochastic depth into one
``InvertedResidualSpec`` per block, and ``build_mbconv`` cuts the blocks into stages where the
resolution halves (stage ``i`` ends at stride ``2 ** (i + 1)``) and returns the head conv apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from vision_backbones.layers.conv import ConvNormAct, LayerFactory, make_divisible, run_chain
from vision_backbones.layers.drop_path import DropPath, drop_path_rates
from vision_backbones.layers.squeeze_excite import SqueezeExcite
from vision_backbones.validate import check_choice, check_float, check_int

# Row activations by name, so that rows stay plain JSON data.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hard_swish": nn.Hardswish,
    "silu": nn.SiLU,
}


class MBConvRow(NamedTuple):
    """One row of an MBConv table: ``repeats`` blocks, the first with ``stride``, before any scaling.

    A row is plain data (a tuple of numbers and a string): rows may be given as ``MBConvRow``, as a
    mapping of these field names or as a sequence in this order, e.g. from JSON or YAML.

    Attributes:
        expand_ratio: expanded width / block input width (1: no expansion conv); ``None`` when
            ``expanded_channels`` gives the width instead.
        kernel_size: depthwise kernel (3, 5, 7).
        stride: 1 or 2 (first block of the row only).
        out_channels: output channels, before the width multiplier.
        repeats: blocks in the row, before the depth multiplier.
        se_ratio: squeeze-and-excitation width as a fraction (0: no SE; the base is the family's).
        activation: one of ``ACTIVATIONS``.
        expanded_channels: explicit expanded width before the width multiplier (MobileNetV3's table).
    """

    expand_ratio: float | None
    kernel_size: int
    stride: int
    out_channels: int
    repeats: int = 1
    se_ratio: float = 0.0
    activation: str = "relu"
    expanded_channels: int | None = None


def _row(index: int, value: Any) -> MBConvRow:
    name = f"rows[{index}]"
    if isinstance(value, MBConvRow):
        row = value
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - set(MBConvRow._fields))
        if unknown:
            raise ValueError(f"{name} has unknown fields {unknown}; expected some of {', '.join(MBConvRow._fields)}")
        try:
            row = MBConvRow(**value)
        except TypeError:
            raise ValueError(
                f"{name} {dict(value)!r} lacks a field; expected at least expand_ratio, kernel_size, stride, out_channels"
            ) from None
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and 4 <= len(value) <= len(MBConvRow._fields)
    ):
        row = MBConvRow(*value)
    else:
        raise ValueError(f"{name} must be an MBConvRow, a mapping or a sequence of 4-8 fields, got {value!r}")
    if row.expand_ratio is not None:
        check_float(f"{name}.expand_ratio", row.expand_ratio, min=0, min_open=True)
    if (row.expand_ratio is None) == (row.expanded_channels is None):
        raise ValueError(
            f"{name}: give exactly one of expand_ratio and expanded_channels, got {row.expand_ratio!r} and {row.expanded_channels!r}"
        )
    if row.expanded_channels is not None:
        check_int(f"{name}.expanded_channels", row.expanded_channels, min=1)
    check_int(f"{name}.kernel_size", row.kernel_size, min=1)
    if row.kernel_size % 2 == 0:
        raise ValueError(f"{name}.kernel_size must be odd (3, 5, 7), got {row.kernel_size}")
    check_choice(f"{name}.stride", row.stride, (1, 2))
    check_int(f"{name}.out_channels", row.out_channels, min=1)
    check_int(f"{name}.repeats", row.repeats, min=1)
    check_float(f"{name}.se_ratio", row.se_ratio, min=0, max=1)
    check_choice(f"{name}.activation", row.activation, tuple(ACTIVATIONS))
    return row


def mbconv_rows(rows: Any) -> tuple[MBConvRow, ...]:
    """``rows`` as a validated tuple of ``MBConvRow`` (one-line ``ValueError`` naming a bad row)."""
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence) or not rows:
        raise ValueError(f"rows must be a non-empty tuple of MBConvRow, got {rows!r}")
    return tuple(_row(i, row) for i, row in enumerate(rows))


def check_mbconv_config(config: Any) -> None:
    """The checks every MBConv family's config shares; also turns ``config.rows`` into ``MBConvRow``s.

    Call from a frozen config's ``__post_init__``.
    """
    object.__setattr__(config, "rows", mbconv_rows(config.rows))
    check_float("width_multiplier", config.width_multiplier, min=0, min_open=True)
    check_float("depth_multiplier", config.depth_multiplier, min=0, min_open=True)
    check_float("drop_rate", config.drop_rate, min=0, max=1, max_open=True)
    check_float("drop_path_rate", config.drop_path_rate, min=0, max=1, max_open=True)
    check_int("stem_channels", config.stem_channels, min=1)


class InvertedResidualSpec(NamedTuple):
    """One block with every channel count already rounded: the keyword arguments of ``InvertedResidual``."""

    in_channels: int
    out_channels: int
    expanded_channels: int
    kernel_size: int = 3
    stride: int = 1
    squeeze_channels: int = 0  # 0: no squeeze-and-excitation
    act_layer: LayerFactory = nn.ReLU
    se_act_layer: LayerFactory = nn.ReLU
    se_gate_layer: LayerFactory = nn.Sigmoid
    drop_path: float = 0.0


def row_repeats(rows: Sequence[MBConvRow], depth_multiplier: float = 1.0) -> list[int]:
    """Blocks in each row after depth scaling (rounded up, EfficientNet's rule)."""
    return [math.ceil(row.repeats * depth_multiplier) for row in rows]


def config_specs(config: Any, **se: Any) -> list[InvertedResidualSpec]:
    """``expand_rows`` over the fields every MBConv family config shares: ``rows``, ``stem_channels``,
    ``width_multiplier``, ``depth_multiplier``, ``drop_path_rate``; ``se`` picks the squeeze-excite rule."""
    return expand_rows(
        config.rows,
        stem_channels=make_divisible(config.stem_channels * config.width_multiplier),
        width_multiplier=config.width_multiplier,
        depth_multiplier=config.depth_multiplier,
        drop_path_rate=config.drop_path_rate,
        **se,
    )


def expand_rows(
    rows: Sequence[MBConvRow],
    *,
    stem_channels: int,
    width_multiplier: float = 1.0,
    depth_multiplier: float = 1.0,
    drop_path_rate: float = 0.0,
    se_of_input: bool = False,
    se_act_layer: LayerFactory = nn.ReLU,
    se_gate_layer: LayerFactory = nn.Sigmoid,
) -> list[InvertedResidualSpec]:
    """One spec per block of ``rows``: channels scaled by ``width_multiplier`` and rounded to multiples
    of 8, each row repeated ``ceil(repeats * depth_multiplier)`` times, stochastic depth growing
    linearly over the blocks (``drop_path_rates``).

    ``stem_channels`` is the (already scaled) input of the first block. Squeeze-and-excitation is
    ``se_ratio`` of the expanded channels rounded to 8 (MobileNetV3), or with ``se_of_input`` of the
    block's input channels, floored (EfficientNet's TensorFlow rule).
    """

    def scale(channels: float) -> int:
        return make_divisible(channels * width_multiplier)

    repeats = row_repeats(rows, depth_multiplier)
    rates = iter(drop_path_rates(drop_path_rate, sum(repeats)))
    in_channels = stem_channels
    specs: list[InvertedResidualSpec] = []
    for row, count in zip(rows, repeats):
        out_channels = scale(row.out_channels)
        for index in range(count):
            if row.expanded_channels is not None:
                expanded = scale(row.expanded_channels)
            else:
                expanded = make_divisible(in_channels * row.expand_ratio)  # type: ignore[operator]
            squeeze = 0
            if row.se_ratio > 0:
                squeeze = (
                    max(1, int(in_channels * row.se_ratio)) if se_of_input else make_divisible(expanded * row.se_ratio)
                )
            specs.append(
                InvertedResidualSpec(
                    in_channels,
                    out_channels,
                    expanded_channels=expanded,
                    kernel_size=row.kernel_size,
                    stride=row.stride if index == 0 else 1,
                    squeeze_channels=squeeze,
                    act_layer=ACTIVATIONS[row.activation],
                    se_act_layer=se_act_layer,
                    se_gate_layer=se_gate_layer,
                    drop_path=next(rates),
                )
            )
            in_channels = out_channels
    return specs


class InvertedResidual(nn.Module):
    """1x1 expand (left out when ``expanded_channels == in_channels``) -> depthwise kxk -> optional SE
    -> linear 1x1 project, plus the input when the shape is kept (``stride == 1``, same channels)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        expanded_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        squeeze_channels: int = 0,
        act_layer: LayerFactory = nn.ReLU,
        se_act_layer: LayerFactory = nn.ReLU,
        se_gate_layer: LayerFactory = nn.Sigmoid,
        drop_path: float = 0.0,
        norm_layer: LayerFactory = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.use_residual = stride == 1 and in_channels == out_channels
        self.out_channels = out_channels
        self.expand: nn.Module = nn.Identity()
        if expanded_channels != in_channels:
            self.expand = ConvNormAct(in_channels, expanded_channels, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.depthwise = ConvNormAct(
            expanded_channels,
            expanded_channels,
            kernel_size,
            stride=stride,
            groups=expanded_channels,
            norm_layer=norm_layer,
            act_layer=act_layer,
        )
        self.se: nn.Module = nn.Identity()
        if squeeze_channels > 0:
            self.se = SqueezeExcite(
                expanded_channels, squeeze_channels, act_layer=se_act_layer, gate_layer=se_gate_layer
            )
        # No activation after the projection: the "linear bottleneck" keeps the narrow tensor's information.
        self.project = ConvNormAct(expanded_channels, out_channels, 1, norm_layer=norm_layer, act_layer=None)
        # Stochastic depth only makes sense on a residual branch (torchvision and timm agree).
        self.drop_path: nn.Module = DropPath(drop_path) if drop_path > 0.0 and self.use_residual else nn.Identity()
        # The placeholders above keep state-dict keys stable; skipping their calls saves ~5 us each,
        # which is 2-3 % of a small mobile net's forward at batch 1 (benchmarks/RESULTS.md).
        self.has_expand = expanded_channels != in_channels
        self.has_se = squeeze_channels > 0
        self.has_drop_path = drop_path > 0.0 and self.use_residual

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            return self._forward_inline(x)
        out = self.expand(x) if self.has_expand else x
        out = self.depthwise(out)
        if self.has_se:
            out = self.se(out)
        out = self.project(out)  # (B, out_channels, H / stride, W / stride)
        if self.use_residual:
            out = x + (self.drop_path(out) if self.has_drop_path else out)
        return out

    @torch.jit.unused
    def _forward_inline(self, x: Tensor) -> Tensor:
        """``forward`` with the containers opened (``run_chain``): no Python frame but the layers'."""
        modules = self._modules
        out = run_chain(x, (modules["expand"], modules["depthwise"], modules["se"], modules["project"]))  # type: ignore[arg-type]
        if self.use_residual:
            out = x + (self.drop_path(out) if self.has_drop_path else out)
        return out


def _stage_positions(strides: Sequence[int]) -> list[tuple[int, int]]:
    """``(stage, index in stage)`` of each layer; a new stage starts at every strided layer."""
    positions: list[tuple[int, int]] = []
    stage, index = -1, 0
    for stride in strides:
        if stride > 1:
            stage, index = stage + 1, 0
        positions.append((stage, index))
        index += 1
    return positions


def layer_names(specs: Sequence[InvertedResidualSpec]) -> list[str]:
    """Module names ``build_mbconv`` gives the stem conv, each block and the head conv, in order.

    The weight converters zip these with the reference model's names for the same layers.
    """
    positions = _stage_positions([2, *(spec.stride for spec in specs)])  # stem conv, blocks
    return [*(f"stages.{stage}.{index}" for stage, index in positions), "head_conv"]


def build_mbconv(
    in_channels: int,
    specs: Sequence[InvertedResidualSpec],
    head_channels: int,
    *,
    act_layer: LayerFactory,
    norm_layer: LayerFactory,
) -> tuple[list[nn.Sequential], ConvNormAct]:
    """``(stages, head_conv)`` of ``3x3/2 stem conv -> blocks -> 1x1 head conv``.

    The stem conv gives the first block's input channels and opens ``stages[0]``; every later
    stage opens with a strided block, so each stage halves the resolution. ``act_layer`` is the stem's
    and the head conv's activation (blocks carry their own).
    """
    if not specs:
        raise ValueError("expected at least one inverted residual block")
    layers: list[nn.Module] = [
        ConvNormAct(in_channels, specs[0].in_channels, 3, stride=2, norm_layer=norm_layer, act_layer=act_layer)
    ]
    layers += [InvertedResidual(**spec._asdict(), norm_layer=norm_layer) for spec in specs]
    positions = _stage_positions([2, *(spec.stride for spec in specs)])
    stages: list[list[nn.Module]] = [[] for _ in range(positions[-1][0] + 1)]
    for layer, (stage, _) in zip(layers, positions):
        stages[stage].append(layer)
    head_conv = ConvNormAct(specs[-1].out_channels, head_channels, 1, norm_layer=norm_layer, act_layer=act_layer)
    return [nn.Sequential(*stage) for stage in stages], head_conv
