"""Convolutional vision backbones with one multi-scale contract, verified against torchvision and timm."""

from vision_backbones.backbone import Backbone, ClassifierHead
from vision_backbones.registry import create_model, list_models, model_info, register_family
from vision_backbones.weights import save_weights

__all__ = ["Backbone", "ClassifierHead", "create_model", "list_models", "model_info", "register_family", "save_weights"]
__version__ = "0.1.0"
