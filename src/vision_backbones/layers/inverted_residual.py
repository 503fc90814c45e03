"""The inverted residual ("MBConv") block shared by MobileNetV2, MobileNetV3 and EfficientNet.

MobileNetV2 (https://arxiv.org/abs/1801.04381) turned the ResNet bottleneck inside out: a 1x1 conv
*expands* a narrow input, a depthwise kxk conv filters each channel on its own, and a *linear* 1x1 conv
projects back to a narrow output; the residual joins the narrow ends. MobileNetV3
(https://arxiv.org/abs/1905.02244) and EfficientNet (https://arxiv.org/abs/1905.11946) put
squeeze-and-excitation between the depthwise conv and the projection; EfficientNet adds stochastic
depth on the residual branch.

All three networks (and MnasNet) are ``3x3/2 stem conv -> inverted residual blocks -> 1x1 head conv``;
``build_stages`` cuts that sequence into stages where the resolution halves, so stage ``i`` ends at
stride ``2 ** (i + 1)`` and the last stage holds the head conv. ``InvertedResidualNetwork`` is that
backbone with its classifier and initialisation; each family only turns its config into block specs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from torch import Tensor, nn

from vision_backbones.backbone import Backbone, ClassifierHead
from vision_backbones.layers.conv import ConvNormAct, LayerFactory
from vision_backbones.layers.drop_path import DropPath
from vision_backbones.layers.init import LinearInit, init_weights
from vision_backbones.layers.squeeze_excite import SqueezeExcite


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
            self.se = SqueezeExcite(expanded_channels, squeeze_channels, act_layer=se_act_layer, gate_layer=se_gate_layer)
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
        out = self.expand(x) if self.has_expand else x
        out = self.depthwise(out)
        if self.has_se:
            out = self.se(out)
        out = self.project(out)  # (B, out_channels, H / stride, W / stride)
        if self.use_residual:
            out = x + (self.drop_path(out) if self.has_drop_path else out)
        return out


def _layer_strides(blocks: Sequence[InvertedResidualSpec]) -> list[int]:
    return [2, *(block.stride for block in blocks), 1]  # stem conv, blocks, head conv


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


def layer_names(blocks: Sequence[InvertedResidualSpec]) -> list[str]:
    """Module names ``build_stages`` gives the stem conv, each block and the head conv, in order.

    The weight converters zip these with the reference model's names for the same layers.
    """
    return [f"stages.{stage}.{index}" for stage, index in _stage_positions(_layer_strides(blocks))]


def build_stages(
    in_channels: int,
    stem_channels: int,
    blocks: Sequence[InvertedResidualSpec],
    head_channels: int,
    *,
    act_layer: LayerFactory,
    norm_layer: LayerFactory,
) -> tuple[list[nn.Sequential], list[int], list[int]]:
    """``(stages, stage_channels, stage_strides)`` of ``3x3/2 stem conv -> blocks -> 1x1 head conv``.

    ``act_layer`` is the stem's and the head conv's activation (blocks carry their own).
    """
    if not blocks:
        raise ValueError("expected at least one inverted residual block")
    if blocks[0].in_channels != stem_channels:
        raise ValueError(f"first block takes {blocks[0].in_channels} channels, but the stem gives {stem_channels}")
    layers: list[nn.Module] = [
        ConvNormAct(in_channels, stem_channels, 3, stride=2, norm_layer=norm_layer, act_layer=act_layer)
    ]
    layers += [InvertedResidual(**block._asdict(), norm_layer=norm_layer) for block in blocks]
    layers.append(ConvNormAct(blocks[-1].out_channels, head_channels, 1, norm_layer=norm_layer, act_layer=act_layer))
    channels = [stem_channels, *(block.out_channels for block in blocks), head_channels]

    positions = _stage_positions(_layer_strides(blocks))
    num_stages = positions[-1][0] + 1
    stages: list[list[nn.Module]] = [[] for _ in range(num_stages)]
    stage_channels = [0] * num_stages
    for layer, out_channels, (stage, _) in zip(layers, channels, positions):
        stages[stage].append(layer)
        stage_channels[stage] = out_channels  # a stage outputs its last layer's channels
    # Every stage starts with its one strided layer, so each halves the resolution.
    return [nn.Sequential(*stage) for stage in stages], stage_channels, [2] * num_stages



class InvertedResidualNetwork(Backbone):
    """``build_stages``'s stages as a backbone (five levels, strides 2-32), with an optional pooled
    classifier (``hidden_channels``: MobileNetV3's hidden layer) and torchvision's initialisation."""

    def __init__(
        self,
        blocks: Sequence[InvertedResidualSpec],
        *,
        stem_channels: int,
        head_channels: int,
        act_layer: LayerFactory,
        norm_layer: LayerFactory,
        dropout: float,
        hidden_channels: int | None = None,
        hidden_activation: type[nn.Module] = nn.ReLU,
        linear_init: LinearInit = "normal",
        in_channels: int,
        num_classes: int | None,
        out_indices: Sequence[int] | None,
        frozen_stages: int,
        norm_eval: bool,
    ) -> None:
        stages, stage_channels, stage_strides = build_stages(
            in_channels, stem_channels, blocks, head_channels, act_layer=act_layer, norm_layer=norm_layer
        )
        head = None
        if num_classes is not None:
            head = ClassifierHead(
                head_channels,
                num_classes,
                hidden_channels=hidden_channels,
                hidden_activation=hidden_activation,
                dropout=dropout,
            )
        super().__init__(
            nn.Identity(),
            stages,
            stage_channels=stage_channels,
            stage_strides=stage_strides,
            in_channels=in_channels,
            head=head,
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
        )
        init_weights(self, linear=linear_init)
