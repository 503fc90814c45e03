"""The eval transform a model's weights expect, built from what its family declares.

Each family declares its ``Preprocessing`` (mean, std, input size, crop fraction, interpolation) in
its own file, as timm's ``pretrained_cfg`` and torchvision's ``Weights.transforms()`` do;
``create_model`` sets it on the model (``model.preprocessing``), and ``eval_transform`` turns it into
the usual torchvision pipeline, so nobody copies mean and std by hand:

    model = create_model("inception_v3", pretrained="inception_v3.safetensors").eval()
    transform = eval_transform(model)  # Resize(342, bilinear) -> CenterCrop(299) -> tensor -> Normalize
    logits = model(transform(image).unsqueeze(0))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vision_backbones.family import Preprocessing
from vision_backbones.registry import get_entry

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


def preprocessing_of(model: Any) -> Preprocessing:
    """The ``Preprocessing`` of a model (from ``create_model``), a registered name, or itself."""
    if isinstance(model, Preprocessing):
        return model
    if isinstance(model, str):
        entry = get_entry(model)
        return entry.preprocessing_for(entry.config)
    preprocessing = getattr(model, "preprocessing", None)
    if not isinstance(preprocessing, Preprocessing):
        raise ValueError(
            f"{type(model).__name__} carries no preprocessing; expected a model from create_model, "
            "a registered model name or a Preprocessing"
        )
    return preprocessing


def eval_transform(model: Any) -> Callable[[Any], Any]:
    """torchvision's eval pipeline for ``model`` (a model from ``create_model``, a name or a ``Preprocessing``).

    Resize the shorter side to ``resize_size`` (antialiased), center-crop ``input_size``, convert a PIL
    image or uint8 tensor to float in [0, 1], normalise: the steps of ``weights.transforms()``.
    """
    preprocessing = preprocessing_of(model)
    if preprocessing.interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation {preprocessing.interpolation!r}: expected one of {', '.join(INTERPOLATIONS)}")
    try:
        import torch
        from torchvision.transforms import InterpolationMode, v2
    except ImportError:
        raise ValueError("eval_transform needs torchvision; install it (pip install vision-backbones[train])") from None
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(
                preprocessing.resize_size, interpolation=InterpolationMode(preprocessing.interpolation), antialias=True
            ),
            v2.CenterCrop(preprocessing.input_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(preprocessing.mean), std=list(preprocessing.std)),
        ]
    )
