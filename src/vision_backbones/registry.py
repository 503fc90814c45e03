"""The model registry: every variant of every family, by name.

A family registers its variant table (name -> frozen config dataclass) with one builder. Overrides
given to ``create_model`` go through ``dataclasses.replace`` on that config; a field the config does
not have is an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vision_backbones.backbone import Backbone
from vision_backbones.family import IMAGENET_MEAN, IMAGENET_STD, DesignFields, FamilyInfo, Preprocessing
from vision_backbones.validate import check_config, check_overrides


class Builder(Protocol):
    """A family's constructor: the architecture config in, ``(stem, stages, head)`` as a ``Backbone`` out."""

    def __call__(self, config: Any, *, in_channels: int, num_classes: int | None) -> Backbone: ...


@dataclass(frozen=True)
class ModelEntry:
    """One registered variant: its family, its architecture config and how to build it."""

    name: str
    family: str
    config: Any
    build: Builder
    info: FamilyInfo

    @property
    def design(self) -> DesignFields:
        """The config fields scaling, NetAdapt and search spaces may change."""
        return self.info.design

    @property
    def preprocessing(self) -> Preprocessing:
        """Mean, std, input size, crop and interpolation of this variant's weights."""
        return self.info.preprocessing_for(self.name)

    def preprocessing_for(self, config: Any) -> Preprocessing:
        """What a model built from ``config`` expects: one built with ``transform_input=True`` (GoogLeNet,
        Inception v3, as torchvision builds them for its weights) re-normalises ImageNet-normalised input
        itself, so it takes ImageNet's mean and std instead of the family's [-1, 1]."""
        if getattr(config, "transform_input", False):
            return dataclasses.replace(self.preprocessing, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        return self.preprocessing


_REGISTRY: dict[str, ModelEntry] = {}
_FAMILIES: dict[str, FamilyInfo] = {}


def register_family(
    family: str,
    variants: Mapping[str, Any],
    build: Builder,
    *,
    design: DesignFields | None = None,
    preprocessing: Preprocessing | Mapping[str, Preprocessing] | None = None,
    published: Mapping[str, Any] | None = None,
) -> None:
    """Register every ``name -> config`` of ``variants`` under ``family``, built by ``build``.

    ``design`` names the config fields design tools may change, ``preprocessing`` how the weights
    expect images, ``published`` the figures (``published.Published``) the tests hold variants to.
    """
    info = FamilyInfo(
        name=family,
        design=design or DesignFields(),
        preprocessing=preprocessing or Preprocessing(),
        published=dict(published or {}),
    )
    for name, config in variants.items():
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"config of {name!r} must be a dataclass instance, got {type(config).__name__}")
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (family {_REGISTRY[name].family!r})")
        check_config(name, config)  # a typo in a variant table fails at import, not at first use
        info.design.check_against(family, config)
    unknown = sorted(set(info.published) - set(variants))
    if unknown:
        raise ValueError(f"family {family!r} publishes figures for unregistered variants {unknown}")
    _FAMILIES[family] = info
    for name, config in variants.items():
        _REGISTRY[name] = ModelEntry(name=name, family=family, config=config, build=build, info=info)


def get_family(family: str) -> FamilyInfo:
    """What ``family`` declared at registration."""
    _ensure_models_loaded()
    if family not in _FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[family]


def _ensure_models_loaded() -> None:
    import vision_backbones.models  # noqa: F401  (importing registers every family)


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell wildcard pattern (``"resnet*"``, ``"*vovnet?9*"``), sorted."""
    _ensure_models_loaded()
    return sorted(name for name in _REGISTRY if fnmatch.fnmatchcase(name, pattern))


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; unknown names raise with the closest registered names."""
    _ensure_models_loaded()
    if not isinstance(name, str) or name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; see list_models()"
        raise ValueError(f"unknown model {name!r}{hint}")
    return _REGISTRY[name]


def apply_overrides(name: str, config: Any, overrides: Mapping[str, Any]) -> Any:
    """``config`` with ``overrides`` applied; an unknown field or a value of the wrong type raises.

    The one validation path for architecture changes: ``create_model``, the search spaces, scaling and
    NetAdapt all come through here. Types are checked against the config's annotations
    (``validate.check_overrides``); ranges and cross-field rules by the config's ``__post_init__``.
    """
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"unknown override {', '.join(repr(u) for u in unknown)} for model {name!r}; "
            f"expected one of: {', '.join(sorted(fields))}"
        )
    overrides = {key: _as_tuples(value) for key, value in overrides.items()}  # YAML and JSON give lists
    check_overrides(name, config, overrides)
    return dataclasses.replace(config, **overrides)


def _as_tuples(value: Any) -> Any:
    return (
        tuple(_as_tuples(v) for v in value)
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields")
        else value
    )


def _resolve_pretrained(pretrained: Any) -> str | os.PathLike[str] | None:
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True:
        raise ValueError(
            "pretrained=True: there is no model hub here; expected the path of a .safetensors file "
            "(from `backbones convert` or save_weights)"
        )
    if not isinstance(pretrained, (str, os.PathLike)):
        raise ValueError(f"pretrained must be a path to a weights file, None or False, got {type(pretrained).__name__}")
    return pretrained


