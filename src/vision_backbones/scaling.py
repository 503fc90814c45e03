"""Compound scaling of any family with width and depth fields: EfficientNet, Dollár's dWr, explicit.

A scaled model is an override dict plus an input resolution: ``create_model(base, **overrides)``
rebuilds it, and the training config takes the same pair (``model.model_overrides`` and the data
crop sizes, see :meth:`ScaledModel.training_config`).

Three strategies choose the depth, width and resolution multipliers ``(d, w, r)``:

* ``efficientnet`` ("EfficientNet", Tan & Le 2019, https://arxiv.org/abs/1905.11946):
  ``d = alpha ** phi``, ``w = beta ** phi``, ``r = gamma ** phi`` with alpha 1.2, beta 1.1,
  gamma 1.15 (or given); FLOPs grow by about ``(alpha * beta**2 * gamma**2) ** phi`` (1.92 ** phi).
* ``dWr`` ("Fast and Accurate Model Scaling", Dollár, Singh & Girshick, CVPR 2021,
  https://arxiv.org/abs/2103.06877): FLOPs grow by ``s = 2 ** phi``, split by exponents
  ``e_d + e_w + e_r = 1`` as ``d = s ** e_d``, ``w = s ** (e_w / 2)``, ``r = s ** (e_r / 2)``
  (FLOPs ~ d w^2 r^2). Fast scaling is ``e_w = 0.8``, ``e_d = e_r = 0.1``; activations
  (~ d w r^2) then grow as ``s ** 0.6`` instead of ``s ** 0.83`` for uniform (1/3 each).
* ``explicit``: the multipliers given, or an image size (the official EfficientNet B1-B7 table,
  MobileNet v1's alpha and rho).

Channels are rounded with the shared ``make_divisible`` (divisor 8), block counts with ``ceil``,
as torchvision and timm do; a family with a ``width_multiplier`` / ``depth_multiplier`` field gets
those multiplied, so its own rounding applies (which is how B1-B7 come out exactly).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vision_backbones.layers import make_divisible
from vision_backbones.registry import build_on_meta, create_model, get_entry, model_info
from vision_backbones.validate import check_choice, check_float

STRATEGIES = ("efficientnet", "dWr", "explicit")

EFFICIENTNET_COEFFICIENTS = (1.2, 1.1, 1.15)  # alpha (depth), beta (width), gamma (resolution)
FAST_SCALING_EXPONENTS = (0.1, 0.8, 0.1)  # Dollár's dWr: shares of log-FLOPs for depth, width, resolution
UNIFORM_EXPONENTS = (1 / 3, 1 / 3, 1 / 3)  # Dollár's "dwr": every dimension alike

# The official EfficientNet table (width, depth, resolution): not alpha ** phi exactly.
EFFICIENTNET_TABLE: dict[str, tuple[float, float, int]] = {
    "efficientnet_b0": (1.0, 1.0, 224),
    "efficientnet_b1": (1.0, 1.1, 240),
    "efficientnet_b2": (1.1, 1.2, 260),
    "efficientnet_b3": (1.2, 1.4, 300),
    "efficientnet_b4": (1.4, 1.8, 380),
    "efficientnet_b5": (1.6, 2.2, 456),
    "efficientnet_b6": (1.8, 2.6, 528),
    "efficientnet_b7": (2.0, 3.1, 600),
}

# Which config fields carry channels (rounded with make_divisible) and block counts (ceil), per
# family without width_multiplier / depth_multiplier fields. Data, so a family opts in by one line.
CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "resnet": ("stem_channels", "widths"),
    "preact_resnet": ("stem_channels", "widths"),
    "senet": ("stem_channels", "widths"),
    "darknet": ("stem_channels", "widths"),
    "vovnet": ("stem_channels", "mid_channels", "out_channels"),
    "vgg": ("widths",),
    "convnext": ("widths",),
    "densenet": ("stem_channels", "growth_rate"),
    "shufflenet_v2": ("stem_channels", "stage_channels", "head_channels"),
}
BLOCK_COUNT_FIELDS = ("depths",)
RESOLUTION_DIVISOR = 8  # input sizes stay multiples of 8, fine enough for dWr's small r = s ** 0.05


@dataclass(frozen=True)
class Multipliers:
    """Depth, width and resolution multipliers relative to the base model."""

    depth: float = 1.0
    width: float = 1.0
    resolution: float = 1.0


@dataclass(frozen=True)
class ScaledModel:
    """A base model, the overrides that scale it and the input size to run it at."""

    base: str
    overrides: dict[str, Any]
    image_size: int
    multipliers: Multipliers
    strategy: str
    phi: float | None = None  # the compound coefficient, for efficientnet and dWr

    def create(self, **kwargs: Any) -> Any:
        """``create_model(base, **overrides, **kwargs)``."""
        return create_model(self.base, **self.overrides, **kwargs)

    def info(self) -> dict[str, Any]:
        """Parameters and FLOPs at ``image_size`` (backbone only, on meta tensors)."""
        return model_info(self.base, image_size=self.image_size, **self.overrides)

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "strategy": self.strategy,
            "overrides": _jsonable(self.overrides),
            "image_size": self.image_size,
            "phi": self.phi,
            "multipliers": dataclasses.asdict(self.multipliers),
            "training_config": self.training_config(),
        }

    def training_config(self) -> dict[str, Any]:
        """The ``model`` and ``data`` keys of a ``backbones train`` config for this model (crop
        ratio 0.875 for the validation resize, as in the ImageNet recipes)."""
        return {
            "model": {"model": self.base, "model_overrides": _jsonable(self.overrides)},
            "data": {
                "train_crop_size": self.image_size,
                "val_crop_size": self.image_size,
                "val_resize_size": round(self.image_size / 0.875),
            },
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    return value


def strategy_multipliers(
    strategy: str,
    phi: float,
    *,
    coefficients: tuple[float, float, float] = EFFICIENTNET_COEFFICIENTS,
    exponents: tuple[float, float, float] = FAST_SCALING_EXPONENTS,
) -> Multipliers:
    """The ``(d, w, r)`` of ``strategy`` at compound coefficient ``phi`` (may be negative here:
    :func:`scale_model` only refuses a negative ``phi`` the user gives)."""
    check_choice("strategy", strategy, ("efficientnet", "dWr"))
    if strategy == "efficientnet":
        alpha, beta, gamma = coefficients
        for label, value in zip(("alpha", "beta", "gamma"), coefficients):
            check_float(label, value, min=1.0)
        return Multipliers(depth=alpha**phi, width=beta**phi, resolution=gamma**phi)
    depth_share, width_share, resolution_share = exponents
    for label, value in zip(("depth exponent", "width exponent", "resolution exponent"), exponents):
        check_float(label, value, min=0.0, max=1.0)
    if not math.isclose(sum(exponents), 1.0, abs_tol=1e-6):
        raise ValueError(f"dWr exponents (depth, width, resolution) must sum to 1, got {exponents} (sum {sum(exponents):.4g})")
    flops_factor = 2.0**phi
    return Multipliers(
        depth=flops_factor**depth_share, width=flops_factor ** (width_share / 2), resolution=flops_factor ** (resolution_share / 2)
    )


def activation_exponent(strategy: str, **kwargs: Any) -> float:
    """Theoretical growth exponent of activations (~ d w r^2) against FLOPs (~ d w^2 r^2)."""
    one = strategy_multipliers(strategy, 1.0, **kwargs)
    flops = math.log(one.depth * one.width**2 * one.resolution**2)
    return math.log(one.depth * one.width * one.resolution**2) / flops


def scalable_fields(name: str) -> tuple[list[str], list[str]]:
    """``(channel fields, depth fields)`` of ``name``'s config that scaling touches."""
    entry = get_entry(name)
    fields = {f.name for f in dataclasses.fields(entry.config)}
    width = ["width_multiplier"] if "width_multiplier" in fields else [f for f in CHANNEL_FIELDS.get(entry.family, ()) if f in fields]
    depth = ["depth_multiplier"] if "depth_multiplier" in fields else [f for f in BLOCK_COUNT_FIELDS if f in fields]
    return width, depth


