"""Layer norm over the channels of an NCHW map (ConvNeXt's stem, downsampling layers and head)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


class LayerNorm2d(nn.LayerNorm):
    """``nn.LayerNorm(channels)`` applied at every pixel of a ``(B, C, H, W)`` map.

    Normalizes over ``C`` only (not ``C, H, W`` as ``nn.LayerNorm([C, H, W])`` would); the same
    module and arithmetic as torchvision's ``LayerNorm2d``, so its weights load unchanged.
    """

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C): layer_norm normalizes the last dimension
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # back to (B, C, H, W)
