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

What may change is what each family declares in its own file (``register_family(..., design=
DesignFields(...))``): a family with a width / depth multiplier field gets that multiplied, so its own
rounding applies (which is how B1-B7 come out exactly); otherwise every declared channel entry is
rounded with the shared ``make_divisible`` (to the family's divisor: 8, or what its grouped convs
need) and every declared block count rounded up, as torchvision and timm do. A family that declares
neither says why, and that sentence is the error a user sees.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from vision_backbones.config_paths import overrides_between, read_path, with_path
from vision_backbones.io import jsonable
from vision_backbones.layers import make_divisible
from vision_backbones.registry import ModelEntry, build_on_meta, create_model, get_entry, list_models, model_info
from vision_backbones.validate import check_choice, check_float, check_int

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

RESOLUTION_DIVISOR = 8  # input sizes stay multiples of 8, fine enough for dWr's small r = s ** 0.05

# Bounds checked before anything is built or searched (a scaled network is built on meta tensors to
# count its FLOPs: a depth of x1000 takes minutes, so it is refused in one line instead).
MAX_FLOPS_FACTOR = 1024.0  # nominal FLOPs growth d * w**2 * r**2 (EfficientNet B7 is ~100 x B0)
MAX_MULTIPLIER = 32.0  # any one of depth, width, resolution


def check_multipliers(depth: float, width: float, resolution: float, *, what: str = "") -> None:
    """Each multiplier a finite number > 0 and <= ``MAX_MULTIPLIER``, the nominal FLOPs growth
    ``d * w**2 * r**2`` <= ``MAX_FLOPS_FACTOR``; otherwise one ``ValueError`` naming the limit."""
    for label, value in (("depth", depth), ("width", width), ("resolution", resolution)):
        check_float(f"{label} multiplier", value, min=0.0, min_open=True)
        if value > MAX_MULTIPLIER:
            raise ValueError(
                f"{label} multiplier {value:.4g}{what} is above the limit {MAX_MULTIPLIER:g} (scaling.MAX_MULTIPLIER); "
                "expected a smaller phi, target or multiplier"
            )
    factor = depth * width**2 * resolution**2
    if factor > MAX_FLOPS_FACTOR:
        raise ValueError(
            f"depth {depth:.4g} x width {width:.4g}**2 x resolution {resolution:.4g}**2{what} grows FLOPs {factor:.3g} x, "
            f"above the limit {MAX_FLOPS_FACTOR:g} x (scaling.MAX_FLOPS_FACTOR); expected a smaller phi, target or multiplier"
        )


@dataclass(frozen=True)
class Multipliers:
    """Depth, width and resolution multipliers relative to the base model."""

    depth: float = 1.0
    width: float = 1.0
    resolution: float = 1.0

    def __post_init__(self) -> None:
        for label in ("depth", "width", "resolution"):  # a negative width once gave widths of 8
            check_float(f"Multipliers.{label}", getattr(self, label), min=0.0, min_open=True)


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
            "overrides": jsonable(self.overrides),
            "image_size": self.image_size,
            "phi": self.phi,
            "multipliers": dataclasses.asdict(self.multipliers),
            "training_config": self.training_config(),
        }

    def training_config(self) -> dict[str, Any]:
        """The ``model`` and ``data`` keys of a ``backbones train`` config for this model (crop
        ratio 0.875 for the validation resize, as in the ImageNet recipes)."""
        return {
            "model": {"model": self.base, "model_overrides": jsonable(self.overrides)},
            "data": {
                "train_crop_size": self.image_size,
                "val_crop_size": self.image_size,
                "val_resize_size": round(self.image_size / 0.875),
            },
        }


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
        raise ValueError(
            f"dWr exponents (depth, width, resolution) must sum to 1, got {exponents} (sum {sum(exponents):.4g})"
        )
    flops_factor = 2.0**phi
    return Multipliers(
        depth=flops_factor**depth_share,
        width=flops_factor ** (width_share / 2),
        resolution=flops_factor ** (resolution_share / 2),
    )


def max_phi(
    strategy: str,
    *,
    coefficients: tuple[float, float, float] = EFFICIENTNET_COEFFICIENTS,
    exponents: tuple[float, float, float] = FAST_SCALING_EXPONENTS,
) -> float:
    """The largest ``phi`` whose multipliers stay within ``MAX_FLOPS_FACTOR`` and ``MAX_MULTIPLIER``
    (``inf`` when the coefficients do not grow anything)."""
    one = strategy_multipliers(strategy, 1.0, coefficients=coefficients, exponents=exponents)
    limits = [
        math.log(MAX_FLOPS_FACTOR) / math.log(g) for g in (one.depth * one.width**2 * one.resolution**2,) if g > 1
    ]
    limits += [math.log(MAX_MULTIPLIER) / math.log(m) for m in (one.depth, one.width, one.resolution) if m > 1]
    return min(limits, default=math.inf)


