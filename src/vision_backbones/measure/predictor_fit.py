"""How a latency predictor is fitted, chosen per build by leave-one-family-out cross-validation on its own networks.

Three fit options of :class:`.predictor.KernelPredictor` are chosen here. Two went different ways on different machines when they
were cross-validated by hand (``benchmarks/latency_predictor_cv.py``): channel alignment features helped eager
PyTorch on both CPUs and ONNX Runtime on the Intel Xeon (build networks within ±10 %: 67.8 -> 70.8 %) but not
on the AMD EPYC (77.9 -> 74.3 % of held-out models), and the profiler's own cost per kernel helped the Intel
Xeon's ONNX Runtime build in stop 34 (-> 71.5 %) after losing there in stop 33 (71.9 -> 68.8 %). The third,
pooled repeats (a kernel configuration timed in several networks learned at the median of its times, not at
the first network's), took that build from 67.8 to 69.5 % and, with the other two, from 71.5 to 74.2 % (stop 35).
So a build chooses them itself, with one fixed rule (:func:`choose_fit`), on the networks it measured and nothing else: the
test sets of the benchmark are never read.

The rule: every registered-model family and every search space of the build is predicted by a predictor fitted
without it (its registered variants, their width-scaled copies, and with a space its members, never seen), against
the whole forward the build measured; the fit whose predictions fall within ±10 % most often wins, ties going to
the earlier (simpler) entry of :data:`FIT_CHOICES`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from copy import copy
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar


class Fittable(Protocol):
    """What the choice needs of a predictor (:class:`.predictor.KernelPredictor`, which imports this module)."""

    samples: list[Any]

    def fit(self, *, exclude_families: Sequence[str] = (), seed: int = 0, kind_scales: bool = True) -> Any: ...

    def predict_sample(self, sample: Any) -> float: ...


Predictor = TypeVar("Predictor", bound=Fittable)

# the options chosen between, fewest first (the winner of a tie); every entry names all three
FIT_CHOICES: dict[str, dict[str, bool]] = {
    "plain": {"pool_repeats": False, "alignment": False, "profiler_cost": False},
    "pooled repeats": {"pool_repeats": True, "alignment": False, "profiler_cost": False},
    "alignment": {"pool_repeats": False, "alignment": True, "profiler_cost": False},
    "profiler cost": {"pool_repeats": False, "alignment": False, "profiler_cost": True},
    "pooled repeats + alignment": {"pool_repeats": True, "alignment": True, "profiler_cost": False},
    "pooled repeats + profiler cost": {"pool_repeats": True, "alignment": False, "profiler_cost": True},
    "alignment + profiler cost": {"pool_repeats": False, "alignment": True, "profiler_cost": True},
    "pooled repeats + alignment + profiler cost": {"pool_repeats": True, "alignment": True, "profiler_cost": True},
}
WITHIN = 0.10  # the share of networks predicted within this relative error decides


@dataclass(frozen=True)
class FitChoice:
    """The chosen fit: ``name`` (a key of :data:`FIT_CHOICES`), its ``options``, every candidate's share of
    build networks predicted within ±10 % with its family left out (``shares``, in percent) and the seconds
    the cross-validation took."""

    name: str
    options: dict[str, bool]
    shares: dict[str, float]
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options, "shares": self.shares, "seconds": self.seconds}

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> FitChoice:
        name = str(stored["name"])
        if name not in FIT_CHOICES:
            raise ValueError(
                f"fit choice {name!r} is not one of {sorted(FIT_CHOICES)}; expected a cache this library wrote"
            )
        shares = {str(k): float(v) for k, v in stored.get("shares", {}).items()}
        return cls(name, dict(FIT_CHOICES[name]), shares, float(stored.get("seconds", 0.0)))


def with_options(predictor: Predictor, options: dict[str, bool]) -> Predictor:
    """A shallow copy of ``predictor`` (the same samples) set to ``options``; not fitted."""
    unknown = sorted(set(options) - {"alignment", "profiler_cost", "matmuls_as_conv", "pool_repeats"})
    if unknown:
        raise ValueError(
            f"unknown fit options {unknown}; expected pool_repeats, alignment, profiler_cost or matmuls_as_conv"
        )
    fitted = copy(predictor)
    for key, value in options.items():
        setattr(fitted, key, value)
    return fitted


def held_out_errors(
    predictor: Fittable,
    options: dict[str, bool] | None = None,
    *,
    synthetic: bool = True,
    kind_scales: bool = True,
) -> dict[str, list[float]]:
    """Relative errors (predicted / measured - 1) of every measured build network, each predicted by a fit
    without its family, grouped as ``zoo`` (registered models and their scaled copies) or by search space.
    ``synthetic``: fit on the synthetic networks too (they are never predicted); ``kind_scales``: as
    :meth:`.predictor.KernelPredictor.fit`'s."""
    measured = [s for s in predictor.samples if s.origin != "synthetic"]
    candidate = with_options(predictor, options or {})
    if not synthetic:
        candidate.samples = measured
    errors: dict[str, list[float]] = defaultdict(list)
    for family in sorted({s.family for s in measured}):
        fitted = copy(candidate).fit(exclude_families=[family], kind_scales=kind_scales)
        for sample in measured:
            if sample.family == family:
                group = "zoo" if sample.origin in ("zoo", "scaled") else sample.origin
                errors[group].append(fitted.predict_sample(sample) / sample.network_ms - 1)
    return dict(errors)


def share_within(errors: dict[str, list[float]], within: float = WITHIN) -> float:
    """Percent of all the errors in ``errors`` within ``±within``."""
    every = [e for values in errors.values() for e in values]
    if not every:
        raise ValueError("no measured build networks to cross-validate; expected a built predictor")
    return 100 * sum(abs(e) <= within for e in every) / len(every)


def choose_fit(predictor: Fittable) -> FitChoice:
    """The entry of :data:`FIT_CHOICES` whose leave-one-family-out predictions of ``predictor``'s build
    networks fall within ±10 % most often (ties: the earlier entry)."""
    start = time.perf_counter()
    shares = {name: share_within(held_out_errors(predictor, options)) for name, options in FIT_CHOICES.items()}
    best = max(shares.values())
    name = next(name for name, share in shares.items() if share == best)
    return FitChoice(name, dict(FIT_CHOICES[name]), shares, time.perf_counter() - start)
