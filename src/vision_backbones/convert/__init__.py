"""Load the torchvision and timm checkpoints users already own into our models.

Each family keeps its key-mapping rules as data in ``convert/rules/<family>.py``: a list of
``Reference`` entries (reference library and name -> our model name, the config overrides that
reproduce the reference architecture, and regex rules from reference keys to ours; see
:mod:`~vision_backbones.convert.reference`). A reference key that no rule maps is an error, as is
any key the model then misses: nothing is dropped silently.

This package is the API that builds models (``from_torchvision``, ``from_timm``): it imports the
registry, never the other way round. It hands the registry :func:`layout_hint`, which
``create_model`` adds to a load error when the weights fit a reference layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from vision_backbones.backbone import Backbone
from vision_backbones.convert.reference import (
    Reference,
    StateDict,
    convert,
    get_reference,
    list_references,
    register_references,
    rename_keys,
)
from vision_backbones.registry import add_load_error_hint, build_on_meta, create_model
from vision_backbones.weights import load_pretrained


def _build(library: str, name: str, state_dict: Mapping[str, Tensor], create_model_kwargs: dict[str, Any]) -> Backbone:
    model_name, overrides, renamed = convert(library, name, state_dict)
    clash = {
        k: (v, create_model_kwargs[k])
        for k, v in overrides.items()
        if k in create_model_kwargs and create_model_kwargs[k] != v
    }
    if clash:
        raise ValueError(f"{library}:{name} needs overrides {overrides}; got conflicting arguments {clash}")
    kwargs = {"num_classes": 1000, **overrides, **create_model_kwargs}
    model = create_model(model_name, **kwargs)
    load_pretrained(model, renamed, source=f"{library}:{name}")
    return model.eval()


def from_torchvision(name: str, state_dict: Mapping[str, Tensor], **create_model_kwargs: Any) -> Backbone:
    """Our model holding the weights of torchvision's ``name`` (1000-class head by default).

    ``create_model_kwargs`` build it as ``create_model`` would: ``features_only``, ``out_indices`` /
    ``out_strides``, ``frozen_stages``, ``output_stride``, ``include_head_conv``, ...
    """
    return _build("torchvision", name, state_dict, create_model_kwargs)


def from_timm(name: str, state_dict: Mapping[str, Tensor], **create_model_kwargs: Any) -> Backbone:
    """Our model holding the weights of timm's ``name``; ``create_model_kwargs`` as in ``from_torchvision``."""
    return _build("timm", name, state_dict, create_model_kwargs)


def layout_hint(model_name: str, state_dict: Mapping[str, Tensor]) -> str | None:
    """The reference layout (overrides) of ``model_name`` whose shapes ``state_dict`` fits, if any."""
    body = {k: tuple(v.shape) for k, v in state_dict.items() if not k.startswith("head.")}
    for reference in list_references():
        if reference.model != model_name or not reference.overrides:
            continue
        try:
            expected = build_on_meta(model_name, features_only=True, **reference.overrides).state_dict()
        except ValueError:
            continue
        if {k: tuple(v.shape) for k, v in expected.items()} == body:
            return f"these weights fit the {reference.library}:{reference.name} layout: create_model({model_name!r}, **{dict(reference.overrides)})"
    return None


add_load_error_hint(layout_hint)

__all__ = [
    "Reference",
    "StateDict",
    "convert",
    "from_timm",
    "from_torchvision",
    "get_reference",
    "layout_hint",
    "list_references",
    "register_references",
    "rename_keys",
]