def activation_exponent(strategy: str, **kwargs: Any) -> float:
    """Theoretical growth exponent of activations (~ d w r^2) against FLOPs (~ d w^2 r^2)."""
    one = strategy_multipliers(strategy, 1.0, **kwargs)
    flops = math.log(one.depth * one.width**2 * one.resolution**2)
    return math.log(one.depth * one.width * one.resolution**2) / flops


def scalable_families(*, width: bool = True) -> list[str]:
    """The registered families that declare channel fields or a width multiplier (``width``), or
    block-count fields or a depth multiplier (``width=False``)."""
    designs = {get_entry(name).family: get_entry(name).design for name in list_models()}
    return sorted(
        family for family, design in designs.items() if (design.scalable_width if width else design.scalable_depth)
    )


def _cannot(entry: ModelEntry, what: str) -> str:
    """``model 'x' (family 'y') declares no channel fields: <the family's reason>``."""
    reason = entry.design.fixed_because or "its register_family call declares none (design=DesignFields(...))"
    return f"model {entry.name!r} (family {entry.family!r}) declares no {what} fields: {reason}"


def _scale_channels(value: Any, width: float, divisor: int) -> Any:
    if isinstance(value, (tuple, list)):
        return tuple(_scale_channels(item, width, divisor) for item in value)
    return make_divisible(value * width, divisor)


def _scale_depths(value: Any, depth: float) -> Any:
    if isinstance(value, (tuple, list)):
        return tuple(_scale_depths(item, depth) for item in value)
    return max(1, math.ceil(round(value * depth, 10))) if value else 0  # a stage with no blocks stays empty


def scaled_overrides(name: str, multipliers: Multipliers) -> dict[str, Any]:
    """The ``create_model`` overrides that scale ``name``'s width and depth by ``multipliers``, through
    the fields its family declares (``get_entry(name).design``)."""
    entry = get_entry(name)
    if not isinstance(multipliers, Multipliers):
        raise ValueError(f"multipliers must be a scaling.Multipliers, got {multipliers!r}")
    design = entry.design
    if not design.scalable_width and not design.scalable_depth:
        raise ValueError(f"{_cannot(entry, 'channel or depth')}; scalable families: {', '.join(scalable_families())}")
    if multipliers.width != 1.0 and not design.scalable_width:
        raise ValueError(
            f"{_cannot(entry, 'channel')}, so width {multipliers.width:.4g} cannot apply; scalable families: {', '.join(scalable_families())}"
        )
    if multipliers.depth != 1.0 and not design.scalable_depth:
        raise ValueError(
            f"{_cannot(entry, 'depth')}, so depth {multipliers.depth:.4g} cannot apply; use a width-only scaling"
        )
    config = entry.config
    if multipliers.width != 1.0:
        if design.width_multiplier is not None:
            config = with_path(
                config,
                design.width_multiplier,
                round(read_path(config, design.width_multiplier) * multipliers.width, 10),
            )
        else:
            divisor = design.divisor(entry.config)
            for path in design.channels:
                config = with_path(config, path, _scale_channels(read_path(config, path), multipliers.width, divisor))
    if multipliers.depth != 1.0:
        if design.depth_multiplier is not None:
            config = with_path(
                config,
                design.depth_multiplier,
                round(read_path(config, design.depth_multiplier) * multipliers.depth, 10),
            )
        else:
            for path in design.depths:
                config = with_path(config, path, _scale_depths(read_path(config, path), multipliers.depth))
    return overrides_between(entry.config, config)


