"""DenseNet-121/161/169/201 (DenseNet-BC).

Paper: "Densely Connected Convolutional Networks" (Huang et al., 2016), https://arxiv.org/abs/1608.06993.
Memory-efficient training: "Memory-Efficient Implementation of DenseNets" (Pleiss et al., 2017),
https://arxiv.org/abs/1707.06990.

The idea: inside a ``DenseBlock`` every ``DenseLayer`` sees the concatenation of the block input and
all earlier layers' outputs, and adds ``growth_rate`` new channels to it (feature reuse instead of
re-learning). Layers are pre-activation "bottlenecks" (BN-ReLU-1x1 conv to ``bn_size * growth_rate``,
BN-ReLU-3x3 conv to ``growth_rate``: the "B"); a ``Transition`` between blocks halves the channels
("compression", the "C") and the resolution (2x2 average pool).

``memory_efficient`` recomputes each layer's concatenation + first norm/conv in the backward pass
(``torch.utils.checkpoint``) instead of storing it: the stored activations then grow linearly, not
quadratically, with depth, at some extra compute.

Levels: ``stages[0]`` is the 7x7/2 stem conv (stride 2); ``stages[1]`` the 3x3/2 max pool and the
first dense block (stride 4); ``stages[2..4]`` each open with the transition that halves the
resolution, then a dense block (strides 8, 16, 32). The last stage ends with the final norm + ReLU,
which the classifier sees. ``output_stride`` 16 / 8 drops the last one / two transitions' 2x2 average
pools (a 2x2 pool at stride 1 would only blur and shrink) and dilates the dense layers' 3x3 convs after them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import ConvNormAct, init_weights
from vision_backbones.registry import register_family
from vision_backbones.validate import check_int, check_ints, check_rate


def _any_requires_grad(tensors: list[Tensor]) -> bool:
    for tensor in tensors:  # noqa: SIM110  (a loop, not any(...): TorchScript has no generator expressions)
        if tensor.requires_grad:
            return True
    return False


@contextmanager
def _keep_running_stats(norm: nn.BatchNorm2d) -> Iterator[None]:
    """Undo the running-statistics update of a recomputation: the forward pass already counted this batch."""
    saved = [buffer.clone() for buffer in norm.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(norm.buffers(), saved):
                buffer.copy_(value)


class DenseLayer(nn.Module):
    """cat(inputs) -> BN-ReLU-1x1 conv (``bn_size * growth_rate``) -> BN-ReLU-3x3 conv (``growth_rate``)."""

    def __init__(
        self, in_channels: int, growth_rate: int, *, bn_size: int, drop_rate: float, memory_efficient: bool
    ) -> None:
        super().__init__()
        mid_channels = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.act1 = nn.ReLU(inplace=True)  # in place on the norm's fresh output
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(mid_channels)
        self.act2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid_channels, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.memory_efficient = memory_efficient

    def bottleneck(self, inputs: list[Tensor]) -> Tensor:
        # The concatenation is the big tensor (all earlier channels); checkpointing this part avoids storing it.
        return self.conv1(self.act1(self.norm1(torch.cat(inputs, dim=1))))  # (B, bn_size * k, H, W)

    @torch.jit.unused
    def checkpointed_bottleneck(self, inputs: list[Tensor]) -> Tensor:
        # The backward pass re-runs norm1 in training mode; unlike torchvision's, ours does not update its
        # running statistics twice.
        contexts = lambda: (nullcontext(), _keep_running_stats(self.norm1))
        return checkpoint(lambda *xs: self.bottleneck(list(xs)), *inputs, use_reentrant=False, context_fn=contexts)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        if self.memory_efficient and not torch.jit.is_scripting() and _any_requires_grad(inputs):
            out = self.checkpointed_bottleneck(inputs)
        else:
            out = self.bottleneck(inputs)
        out = self.conv2(self.act2(self.norm2(out)))  # (B, k, H, W)
        if self.drop_rate > 0.0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.Module):
    """``num_layers`` dense layers; returns the input and every layer's output, concatenated."""

    def __init__(
        self,
        in_channels: int,
        num_layers: int,
        *,
        growth_rate: int,
        bn_size: int,
        drop_rate: float,
        memory_efficient: bool,
    ) -> None:
        super().__init__()
        # Layer i sees the block input and the i earlier layers' outputs.
        self.layers = nn.ModuleList(
            DenseLayer(
                in_channels + i * growth_rate,
                growth_rate,
                bn_size=bn_size,
                drop_rate=drop_rate,
                memory_efficient=memory_efficient,
            )
            for i in range(num_layers)
        )
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, dim=1)  # (B, C_in + num_layers * k, H, W)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv (compress the channels) -> 2x2 average pool (halve the resolution)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(in_channels),
                act=nn.ReLU(inplace=True),
                conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
                pool=nn.AvgPool2d(kernel_size=2, stride=2),
            )
        )


