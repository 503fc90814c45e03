"""The weight initialisation torchvision and timm give most of these networks, in one place.

Convs get He normal init (fan-out by default; ``nonlinearity="relu"`` and the default
``leaky_relu`` with slope 0 have the same gain), norms start at identity, and linears get a small
normal draw. The options cover the few real differences between the reference implementations.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

LinearInit = Literal["normal", "uniform", "zero_bias", "default"]


def init_weights(
    model: nn.Module,
    *,
    conv_mode: Literal["fan_in", "fan_out"] = "fan_out",
    zero_conv_bias: bool = True,
    linear: LinearInit = "normal",
) -> None:
    """Initialise ``model`` in place.

    ``linear``: ``"normal"`` draws weights from ``N(0, 0.01)``; ``"uniform"`` from
    ``U(-1/sqrt(out), 1/sqrt(out))`` (EfficientNet); both zero the bias. ``"zero_bias"`` only zeros the
    bias (DenseNet); ``"default"`` leaves linears at PyTorch's default (ResNet).
    ``zero_conv_bias=False`` keeps PyTorch's default conv biases (SENet's squeeze-excite convs).
    """
    if any(p.is_meta for p in model.parameters()):
        return  # nothing to initialise, and sampling on meta tensors is slow (EfficientNet-B7: 2 s)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode=conv_mode, nonlinearity="relu")
            if zero_conv_bias and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and linear != "default":
            if linear == "normal":
                nn.init.normal_(module.weight, 0.0, 0.01)
            elif linear == "uniform":
                bound = module.out_features**-0.5
                nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)
