"""Load the torchvision and timm checkpoints users already own into our models.

Each family keeps its key-mapping rules as data in ``convert/<family>.py``: a list of
``Reference`` entries (reference library and name -> our model name, the config overrides that
reproduce the reference architecture, and regex rules from reference keys to ours). A reference
key that no rule maps is an error, as is any key the model then misses: nothing is dropped silently.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from vision_backbones.backbone import Backbone

StateDict = dict[str, Tensor]


@dataclass(frozen=True)
class Reference:
    """How one reference model's weights become one of ours.

    Attributes:
        library: ``"torchvision"`` or ``"timm"``.
        name: the reference model's name in that library.
        model: our registered model name.
        rules: ``(pattern, replacement)`` regex pairs tried in order; the first match renames a key.
        overrides: config overrides that make our family match the reference architecture.
        transform: optional whole-state-dict step run before the rules (e.g. split one conv in two).
        drop: patterns of reference keys that have no counterpart and carry no weights we need.
    """

    library: str
    name: str
    model: str
    rules: Sequence[tuple[str, str]]
    overrides: Mapping[str, Any] = field(default_factory=dict)
    transform: Callable[[StateDict], StateDict] | None = None
    drop: Sequence[str] = ()


_REFERENCES: dict[tuple[str, str], Reference] = {}


def register_references(references: Sequence[Reference]) -> None:
    for reference in references:
        key = (reference.library, reference.name)
        if key in _REFERENCES:
            raise ValueError(f"reference {reference.library}:{reference.name} is already registered")
        _REFERENCES[key] = reference


def _load_rule_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def list_references(library: str | None = None) -> list[Reference]:
    """Every registered reference (of one library, if given), sorted by library and name."""
    _load_rule_modules()
    return [r for key, r in sorted(_REFERENCES.items()) if library is None or r.library == library]


def get_reference(library: str, name: str) -> Reference:
    _load_rule_modules()
    if (library, name) not in _REFERENCES:
        known = sorted(n for lib, n in _REFERENCES if lib == library)
        raise ValueError(f"no conversion from {library} model {name!r}; expected one of: {', '.join(known)}")
    return _REFERENCES[(library, name)]


def rename_keys(reference: Reference, state_dict: Mapping[str, Tensor]) -> StateDict:
    """Apply ``reference``'s transform and rules; a key no rule maps raises, naming it."""
    source = dict(state_dict)
    if reference.transform is not None:
        source = reference.transform(source)
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in reference.rules]
    dropped = [re.compile(pattern) for pattern in reference.drop]
    renamed: StateDict = {}
    unmapped = []
    for key, value in source.items():
        if any(p.fullmatch(key) for p in dropped):
            continue
        for pattern, replacement in compiled:
            if pattern.fullmatch(key):
                new_key = pattern.sub(replacement, key)
                break
        else:
            unmapped.append(key)
            continue
        if new_key in renamed:
            raise ValueError(f"{reference.library}:{reference.name}: two keys map to {new_key!r}")
        renamed[new_key] = value
    if unmapped:
        raise ValueError(f"{reference.library}:{reference.name}: no rule maps keys {', '.join(unmapped)}")
    return renamed


def convert(library: str, name: str, state_dict: Mapping[str, Tensor]) -> tuple[str, dict[str, Any], StateDict]:
    """``(our model name, config overrides, renamed state dict)`` for a reference checkpoint."""
    reference = get_reference(library, name)
    return reference.model, dict(reference.overrides), rename_keys(reference, state_dict)


def _build(library: str, name: str, state_dict: Mapping[str, Tensor], create_model_kwargs: dict[str, Any]) -> Backbone:
    from vision_backbones.registry import create_model
    from vision_backbones.weights import load_pretrained

    model_name, overrides, renamed = convert(library, name, state_dict)
    clash = {k: (v, create_model_kwargs[k]) for k, v in overrides.items() if k in create_model_kwargs and create_model_kwargs[k] != v}
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
    from vision_backbones.registry import build_on_meta

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


__all__ = [
    "Reference", "convert", "from_timm", "from_torchvision", "get_reference", "layout_hint", "list_references", "register_references",
]
