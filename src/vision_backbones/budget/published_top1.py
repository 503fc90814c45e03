"""Published ImageNet-1k top-1 of the checkpoints each registered model converts from.

Three sources, all offline: torchvision's weight metadata (``get_model_weights(name)``, every
weight enum of the reference's builder, read from the installed package), the timm table in
``timm_top1.py`` (figures copied from timm's results CSV, with the commit), and
``published.all_published()`` for figures only the seed README has (its own Darknet-53 training). A
model that converts from several checkpoints gets the best one, with its name and source; a model
none of them covers has no accuracy (``None``), never a guess.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from vision_backbones.budget.timm_top1 import TIMM_TOP1


@dataclass(frozen=True)
class TopOne:
    """One checkpoint's published top-1 and where it comes from."""

    top1: float
    checkpoint: str
    source: str
    image_size: int | None = None  # the checkpoint's evaluation crop
    overrides: dict[str, Any] | None = None  # create_model overrides the checkpoint's architecture needs


def _torchvision_candidates(reference: Any) -> list[TopOne]:
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(reference.name)
    except (ValueError, KeyError):
        return []
    found = []
    for weight in weights:
        metrics = weight.meta.get("_metrics", {}).get("ImageNet-1K")
        if not metrics:
            continue
        crop = getattr(weight.transforms(), "crop_size", None)
        found.append(
            TopOne(
                top1=float(metrics["acc@1"]),
                checkpoint=f"torchvision {weight}",
                source="torchvision weight metadata (installed package)",
                image_size=int(crop[0]) if crop else None,
                overrides=dict(reference.overrides) or None,
            )
        )
    return found


@functools.lru_cache(maxsize=1)
def top1_table() -> dict[str, TopOne]:
    """Registered model -> the best published top-1 among the checkpoints that convert to it."""
    from vision_backbones.convert import get_reference, list_references
    from vision_backbones.published import all_published

    candidates: dict[str, list[TopOne]] = {}
    for reference in list_references():
        if reference.library == "torchvision":
            candidates.setdefault(reference.model, []).extend(_torchvision_candidates(reference))
    for model, entries in TIMM_TOP1.items():
        for entry in entries:
            reference = get_reference("timm", entry["checkpoint"].split(".")[0])  # "name.tag"; the overrides are its
            candidates.setdefault(model, []).append(
                TopOne(
                    top1=entry["top1"],
                    checkpoint=f"timm {entry['checkpoint']}",
                    source=entry["source"],
                    image_size=entry["image_size"],
                    overrides=dict(reference.overrides) or None,
                )
            )
    for model, published in all_published().items():
        if published.top1 is not None and not candidates.get(model):
            candidates.setdefault(model, []).append(
                TopOne(top1=published.top1, checkpoint="published", source=published.top1_source or published.source)
            )
    return {model: max(found, key=lambda t: t.top1) for model, found in candidates.items() if found}


def published_top1(name: str) -> TopOne | None:
    """The best published top-1 of a checkpoint converting to ``name``, or ``None``."""
    return top1_table().get(name)
