"""What a family declares about itself, beside its variant table: the fields design tools may change,
its preprocessing and the figures its variants are held to.

A family registers ``register_family(name, VARIANTS, Network, design=..., preprocessing=..., published=...)``
in its own file; scaling, NetAdapt and the search spaces read ``design`` and never name a family's
fields themselves.

Field paths: ``"widths"`` names a config field holding an int or a tuple of ints; ``"rows.out_channels"``
names one attribute of every item of a tuple-of-rows field (MBConv tables), so NetAdapt may shrink
``rows[i].out_channels`` one row at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class DesignFields:
    """The config fields that scaling, NetAdapt and search spaces may change.

    Attributes:
        channels: field paths holding channel counts (ints or tuples of ints), e.g. ``("stem_channels", "widths")``
            or ``("stem_channels", "rows.out_channels", "head_channels")``. NetAdapt shrinks each entry.
        depths: field paths holding block counts (``("depths",)``, ``("rows.repeats",)``).
        kernels: field paths holding kernel sizes (``("rows.kernel_size",)``).
        width_multiplier: the config field that multiplies every width, when the family has one.
        depth_multiplier: the config field that multiplies every depth, when the family has one.
        min_channels: the smallest channel count an entry may be shrunk to.
        channel_divisor: channel counts stay multiples of this: an int (8 for most), or a function of the
            variant's config where grouped convs need more (ResNeXt: ``64 / width_per_group``, so each
            group keeps whole channels; ShuffleNet v1: a multiple of ``groups``).
        follows: ``(follower, leader)`` paths: when an entry of ``leader`` changes, the same entry of
            ``follower`` (where not None) scales in proportion (MobileNetV3's explicit expanded widths).
        fixed_because: why the family declares no channel or no depth fields (one clause, shown to users:
            "its branch widths are a hand-written per-block table").
    """

    channels: tuple[str, ...] = ()
    depths: tuple[str, ...] = ()
    kernels: tuple[str, ...] = ()
    width_multiplier: str | None = None
    depth_multiplier: str | None = None
    min_channels: int = 8
    channel_divisor: int | Callable[[Any], int] = 8
    follows: tuple[tuple[str, str], ...] = ()
    fixed_because: str = ""

    @property
    def scalable_width(self) -> bool:
        return bool(self.channels) or self.width_multiplier is not None

    @property
    def scalable_depth(self) -> bool:
        return bool(self.depths) or self.depth_multiplier is not None

    def divisor(self, config: Any) -> int:
        """The multiple every channel count of ``config`` keeps (the larger of it and ``min_channels``
        is the narrowest an entry may become)."""
        return self.channel_divisor(config) if callable(self.channel_divisor) else self.channel_divisor

    def check_against(self, family: str, config: Any) -> None:
        """Every path names a field of ``config`` (and a row attribute where dotted)."""
        names = {f.name for f in dataclasses.fields(config)}
        followers = [path for pair in self.follows for path in pair]
        for path in (
            *self.channels,
            *self.depths,
            *self.kernels,
            *followers,
            self.width_multiplier,
            self.depth_multiplier,
        ):
            if path is None:
                continue
            head, _, attribute = path.partition(".")
            if head not in names:
                raise ValueError(
                    f"family {family!r} declares design field {path!r}, but its config has no field {head!r}"
                )
            if attribute:
                rows = getattr(config, head)
                if not rows or not hasattr(rows[0], attribute):
                    raise ValueError(
                        f"family {family!r} declares {path!r}, but the rows of {head!r} have no {attribute!r}"
                    )


@dataclass(frozen=True)
class Preprocessing:
    """How a family's weights expect images (timm's ``pretrained_cfg``, torchvision's ``transforms()``)."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bilinear"

    @property
    def resize_size(self) -> int:
        """The shorter side before the center crop (``input_size / crop_pct``, rounded)."""
        return round(self.input_size / self.crop_pct)


@dataclass(frozen=True)
class FamilyInfo:
    """Everything a family says about itself at registration."""

    name: str
    design: DesignFields = field(default_factory=DesignFields)
    preprocessing: Preprocessing | Mapping[str, Preprocessing] = field(default_factory=Preprocessing)
    published: Mapping[str, Any] = field(default_factory=dict)

    def preprocessing_for(self, model: str) -> Preprocessing:
        """The preprocessing of one variant (a family may give a per-variant mapping)."""
        if isinstance(self.preprocessing, Preprocessing):
            return self.preprocessing
        return self.preprocessing.get(model, Preprocessing())
