"""Layers shared by several families. A layer lives here once two families need it."""

from vision_backbones.layers.conv import ConvNormAct, conv_pool_stem, make_divisible
from vision_backbones.layers.drop_path import DropPath, drop_path_rates
from vision_backbones.layers.init import init_weights
from vision_backbones.layers.inverted_residual import InvertedResidual, MBConvRow
from vision_backbones.layers.layer_norm import LayerNorm2d
from vision_backbones.layers.separable import SeparableConv2d, channel_shuffle
from vision_backbones.layers.squeeze_excite import EffectiveSqueezeExcite, SqueezeExcite

__all__ = [
    "ConvNormAct",
    "DropPath",
    "EffectiveSqueezeExcite",
    "InvertedResidual",
    "LayerNorm2d",
    "MBConvRow",
    "SeparableConv2d",
    "SqueezeExcite",
    "channel_shuffle",
    "conv_pool_stem",
    "drop_path_rates",
    "init_weights",
    "make_divisible",
]