@dataclass(frozen=True)
class DenseNetConfig:
    """Architecture of one DenseNet-BC variant.

    Attributes:
        depths: dense layers per block (one block per level after the stem).
        growth_rate: channels each dense layer adds (``k`` in the paper).
        stem_channels: channels of the 7x7 stem conv.
        bn_size: the bottleneck 1x1 conv outputs ``bn_size * growth_rate`` channels.
        compression: fraction of channels a transition keeps (``theta`` in the paper).
        layer_drop_rate: dropout after each dense layer (torchvision's ``drop_rate``).
        drop_rate: dropout before the classifier.
        memory_efficient: recompute each layer's bottleneck in the backward pass (less memory, slower).
    """

    depths: tuple[int, ...]
    growth_rate: int = 32
    stem_channels: int = 64
    bn_size: int = 4
    compression: float = 0.5
    layer_drop_rate: float = 0.0
    drop_rate: float = 0.0
    memory_efficient: bool = False

    def __post_init__(self) -> None:
        check_ints("depths", self.depths, min=1)
        check_int("growth_rate", self.growth_rate, min=1)
        check_int("stem_channels", self.stem_channels, min=1)
        check_int("bn_size", self.bn_size, min=1)
        if not 0.0 < self.compression <= 1.0:
            raise ValueError(f"compression must be in (0, 1], got {self.compression}")
        check_rate("layer_drop_rate", self.layer_drop_rate)
        check_rate("drop_rate", self.drop_rate)


class DenseNet(Backbone):
    """DenseNet backbone: stem level (stride 2) + one level per dense block (strides 4 .. 32)."""

    supports_output_stride = True

    def __init__(self, config: DenseNetConfig, *, in_channels: int, num_classes: int | None) -> None:
        # Level 0: (B, in, H, W) -> (B, stem, H/2, W/2)
        stages: list[nn.Module] = [ConvNormAct(in_channels, config.stem_channels, 7, stride=2)]
        channels = config.stem_channels
        for index, depth in enumerate(config.depths):
            parts: dict[str, nn.Module] = {}
            if index == 0:
                parts["pool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            else:
                compressed = int(channels * config.compression)
                parts["transition"] = Transition(channels, compressed)
                channels = compressed
            block = DenseBlock(
                channels,
                depth,
                growth_rate=config.growth_rate,
                bn_size=config.bn_size,
                drop_rate=config.layer_drop_rate,
                memory_efficient=config.memory_efficient,
            )
            parts["block"] = block
            channels = block.out_channels
            if index == len(config.depths) - 1:
                # The final norm (torchvision ``norm5``) + ReLU before the global pool.
                parts["norm"] = nn.BatchNorm2d(channels)
                parts["act"] = nn.ReLU(inplace=True)
            stages.append(nn.Sequential(OrderedDict(parts)))

        head = ClassifierHead(channels, num_classes, dropout=config.drop_rate) if num_classes is not None else None
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head)
        init_weights(self, conv_mode="fan_in", linear="zero_bias")  # torchvision's DenseNet scheme


VARIANTS: dict[str, DenseNetConfig] = {
    "densenet121": DenseNetConfig((6, 12, 24, 16)),
    "densenet161": DenseNetConfig((6, 12, 36, 24), growth_rate=48, stem_channels=96),
    "densenet169": DenseNetConfig((6, 12, 32, 32)),
    "densenet201": DenseNetConfig((6, 12, 48, 32)),
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``): a DenseNet's widths
# follow from its stem and growth rate.
DESIGN = DesignFields(channels=("stem_channels", "growth_rate"), depths=("depths",))

# torchvision's IMAGENET1K_V1 weights (``weights.transforms()``): resize 256, center crop 224, bilinear.
PREPROCESSING = Preprocessing(input_size=224, crop_pct=224 / 256, interpolation="bilinear")

register_family("densenet", VARIANTS, DenseNet, design=DESIGN, preprocessing=PREPROCESSING)
