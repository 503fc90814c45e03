"""Convolutional vision backbones with one multi-scale contract, verified against torchvision and timm."""

from vision_backbones import meta_kernels
from vision_backbones.backbone import Backbone

# imported here also because it hands create_model its "these weights fit layout X" hint
from vision_backbones.convert import from_timm, from_torchvision
from vision_backbones.head import ClassifierHead
from vision_backbones.preprocessing import eval_transform
from vision_backbones.registry import create_model, list_models, model_info, register_family
from vision_backbones.weights import save_weights

# before any submodule runs: shape probes, FLOP counts and kernel traces run on meta tensors
meta_kernels.register()

__all__ = [
    "Backbone",
    "ClassifierHead",
    "create_model",
    "eval_transform",
    "from_timm",
    "from_torchvision",
    "list_models",
    "model_info",
    "register_family",
    "save_weights",
]
__version__ = "0.1.0"
