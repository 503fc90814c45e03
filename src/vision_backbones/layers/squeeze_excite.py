"""Channel attention: squeeze-and-excitation (SENet) and its one-layer "effective" form (VoVNetV2)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from vision_backbones.layers.conv import LayerFactory


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 reduce -> activation -> 1x1 expand -> gate -> rescale the input."""

    def __init__(
        self,
        channels: int,
        squeeze_channels: int,
        *,
        act_layer: LayerFactory = nn.ReLU,
        gate_layer: LayerFactory = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = act_layer()
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = gate_layer()

    def forward(self, x: Tensor) -> Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)  # (B, C, 1, 1)
        scale = self.expand(self.act(self.reduce(scale)))
        return x * self.gate(scale)


class EffectiveSqueezeExcite(nn.Module):
    """eSE (VoVNetV2): one 1x1 conv with no channel reduction, hard-sigmoid gate."""

    def __init__(self, channels: int, *, gate_layer: LayerFactory = nn.Hardsigmoid) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)
        self.gate = gate_layer()

    def forward(self, x: Tensor) -> Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)  # (B, C, 1, 1)
        return x * self.gate(self.fc(scale))
