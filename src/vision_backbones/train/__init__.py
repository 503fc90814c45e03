"""Training (the ``[train]`` extra): torchvision's ImageNet recipe on Lightning, driven by one YAML file.

``backbones train fit --config configs/imagenet/resnet50.yaml``; see docs/training.md. Models never
import this package.
"""

from vision_backbones.train.datamodule import ImageDataModule
from vision_backbones.train.module import ImageClassifier, NonFiniteLossError

__all__ = ["ImageClassifier", "ImageDataModule", "NonFiniteLossError"]
