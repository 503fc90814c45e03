"""NetAdapt's knobs: one per channel entry a family declares, and the config surgery that turns one.

A knob is one entry of a declared channel path (``get_entry(name).design.channels``): ``widths[2]``,
``rows[3].out_channels``, a scalar ``head_channels``. Turning it rewrites the config through
:mod:`vision_backbones.config_paths`, so nothing here names a family's fields, and the family's own
validation decides whether a width is possible (ShuffleNet v2's even split, ShuffleNet v1's groups);
a width the family refuses is never proposed. Paths that ``follow`` the turned one (MobileNetV3's
explicit expanded widths) shrink in proportion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vision_backbones.config_paths import overrides_between, read_path, with_path
from vision_backbones.layers import make_divisible
from vision_backbones.registry import apply_overrides, get_entry, list_models


@dataclass(frozen=True)
class Knob:
    """One channel entry NetAdapt may shrink: entry ``index`` of the path, or the scalar path (``None``)."""

    path: str
    index: int | None = None

    @property
    def label(self) -> str:
        if self.index is None:
            return self.path
        head, _, attribute = self.path.partition(".")
        return f"{head}[{self.index}]" + (f".{attribute}" if attribute else "")


def channel_knobs(name: str) -> list[Knob]:
    """Every channel entry ``name``'s family declares, in declaration order; a one-line ``ValueError``
    naming the family's reason when it declares none."""
    entry = get_entry(name)
    knobs = []
    for path in entry.design.channels:
        value = read_path(entry.config, path)
        knobs += [Knob(path, i) for i in range(len(value))] if isinstance(value, tuple) else [Knob(path)]
    if not knobs:
        reason = entry.design.fixed_because or "its register_family call declares none (design=DesignFields(...))"
        families = sorted({get_entry(n).family for n in list_models() if get_entry(n).design.channels})
        raise ValueError(
            f"model {name!r} (family {entry.family!r}) declares no channel fields for NetAdapt to shrink: {reason}; "
            f"families with channel fields: {', '.join(families)}"
        )
    return knobs


def _config(name: str, overrides: dict[str, Any]) -> Any:
    return apply_overrides(name, get_entry(name).config, overrides)  # JSON lists and rows as dicts welcome


def knob_channels(name: str, overrides: dict[str, Any], knob: Knob) -> int:
    """The knob's current channel count under ``overrides``."""
    value = read_path(_config(name, overrides), knob.path)
    return value if knob.index is None else value[knob.index]


def with_channels(name: str, overrides: dict[str, Any], knob: Knob, channels: int) -> dict[str, Any]:
    """``overrides`` with ``knob`` set to ``channels`` and its followers scaled alike (raises the family's
    ``ValueError`` when the width is not possible)."""
    entry = get_entry(name)
    config = _config(name, overrides)
    if knob.index is None:
        return overrides_between(entry.config, with_path(config, knob.path, channels))
    old = read_path(config, knob.path)
    values = list(old)
    values[knob.index] = channels
    config = with_path(config, knob.path, tuple(values))
    divisor = entry.design.divisor(entry.config)
    for follower, leader in entry.design.follows:
        followed = list(read_path(config, follower))
        if leader == knob.path and followed[knob.index] is not None:
            followed[knob.index] = make_divisible(followed[knob.index] * channels / old[knob.index], divisor)
            config = with_path(config, follower, tuple(followed))
    return overrides_between(entry.config, config)


def candidate_widths(name: str, overrides: dict[str, Any], knob: Knob) -> list[int]:
    """The narrower widths the knob may take, ascending: multiples of the family's divisor from its
    floor up to below the current width, each one the family's config accepts."""
    entry = get_entry(name)
    divisor = entry.design.divisor(entry.config)
    floor = -(-max(entry.design.min_channels, divisor) // divisor) * divisor
    possible = []
    for width in range(floor, knob_channels(name, overrides, knob), divisor):
        try:
            with_channels(name, overrides, knob, width)
        except ValueError:
            continue
        possible.append(width)
    return possible


def narrowest(name: str, overrides: dict[str, Any], knobs: list[Knob]) -> dict[str, Any]:
    """``overrides`` with every knob at its narrowest possible width (the floor NetAdapt can reach)."""
    for knob in knobs:
        widths = candidate_widths(name, overrides, knob)
        if widths:
            overrides = with_channels(name, overrides, knob, widths[0])
    return overrides