def _scale_channels(value: Any, width: float) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return make_divisible(value * width)
    if isinstance(value, (tuple, list)):
        return tuple(_scale_channels(item, width) for item in value)
    return value


def scaled_overrides(name: str, multipliers: Multipliers) -> dict[str, Any]:
    """The ``create_model`` overrides that scale ``name``'s width and depth by ``multipliers``."""
    entry = get_entry(name)
    width_fields, depth_fields = scalable_fields(name)
    scalable = ", ".join(sorted({*CHANNEL_FIELDS, "efficientnet", "mnasnet", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3", "shufflenet_v1"}))
    if not width_fields and not depth_fields:
        raise ValueError(f"model {name!r} (family {entry.family!r}) has no width or depth fields to scale; scalable families: {scalable}")
    if multipliers.width != 1.0 and not width_fields:
        raise ValueError(f"model {name!r} (family {entry.family!r}) has no width field, so width {multipliers.width:.4g} cannot apply; scalable families: {scalable}")
    if multipliers.depth != 1.0 and not depth_fields:
        raise ValueError(f"model {name!r} (family {entry.family!r}) has no depth field, so depth {multipliers.depth:.4g} cannot apply; use a width-only scaling")
    overrides: dict[str, Any] = {}
    if multipliers.width != 1.0:
        for field in width_fields:
            current = getattr(entry.config, field)
            overrides[field] = round(current * multipliers.width, 10) if field == "width_multiplier" else _scale_channels(current, multipliers.width)
    if multipliers.depth != 1.0:
        for field in depth_fields:
            current = getattr(entry.config, field)
            if field == "depth_multiplier":
                overrides[field] = round(current * multipliers.depth, 10)
            else:  # 0 stays 0 (a stage with no blocks, e.g. the CSP Darknet stem stage)
                overrides[field] = tuple(max(1, math.ceil(round(d * multipliers.depth, 10))) if d else 0 for d in current)
    return overrides


def scaled_image_size(base_image_size: int, resolution: float, *, min_size: int = 32) -> int:
    """``base * r`` rounded to a multiple of ``RESOLUTION_DIVISOR``, never below ``min_size``."""
    size = round(base_image_size * resolution / RESOLUTION_DIVISOR) * RESOLUTION_DIVISOR
    return max(min_size, size)


def scale_model(
    name: str,
    *,
    strategy: str = "efficientnet",
    phi: float | None = None,
    target_gflops: float | None = None,
    depth: float | None = None,
    width: float | None = None,
    resolution: float | None = None,
    image_size: int | None = None,
    base_image_size: int = 224,
    coefficients: tuple[float, float, float] = EFFICIENTNET_COEFFICIENTS,
    exponents: tuple[float, float, float] = FAST_SCALING_EXPONENTS,
) -> ScaledModel:
    """Scale registered model ``name`` by ``strategy``.

    ``efficientnet`` / ``dWr`` take ``phi >= 0`` or ``target_gflops`` (FLOPs per image at the
    scaled resolution, solved for ``phi`` by bisection on the measured count; below the base's
    FLOPs it shrinks). ``explicit`` takes ``depth`` / ``width`` / ``resolution`` multipliers and/or
    an ``image_size``. Raises ``ValueError`` (one line) for bad input.
    """
    check_choice("strategy", strategy, STRATEGIES)
    get_entry(name)
    if not isinstance(base_image_size, int) or base_image_size < 1:
        raise ValueError(f"base_image_size must be a positive int, got {base_image_size!r}")
    if strategy == "explicit":
        if phi is not None or target_gflops is not None:
            raise ValueError("strategy 'explicit' takes --depth/--width/--resolution/--image-size, not phi or a GFLOPs target; use efficientnet or dWr")
        for label, value in (("depth", depth), ("width", width), ("resolution", resolution)):
            if value is not None:
                check_float(label, value, min=0.0, min_open=True)
        if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        multipliers = Multipliers(depth or 1.0, width or 1.0, resolution or (image_size / base_image_size if image_size else 1.0))
        size = image_size if image_size is not None else scaled_image_size(base_image_size, multipliers.resolution)
        return ScaledModel(name, scaled_overrides(name, multipliers), size, multipliers, strategy)
    if any(value is not None for value in (depth, width, resolution, image_size)):
        raise ValueError(f"depth/width/resolution/image_size are for strategy 'explicit', not {strategy!r}")
    if (phi is None) == (target_gflops is None):
        raise ValueError("give exactly one of phi and target_gflops")
    options = {"coefficients": coefficients, "exponents": exponents, "min_size": max(32, build_on_meta(name, features_only=True).min_input_size)}
    if phi is not None:
        if not isinstance(phi, (int, float)) or isinstance(phi, bool) or not phi >= 0 or not math.isfinite(phi):
            raise ValueError(
                f"phi must be a finite number >= 0 (compound scaling grows the base), got {phi!r}; to shrink, "
                "give a GFLOPs target below the base's or explicit multipliers < 1"
            )
        return _at_phi(name, strategy, phi, base_image_size, options)
    check_float("target_gflops", target_gflops, min=0.0, min_open=True)
    return _solve_target(name, strategy, target_gflops, base_image_size, options)  # type: ignore[arg-type]


def _at_phi(name: str, strategy: str, phi: float, base_image_size: int, options: dict[str, Any]) -> ScaledModel:
    multipliers = strategy_multipliers(strategy, phi, coefficients=options["coefficients"], exponents=options["exponents"])
    size = scaled_image_size(base_image_size, multipliers.resolution, min_size=options["min_size"])
    return ScaledModel(name, scaled_overrides(name, multipliers), size, multipliers, strategy, phi=phi)


def _gflops(scaled: ScaledModel) -> float:
    return scaled.info()["flops"] / 1e9


def _solve_target(name: str, strategy: str, target: float, base_image_size: int, options: dict[str, Any]) -> ScaledModel:
    """Bisection on phi over the measured FLOPs (monotone, but a step function of the rounding),
    bracketed around the phi the strategy's nominal FLOPs growth predicts."""
    base_gflops = _gflops(_at_phi(name, strategy, 0.0, base_image_size, options))
    if target < base_gflops:
        lowest = -40.0  # every width at make_divisible's floor, every stage one block
        smallest = _gflops(_at_phi(name, strategy, lowest, base_image_size, options))
        if smallest > target:
            raise ValueError(
                f"target {target:g} GFLOPs is below the {smallest:.3g} GFLOPs that {name}'s smallest width "
                f"(8 channels a layer) reaches under {strategy}; expected a target >= {smallest:.3g}"
            )
    one = strategy_multipliers(strategy, 1.0, coefficients=options["coefficients"], exponents=options["exponents"])
    growth = one.depth * one.width**2 * one.resolution**2  # nominal FLOPs factor per unit of phi
    guess = math.log(target / base_gflops) / math.log(growth)
    low, high = guess - 0.5, guess + 0.5
    while _gflops(_at_phi(name, strategy, low, base_image_size, options)) > target and low > -40:
        low -= 1.0
    while _gflops(_at_phi(name, strategy, high, base_image_size, options)) < target:
        high += 1.0
        if high > 64:
            raise ValueError(f"target {target:g} GFLOPs is out of reach of {name} (more than phi 64)")
    for _ in range(30):
        middle = (low + high) / 2
        flops = _gflops(_at_phi(name, strategy, middle, base_image_size, options))
        if abs(flops / target - 1) < 0.005:  # close enough: the rounding makes finer steps moot
            low = high = middle
            break
        if flops < target:
            low = middle
        else:
            high = middle
        if high - low < 2e-3:
            break
    candidates = [_at_phi(name, strategy, p, base_image_size, options) for p in {low, high}]
    return min(candidates, key=lambda scaled: abs(_gflops(scaled) - target))
