"""What a backbone's levels look like: their shapes, which of them to take, and the stride probe.

``measure_levels`` runs a model's level loop on the meta device at two input sizes and reads each
level's channels and stride off the outputs (stride = change of input size / change of output size),
so strides are measured, never written by hand. It needs only the model's structure and its level
loop (``LevelModel``), not the ``Backbone`` class: ``backbone.py`` and ``dilation.py`` both import
this module, and neither imports the other's caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from vision_backbones import meta_kernels


@dataclass(frozen=True)
class ShapeSpec:
    """Channels and stride of one output level (detectron2's ``ShapeSpec`` fields)."""

    channels: int
    stride: int
    height: int | None = None
    width: int | None = None


class FeatureInfo:
    """timm-style description of the returned levels: ``channels()``, ``reduction()``, ``module_name()``."""

    def __init__(self, levels: Sequence[dict[str, Any]]) -> None:
        self.info = [dict(level) for level in levels]

    def _get(self, key: str, idx: int | Sequence[int] | None) -> Any:
        if idx is None:
            return [level[key] for level in self.info]
        if isinstance(idx, int):
            return self.info[idx][key]
        return [self.info[i][key] for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        return self._get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        return self._get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        return self._get("module", idx)

    def names(self) -> list[str]:
        return self._get("name", None)

    def get_dicts(self) -> list[dict[str, Any]]:
        return [dict(level) for level in self.info]

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.info[idx]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo({self.info})"


# ------------------------------------------------------------------------------------ level indices


def normalize_out_indices(
    out_indices: Sequence[int] | None, num_levels: int, *, name: str = "out_indices"
) -> tuple[int, ...]:
    """Level indices in ``0..num_levels - 1`` (negative ones count from the end), increasing, each once."""
    if out_indices is None:
        return tuple(range(num_levels))
    if isinstance(out_indices, int) or not all(isinstance(i, int) and not isinstance(i, bool) for i in out_indices):
        raise ValueError(f"{name} must be a sequence of ints, got {out_indices!r}")
    if len(out_indices) == 0:
        raise ValueError(f"{name} is empty; expected at least one level index")
    bad = [i for i in out_indices if not -num_levels <= i < num_levels]
    if bad:
        raise ValueError(
            f"{name} {tuple(out_indices)} has {bad} out of range; this model has levels 0..{num_levels - 1}"
        )
    indices = tuple(i % num_levels for i in out_indices)
    if len(set(indices)) != len(indices):
        raise ValueError(f"{name} {tuple(out_indices)} has duplicates; expected each level once")
    if list(indices) != sorted(indices):
        raise ValueError(
            f"{name} {tuple(out_indices)} is not sorted; expected increasing levels, e.g. {tuple(sorted(indices))}"
        )
    return indices


def indices_from_strides(out_strides: Sequence[int], nominal: Sequence[int]) -> tuple[int, ...]:
    """The level indices of ``out_strides`` among the levels' (undilated) strides ``nominal``."""
    if isinstance(out_strides, int) or not all(isinstance(s, int) for s in out_strides) or not out_strides:
        raise ValueError(f"out_strides must be a non-empty sequence of ints such as (8, 16, 32), got {out_strides!r}")
    missing = [s for s in out_strides if s not in nominal]
    if missing:
        raise ValueError(
            f"out_strides {tuple(out_strides)}: {missing} not available; this model has levels at strides {tuple(nominal)}"
        )
    return normalize_out_indices([list(nominal).index(s) for s in out_strides], len(nominal))


def take_indices(indices: int | Sequence[int] | None, num_levels: int) -> tuple[int, ...]:
    """timm's ``feature_take_indices``: ``None`` every level, an int ``n`` the last ``n``, else those levels."""
    if isinstance(indices, bool):
        raise ValueError(f"indices must be None, an int or a sequence of level indices, got {indices!r}")
    if isinstance(indices, int):
        if not 1 <= indices <= num_levels:
            raise ValueError(f"indices={indices} asks for the last {indices} levels; expected 1..{num_levels}")
        return tuple(range(num_levels - indices, num_levels))
    return normalize_out_indices(indices, num_levels, name="indices")


# -------------------------------------------------------------------------------------- stride probe


class LevelModel(Protocol):
    """What the probe needs of a model: its structure and its one level loop (``Backbone`` has both)."""

    stem: nn.Module
    stages: nn.ModuleList
    head_conv: nn.Module | None
    head_conv_level: bool
    in_channels: int

    def _run_levels(self, x: Tensor, keep: list[int], stop: int) -> tuple[Tensor, list[Tensor]]: ...


class _Levels(nn.Module):
    """Every built level of ``model``: what the stride probe runs (a module, for ``functional_call``)."""

    def __init__(self, model: LevelModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> list[Tensor]:
        last = len(self.model.stages) - 1
        return self.model._run_levels(x, list(range(last + 1)), last)[1]


_MEASURED: dict[tuple[Any, ...], tuple[tuple[int, ...], tuple[int, ...]]] = {}


def measure_levels(model: LevelModel, base_size: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(channels, strides)`` of every built level, measured by two forwards on the meta device.

    The two inputs differ by 128 pixels, a multiple of every stride, so each layer's output size
    changes by exactly the input change over its stride, padded ("same") or not (Inception's "valid").
    """
    # Shapes depend only on the structure, which the module tree's repr spells out (every conv's
    # channels, kernel, stride, padding, dilation; every pool; every class): the probe runs once per structure.
    key = (
        type(model).__qualname__,
        repr(model.stem),
        repr(model.stages),
        repr(model.head_conv),
        model.head_conv_level,
        model.in_channels,
        base_size,
    )
    if key in _MEASURED:
        return _MEASURED[key]
    probe = _Levels(model)
    tensors = {name: meta_kernels.empty_like(t, "meta") for name, t in probe.state_dict(keep_vars=True).items()}
    sizes = (base_size, base_size + 128)
    outputs = []
    modes = {module: module.training for module in probe.modules()}
    probe.eval()  # eval-mode batch norm is the cheap path on the meta device
    try:
        with torch.no_grad():
            for size in sizes:
                x = torch.empty(1, model.in_channels, size, size, device="meta")
                outputs.append(torch.func.functional_call(probe, tensors, (x,), strict=False, tie_weights=False))
    finally:
        for module, mode in modes.items():
            module.training = mode
    channels, strides = [], []
    for small, large in zip(*outputs):
        change = large.shape[-1] - small.shape[-1]
        if change <= 0 or 128 % change:
            raise ValueError(
                f"level output size does not scale with the input ({small.shape[-1]} -> {large.shape[-1]} px)"
            )
        channels.append(int(small.shape[1]))
        strides.append(128 // change)
    if len(_MEASURED) > 512:
        _MEASURED.clear()
    _MEASURED[key] = (tuple(channels), tuple(strides))
    return _MEASURED[key]
