"""The whole-architecture search space of Zoph & Le: a plain conv net whose every layer is searched.

Paper: "Neural Architecture Search with Reinforcement Learning" (Zoph & Le, ICLR 2017),
https://arxiv.org/abs/1611.01578

The idea: a recurrent controller writes a network layer by layer as a string of tokens. For each
layer it picks the number of filters, the filter height and width, the stride and which earlier
layers feed it (the paper's "anchor points" with skip connections); the network is trained, its
validation accuracy is the controller's reward. This file is that family of networks, so that a
searched member is a registered backbone like any other; the search itself lives in
``vision_backbones.search`` (models never import it).

How each idea shows in the code:

- ``ZophLeLayer``: one layer's tokens (filters, kernel height, kernel width, stride, skip inputs),
  plain JSON data; ``ZophLeConfig.layers`` is the whole architecture.
- ``SkipConcatConv``: conv ``kernel_height x kernel_width`` (``"same"`` padding) -> batch norm -> ReLU
  on the concatenation, along channels, of the previous layer's output and every skip input. The
  paper pads smaller maps with zeros to concatenate maps of different sizes; with "same" padding maps
  at equal stride have equal sizes, so only an earlier, *larger* map needs resizing: it is average
  pooled down to the current resolution (``ceil_mode``, so odd sizes agree with the strided convs).
- As in ENAS's macro space, the previous layer is always an input (the paper lets a layer read none
  and then gives it the image); so every layer is used and the last layer is the network's output,
  where the paper concatenates all layers no one reads.
- Strides are 1 or 2 (the paper also tries 3), so every resolution is the input's over a power of two.

Levels: a new stage opens at every stride-2 layer; the layers before the first one form ``stages[0]``
(at stride 1 when the first layer has stride 1). Since skip connections cross stages, each stage takes
and returns the list of all outputs so far (``ZophLe`` overrides the base loop's ``_begin`` / ``_level``
hooks to carry it); a level is its stage's last layer. ``frozen_stages=k`` freezes ``stages[:k]`` (there is no stem). No
``output_stride``: skip pooling factors are fixed by the strides the architecture chose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import ConvNormAct, init_weights
from vision_backbones.registry import register_family
from vision_backbones.validate import check_choice, check_float, check_int


class ZophLeLayer(NamedTuple):
    """One searched layer: the tokens Zoph & Le's controller emits for it.

    Attributes:
        filters: output channels.
        kernel_height: filter height (odd: 1, 3, 5, 7 in the paper).
        kernel_width: filter width (odd).
        stride: 1 or 2.
        skips: indices of earlier layers (not the previous one, which is always read) whose outputs are
            concatenated to this layer's input.
    """

    filters: int
    kernel_height: int = 3
    kernel_width: int = 3
    stride: int = 1
    skips: tuple[int, ...] = ()


def _layer(index: int, value: Any) -> ZophLeLayer:
    name = f"layers[{index}]"
    if isinstance(value, ZophLeLayer):
        layer = value
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - set(ZophLeLayer._fields))
        if unknown:
            raise ValueError(f"{name} has unknown fields {unknown}; expected some of {', '.join(ZophLeLayer._fields)}")
        if "filters" not in value:
            raise ValueError(f"{name} {dict(value)!r} lacks 'filters'")
        layer = ZophLeLayer(**value)
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and 1 <= len(value) <= len(ZophLeLayer._fields)
    ):
        layer = ZophLeLayer(*value)
    else:
        raise ValueError(f"{name} must be a ZophLeLayer, a mapping or a sequence of 1-5 fields, got {value!r}")
    check_int(f"{name}.filters", layer.filters, min=1)
    for field in ("kernel_height", "kernel_width"):
        size = check_int(f"{name}.{field}", getattr(layer, field), min=1)
        if size % 2 == 0:
            raise ValueError(f"{name}.{field} must be odd (1, 3, 5, 7) for 'same' padding, got {size}")
    check_choice(f"{name}.stride", layer.stride, (1, 2))
    skips = layer.skips
    if isinstance(skips, (str, bytes)) or not isinstance(skips, Sequence):
        raise ValueError(f"{name}.skips must be a sequence of earlier layer indices, got {skips!r}")
    skips = tuple(skips)
    bad = [s for s in skips if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < index - 1]
    if bad or len(set(skips)) != len(skips):
        raise ValueError(
            f"{name}.skips {skips!r}: expected distinct indices of layers 0..{index - 2} "
            "(the previous layer is always an input)"
        )
    return layer._replace(skips=tuple(sorted(skips)))


def zoph_le_layers(layers: Any) -> tuple[ZophLeLayer, ...]:
    """``layers`` as a validated tuple of ``ZophLeLayer`` (one-line ``ValueError`` naming a bad layer)."""
    if isinstance(layers, (str, bytes, Mapping)) or not isinstance(layers, Sequence) or not layers:
        raise ValueError(f"layers must be a non-empty tuple of ZophLeLayer, got {layers!r}")
    return tuple(_layer(i, layer) for i, layer in enumerate(layers))


class SkipConcatConv(nn.Module):
    """Concatenate the previous output with the skip inputs (pooled to its size), then conv-BN-ReLU."""

    def __init__(self, in_channels: int, layer: ZophLeLayer, skip_factors: Sequence[int]) -> None:
        super().__init__()
        self.skips: list[int] = list(layer.skips)
        # An earlier map at stride s, read where the stride is s * f, is pooled f x f (f = 1: as it is).
        self.pools = nn.ModuleList(
            [nn.AvgPool2d(f, stride=f, ceil_mode=True) if f > 1 else nn.Identity() for f in skip_factors]
        )
        kernel = (layer.kernel_height, layer.kernel_width)
        self.conv = ConvNormAct(
            in_channels, layer.filters, kernel, stride=layer.stride, padding=(kernel[0] // 2, kernel[1] // 2)
        )
        self.out_channels = layer.filters

    def extra_repr(self) -> str:
        return f"skips={tuple(self.skips)}"

    def forward(self, history: list[Tensor]) -> Tensor:
        # history[0] is the image, history[j + 1] the output of layer j.
        inputs = [history[-1]]
        for index, pool in enumerate(self.pools):
            inputs.append(pool(history[self.skips[index] + 1]))
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)  # (B, sum of channels, H, W)
        return self.conv(x)


class ZophLeStage(nn.Module):
    """The layers of one level: takes every output so far, returns it with this stage's outputs appended."""

    def __init__(self, layers: Sequence[SkipConcatConv]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, history: list[Tensor]) -> list[Tensor]:
        history = list(history)
        for layer in self.layers:
            history.append(layer(history))
        return history