def create_model(
    name: str,
    *,
    num_classes: int = 1000,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    out_strides: Sequence[int] | None = None,
    pretrained: str | os.PathLike[str] | bool | None = None,
    in_channels: int = 3,
    frozen_stages: int = -1,
    freeze_until_stride: int | None = None,
    norm_eval: bool = False,
    output_stride: int | None = None,
    include_head_conv: bool = True,
    grad_checkpointing: bool = False,
    **overrides: Any,
) -> Backbone:
    """Build a registered model.

    Args:
        name: a name from ``list_models()``.
        num_classes: classes of the linear head (ignored with ``features_only=True``).
        features_only: no classifier head; ``forward`` returns the selected maps (a list, shallowest
            first), and stages past the deepest selected level are not kept.
        out_indices: levels to return, by index (default: all).
        out_strides: levels to return, by stride (e.g. ``(8, 16, 32)``); an alternative to ``out_indices``.
        pretrained: a ``.safetensors`` file (from ``backbones convert``, a training export or
            ``save_weights``) or a PyTorch checkpoint, loaded with ``weights_only=True``; ``False`` or
            ``None``: fresh weights.
        in_channels: input channels (3 for RGB); ``in_chans`` is accepted as timm's spelling.
        frozen_stages: ``-1`` none, ``0`` the stem, ``k`` the stem and the first ``k`` levels.
        freeze_until_stride: freeze everything producing the level at this stride and shallower.
        norm_eval: keep batch norms in eval mode during training.
        output_stride: 8 or 16: dilate the last stages so that no level is coarser (DeepLab).
        include_head_conv: ``False`` makes the last level the last block's output in families that
            end with a 1x1 head conv (EfficientNet-B0: 320 instead of 1280 channels).
        grad_checkpointing: recompute each stage in the backward pass (``set_grad_checkpointing``).
        **overrides: fields of the family's config, e.g. ``width_multiplier=0.5``.
    """
    from vision_backbones.weights import load_pretrained, read_checkpoint, upgrade_stored_overrides

    entry = get_entry(name)
    if "in_chans" in overrides:  # timm's spelling
        in_chans = overrides.pop("in_chans")
        if in_channels not in (3, in_chans):
            raise ValueError(f"in_chans={in_chans!r} and in_channels={in_channels!r} disagree; give one of them")
        in_channels = in_chans
    if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}; use features_only=True for no head")
    pretrained = _resolve_pretrained(pretrained)
    state_dict, stored = ({}, {}) if pretrained is None else read_checkpoint(pretrained)
    if stored:  # checkpoints written before a field was renamed
        stored = upgrade_stored_overrides(entry.family, stored, source=os.fspath(pretrained))  # type: ignore[arg-type]
    conflicts = {k: (v, overrides[k]) for k, v in stored.items() if k in overrides and _as_tuples(overrides[k]) != v}
    if conflicts:
        raise ValueError(f"overrides {conflicts} conflict with the architecture stored in {os.fspath(pretrained)!r}")  # type: ignore[arg-type]
    config = apply_overrides(name, entry.config, {**stored, **overrides})
    head_classes = None if features_only else num_classes
    model = entry.build(config, in_channels=in_channels, num_classes=head_classes)
    model.preprocessing = entry.preprocessing_for(config)  # what eval_transform builds
    model.configure(
        features_only=features_only,
        out_indices=out_indices,
        out_strides=out_strides,
        frozen_stages=frozen_stages,
        freeze_until_stride=freeze_until_stride,
        norm_eval=norm_eval,
        output_stride=output_stride,
        include_head_conv=include_head_conv,
        grad_checkpointing=grad_checkpointing,
    )
    if pretrained is not None:
        try:
            load_pretrained(model, state_dict, source=os.fspath(pretrained))
        except ValueError as error:
            hint = None if stored else _load_error_hint(name, state_dict)
            if hint is None:
                raise
            raise ValueError(f"{error}; {hint}") from None
    return model


# Functions that explain a failed weight load (``vision_backbones.convert`` adds the reference
# layout the weights fit). They are handed in, so the registry never imports the converters.
_LOAD_ERROR_HINTS: list[Callable[[str, Mapping[str, Any]], str | None]] = []


def add_load_error_hint(hint: Callable[[str, Mapping[str, Any]], str | None]) -> None:
    """Have ``create_model`` append ``hint(model_name, state_dict)`` (when not ``None``) to a load error."""
    if hint not in _LOAD_ERROR_HINTS:
        _LOAD_ERROR_HINTS.append(hint)


def _load_error_hint(name: str, state_dict: Mapping[str, Any]) -> str | None:
    return next((text for hint in _LOAD_ERROR_HINTS if (text := hint(name, state_dict)) is not None), None)


def build_on_meta(name: str, **kwargs: Any) -> Backbone:
    """Build without allocating weights (for parameter and FLOP counts of the biggest models)."""
    import torch

    with torch.device("meta"):
        return create_model(name, **kwargs)


def model_info(name: str, *, image_size: int = 224, **overrides: Any) -> dict[str, Any]:
    """Channels, strides, backbone parameters and FLOPs of ``name``, without allocating weights."""
    import torch

    from vision_backbones.flops import count_flops

    model = build_on_meta(name, features_only=True, **overrides)
    params = sum(p.numel() for p in model.parameters())
    flops = count_flops(model, torch.empty(1, model.in_channels, image_size, image_size, device="meta"))
    entry = get_entry(name)
    return {
        "name": name,
        "family": entry.family,
        "params": params,
        "flops": flops.total,
        "flops_2x_macs": flops.macs * 2,
        "out_channels": model.out_channels,
        "strides": model.strides,
        "image_size": image_size,
    }