def scaled_image_size(base_image_size: int, resolution: float, *, min_size: int = 32) -> int:
    """``base * r`` rounded to a multiple of ``RESOLUTION_DIVISOR``, never below ``min_size``."""
    check_int("base_image_size", base_image_size, min=1)
    check_float("resolution", resolution, min=0.0, min_open=True)  # -1 once came back as 32
    check_int("min_size", min_size, min=1)
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
            raise ValueError(
                "strategy 'explicit' takes --depth/--width/--resolution/--image-size, not phi or a GFLOPs target; use efficientnet or dWr"
            )
        for label, value in (("depth", depth), ("width", width), ("resolution", resolution)):
            if value is not None:
                check_float(label, value, min=0.0, min_open=True)
        if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        multipliers = Multipliers(
            depth or 1.0, width or 1.0, resolution or (image_size / base_image_size if image_size else 1.0)
        )
        check_multipliers(multipliers.depth, multipliers.width, multipliers.resolution)
        size = image_size if image_size is not None else scaled_image_size(base_image_size, multipliers.resolution)
        return ScaledModel(name, scaled_overrides(name, multipliers), size, multipliers, strategy)
    if any(value is not None for value in (depth, width, resolution, image_size)):
        raise ValueError(f"depth/width/resolution/image_size are for strategy 'explicit', not {strategy!r}")
    if (phi is None) == (target_gflops is None):
        raise ValueError("give exactly one of phi and target_gflops")
    strategy_multipliers(strategy, 1.0, coefficients=coefficients, exponents=exponents)  # bad coefficients: one line
    if phi is not None:
        if not isinstance(phi, (int, float)) or isinstance(phi, bool) or not phi >= 0 or not math.isfinite(phi):
            raise ValueError(
                f"phi must be a finite number >= 0 (compound scaling grows the base), got {phi!r}; to shrink, "
                "give a GFLOPs target below the base's or explicit multipliers < 1"
            )
        limit = max_phi(strategy, coefficients=coefficients, exponents=exponents)
        if phi > limit:
            raise ValueError(
                f"phi {phi:g} is above the limit {limit:.3g} for {strategy} (FLOPs growth <= {MAX_FLOPS_FACTOR:g} x, "
                f"each multiplier <= {MAX_MULTIPLIER:g}: scaling.MAX_FLOPS_FACTOR / MAX_MULTIPLIER); expected phi <= {limit:.3g}"
            )
    else:
        check_float("target_gflops", target_gflops, min=0.0, min_open=True)
    options = {
        "coefficients": coefficients,
        "exponents": exponents,
        "min_size": max(32, build_on_meta(name, features_only=True).min_input_size),
    }
    if phi is not None:
        return _at_phi(name, strategy, phi, base_image_size, options)
    return _solve_target(name, strategy, target_gflops, base_image_size, options)  # type: ignore[arg-type]


def _at_phi(name: str, strategy: str, phi: float, base_image_size: int, options: dict[str, Any]) -> ScaledModel:
    multipliers = strategy_multipliers(
        strategy, phi, coefficients=options["coefficients"], exponents=options["exponents"]
    )
    size = scaled_image_size(base_image_size, multipliers.resolution, min_size=options["min_size"])
    return ScaledModel(name, scaled_overrides(name, multipliers), size, multipliers, strategy, phi=phi)


def _gflops(scaled: ScaledModel) -> float:
    return scaled.info()["flops"] / 1e9


def _solve_target(
    name: str, strategy: str, target: float, base_image_size: int, options: dict[str, Any]
) -> ScaledModel:
    """Bisection on phi over the measured FLOPs (monotone, but a step function of the rounding),
    bracketed around the phi the strategy's nominal FLOPs growth predicts."""
    base_gflops = _gflops(_at_phi(name, strategy, 0.0, base_image_size, options))
    limit = max_phi(strategy, coefficients=options["coefficients"], exponents=options["exponents"])
    if target > base_gflops * MAX_FLOPS_FACTOR:  # refused before any search (1e6 GFLOPs once ran for minutes)
        raise ValueError(
            f"target {target:g} GFLOPs is more than {MAX_FLOPS_FACTOR:g} x the {base_gflops:.3g} GFLOPs of {name} "
            f"(the limit, scaling.MAX_FLOPS_FACTOR); expected a target <= {base_gflops * MAX_FLOPS_FACTOR:.4g}"
        )
    if target < base_gflops:
        lowest = -40.0  # every width at make_divisible's floor, every stage one block
        smallest = _gflops(_at_phi(name, strategy, lowest, base_image_size, options))
        if smallest > target:
            raise ValueError(
                f"target {target:g} GFLOPs is below the {smallest:.3g} GFLOPs that {name}'s smallest width "
                f"(every width at its family's floor) reaches under {strategy}; expected a target >= {smallest:.3g}"
            )
    one = strategy_multipliers(strategy, 1.0, coefficients=options["coefficients"], exponents=options["exponents"])
    growth = one.depth * one.width**2 * one.resolution**2  # nominal FLOPs factor per unit of phi
    guess = math.log(target / base_gflops) / math.log(growth)
    high = min(guess + 0.5, limit)
    low = min(guess - 0.5, high)
    while _gflops(_at_phi(name, strategy, low, base_image_size, options)) > target and low > -40:
        low -= 1.0
    while (reached := _gflops(_at_phi(name, strategy, high, base_image_size, options))) < target:
        if high >= limit:
            raise ValueError(
                f"target {target:g} GFLOPs is out of reach of {name} under {strategy}: phi {limit:.3g} (the limit, "
                f"scaling.MAX_FLOPS_FACTOR / MAX_MULTIPLIER) reaches {reached:.4g}; expected a target <= {reached:.4g}"
            )
        high = min(high + 1.0, limit)
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
