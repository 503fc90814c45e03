"""Figures published for each architecture: the tables this library must reproduce.

Each family declares its figures in its own file (``register_family(..., published={...})``); this
module holds the record type and reads them back. ``params_m``: backbone parameters (no classifier
head), millions. ``gflops``: at 1x3x224x224 in the seed's convention (see ``flops.py``). ``source``
says where the figure comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from vision_backbones.registry import get_entry, list_models

TORCHVISION_V1 = "torchvision IMAGENET1K_V1 weights"


@dataclass(frozen=True)
class Published:
    params_m: float | None = None
    gflops: float | None = None
    top1: float | None = None
    source: str = "seed README"
    gflops_decimals: int = 2  # digits the source printed; the tolerance is half a unit of the last one
    top1_source: str = ""


def with_top1(figures: Mapping[str, Published], top1: Mapping[str, float], *, source: str) -> dict[str, Published]:
    """``figures`` with the ImageNet top-1 of each variant in ``top1`` (a variant without figures gets a row)."""
    merged = dict(figures)
    for name, accuracy in top1.items():
        merged[name] = replace(merged.get(name, Published()), top1=accuracy, top1_source=source)
    return merged


def published_for(name: str) -> Published | None:
    """The figures ``name``'s family declares for it, or ``None`` (unknown names raise, as in ``create_model``)."""
    return get_entry(name).info.published.get(name)


def all_published() -> dict[str, Published]:
    """Every registered model with published figures, by name."""
    return {name: figures for name in list_models() if (figures := published_for(name)) is not None}