@dataclass(frozen=True)
class ZophLeConfig:
    """Architecture of one member of the Zoph & Le space.

    Attributes:
        layers: the searched layers (``ZophLeLayer``s, or mappings / sequences of their fields, e.g. JSON).
        drop_rate: dropout before the classifier.
    """

    layers: tuple[ZophLeLayer, ...]
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", zoph_le_layers(self.layers))
        check_float("drop_rate", self.drop_rate, min=0, max=1, max_open=True)


def _cumulative_strides(layers: Sequence[ZophLeLayer]) -> list[int]:
    """Stride of each layer's output relative to the image."""
    strides, stride = [], 1
    for layer in layers:
        stride *= layer.stride
        strides.append(stride)
    return strides


class ZophLe(Backbone):
    """Searched plain conv layers with concatenated skip inputs; a stage per resolution."""

    def __init__(self, config: ZophLeConfig, *, in_channels: int, num_classes: int | None) -> None:
        strides = _cumulative_strides(config.layers)
        channels = [in_channels]  # channels[j + 1]: output channels of layer j
        groups: list[list[SkipConcatConv]] = []
        for index, layer in enumerate(config.layers):
            input_stride = strides[index - 1] if index > 0 else 1
            factors = [input_stride // strides[j] for j in layer.skips]
            in_total = channels[-1] + sum(channels[j + 1] for j in layer.skips)
            module = SkipConcatConv(in_total, layer, factors)
            if not groups or layer.stride > 1:
                groups.append([])
            groups[-1].append(module)
            channels.append(layer.filters)
        stages = [ZophLeStage(group) for group in groups]
        head = ClassifierHead(channels[-1], num_classes, dropout=config.drop_rate) if num_classes is not None else None
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head)
        if not any(p.is_meta for p in self.parameters()):
            init_weights(self)

    # Skip inputs cross stages, so the base loop carries every output so far (history[0]: the input).
    def _begin(self, x: Tensor) -> list[Tensor]:  # type: ignore[override]
        return [x]

    def _level(self, state: list[Tensor]) -> Tensor:  # type: ignore[override]
        return state[-1]


def _reference_layers() -> tuple[ZophLeLayer, ...]:
    """A small hand-written member (not a searched result): 8 layers, 3 strided, skips across levels."""
    return (
        ZophLeLayer(24, 3, 3, 2),
        ZophLeLayer(36, 3, 3, 1),
        ZophLeLayer(36, 5, 3, 2, skips=(0,)),
        ZophLeLayer(48, 3, 5, 1, skips=(1,)),
        ZophLeLayer(48, 3, 3, 2, skips=(2,)),
        ZophLeLayer(64, 5, 5, 1, skips=(0, 3)),
        ZophLeLayer(64, 3, 3, 2),
        ZophLeLayer(64, 3, 3, 1, skips=(4, 5)),
    )


VARIANTS: dict[str, ZophLeConfig] = {
    # The starting point of a search over this family; ``layers=`` overrides give any member.
    "zoph_le_plain8": ZophLeConfig(layers=_reference_layers()),
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``): every layer's width
# (its inputs are concatenations, so any widths fit) and kernel.
DESIGN = DesignFields(
    channels=("layers.filters",),
    kernels=("layers.kernel_height", "layers.kernel_width"),
    fixed_because="its layers are searched one by one, each with its own skip inputs: there are no repeated blocks to count",
)

# A search space, not a released model: ImageNet statistics at 224 px (crop 0.875, bilinear).
PREPROCESSING = Preprocessing()

register_family("zoph_le", VARIANTS, ZophLe, design=DESIGN, preprocessing=PREPROCESSING)
