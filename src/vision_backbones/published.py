"""Figures published for each architecture: the tables this library must reproduce.

``params_m``: backbone parameters (no classifier head), millions. ``gflops``: at 1x3x224x224 in the
seed's convention (see ``flops.py``). ``source`` says where the figure comes from. The seed README's
Darknet rows carried a channel typo (258 for 256) that its authors later fixed; these are the fixed
figures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Published:
    params_m: float | None = None
    gflops: float | None = None
    top1: float | None = None
    source: str = "seed README"
    gflops_decimals: int = 2  # digits the source printed; the tolerance is half a unit of the last one
    top1_source: str = ""


PUBLISHED: dict[str, Published] = {
    "darknet19": Published(19.82, 5.53),
    "darknet53": Published(40.58, 14.31, top1=77.3, top1_source="seed README, its own ImageNet training"),
    "cspdarknet53": Published(26.24, 9.44),
    "vovnet39": Published(25.18, 15.62),
    "vovnet57": Published(41.45, 19.35),
    "vovnet99": Published(69.52),
    "resnet18": Published(11.18, 3.64),
    "resnet34": Published(21.28, 7.34),
    "resnet50": Published(23.51, 8.22),
    "resnet101": Published(42.50, 15.66),
    "resnet152": Published(58.14, 23.11),
    "resnext50_32x4d": Published(22.98, 8.51),
    "resnext101_32x8d": Published(86.74, 32.95),
    "wide_resnet50_2": Published(66.83),
    "wide_resnet101_2": Published(124.84),
    "mobilenet_v2": Published(2.22, 0.6, gflops_decimals=1),
    "mobilenet_v3_large": Published(2.97, 0.45),
    "mobilenet_v3_small": Published(0.93, 0.12),
    "efficientnet_b0": Published(4.01, 0.80),
    "efficientnet_b1": Published(6.51, 1.18),
    "efficientnet_b2": Published(7.70, 1.36),
    "efficientnet_b3": Published(10.70, 1.98),
    "efficientnet_b4": Published(17.55, 3.09),
    "efficientnet_b5": Published(28.34, 4.82),
    "efficientnet_b6": Published(40.74, 6.86),
    "efficientnet_b7": Published(63.79, 10.53),
}

# ImageNet top-1 of torchvision's IMAGENET1K_V1 weights (torchvision's model docs), which convert to
# these models with identical logits: the accuracy a user gets from `from_torchvision`.
_TORCHVISION_TOP1 = {
    "resnet18": 69.758, "resnet34": 73.314, "resnet50": 76.130, "resnet101": 77.374, "resnet152": 78.312,
    "resnext50_32x4d": 77.618, "resnext101_32x8d": 79.312, "wide_resnet50_2": 78.468, "wide_resnet101_2": 78.848,
    "mobilenet_v2": 71.878, "mobilenet_v3_large": 74.042, "mobilenet_v3_small": 67.668,
    "efficientnet_b0": 77.692, "efficientnet_b1": 78.642, "efficientnet_b2": 80.608, "efficientnet_b3": 82.008,
    "efficientnet_b4": 83.384, "efficientnet_b5": 83.444, "efficientnet_b6": 84.008, "efficientnet_b7": 84.122,
}
for _name, _top1 in _TORCHVISION_TOP1.items():
    PUBLISHED[_name] = replace(PUBLISHED[_name], top1=_top1, top1_source="torchvision IMAGENET1K_V1 weights")

# ConvNeXt: torchvision's IMAGENET1K_V1 weight metadata (``ConvNeXt_Tiny_Weights.IMAGENET1K_V1.meta``).
# Its ``num_params`` includes the head (layer norm 2C + fc 1000C + 1000) and its ``_ops`` GFLOPS count
# multiply-adds (ResNet-50: 4.089), so the backbone's figures are ``num_params - head`` and ``2 x _ops``
# (no batch norm or pooling in the backbone, so the seed's convention is exactly 2 x MACs).
_TORCHVISION_CONVNEXT = {  # name: (num_params, _ops, acc@1, channels of the last stage)
    "convnext_tiny": (28_589_128, 4.456, 82.520, 768),
    "convnext_small": (50_223_688, 8.684, 83.616, 768),
    "convnext_base": (88_591_464, 15.355, 84.062, 1024),
    "convnext_large": (197_767_336, 34.361, 84.414, 1536),
}
for _name, (_params, _ops, _top1, _channels) in _TORCHVISION_CONVNEXT.items():
    _head = 2 * _channels + 1000 * _channels + 1000
    PUBLISHED[_name] = Published(
        round((_params - _head) / 1e6, 2), round(2 * _ops, 3), top1=_top1, source="torchvision weight metadata",
        gflops_decimals=3, top1_source="torchvision IMAGENET1K_V1 weights",
    )
