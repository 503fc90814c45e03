"""Conversion rules as data: which reference checkpoint becomes which of our models, key by key.

A family's rules live in ``convert/rules/<family>.py`` as ``Reference`` entries registered with
:func:`register_references`. This module only maps keys: it never builds a model, so the rule
modules (and anything that lists them) stay below the registry in the import layers.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

StateDict = dict[str, Tensor]
RULES_PACKAGE = "vision_backbones.convert.rules"


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
    package = importlib.import_module(RULES_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{RULES_PACKAGE}.{module.name}")


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
