"""Building the kernel-level latency predictor: which networks are profiled, in what order, for how long.

``load_or_build(cache)`` returns the cached predictor of this machine, or builds one:

1. every registered model (224 px unless given), profiled kernel by kernel in its own forward;
2. ``per_space`` random members of each search space at full size (their own random seed);
   then ``synthetic`` small networks per kind of :mod:`.synthetic` (grouped convolutions, wide matrix
   products and layer norms, dense convolutions on large maps, drawn from a generic prior: kernels
   only a few families hold);
3. the fusion test on pairs of consecutive ops of those networks (:func:`.predictor.detect_fusion`);
4. adaptive rounds while the time budget lasts: the predictor is fitted leaving each family out, and the
   networks it misses most get width-scaled copies (``scaling``'s width multiplier 0.5 / 0.75 / 1.25)
   profiled and added, as nn-Meter samples more where its error is high.

Everything runs at the predictor's thread count, pinned to that many CPUs, on the predictor's clock
(CPU time unless asked otherwise), ruled by :class:`~.ruler.Ruler` running in the predictor's runtime (its reference is calibrated at
the start and stored), each profile in a fork of a young copy of the builder made before it builds, fits or
exports anything (:func:`.isolated.young_copy`), and
through the quiet gate (``max_slowdown``, :data:`~.ruler.QUIET_GATE`): a network whose profile ran while
the ruler was slower than that is profiled again, and each sample records its ruler's slowdown. Building
fixes this process's malloc thresholds (:func:`~.allocator.fix_thresholds`):
the heap then keeps up to 1 GiB free instead of returning it, which is what makes a forward's timing
independent of what the process ran before.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from vision_backbones.measure.allocator import fix_thresholds
from vision_backbones.measure.isolated import ThisProcess, YoungProcess, young_copy
from vision_backbones.measure.predictor import (
    DEFAULT_CACHE,
    KernelPredictor,
    NetworkSample,
    detect_fusion,
    fingerprint,
    fused_pairs,
    pinned,
    sample_network,
)
from vision_backbones.measure.ruler import QUIET_GATE, Ruler
from vision_backbones.measure.synthetic import synthetic_labels, synthetic_networks
from vision_backbones.validate import check_int

SPACES_FOR_PREDICTOR = ("mnasnet", "mnasnet_oneshot", "resnet", "nasbench_resnet", "nasbench_mb", "zoph_le")


@dataclass(frozen=True)
class Planned:
    """One network to profile: ``create_model(base, **overrides)`` labelled for its family."""

    label: str
    family: str
    base: str
    overrides: dict[str, Any]
    origin: str


def zoo_plan(names: Sequence[str] | None = None) -> list[Planned]:
    from vision_backbones.registry import get_entry, list_models

    return [Planned(n, get_entry(n).family, n, {}, "zoo") for n in (names or list_models())]


def space_plan(per_space: int, seed: int, spaces: Sequence[str] = SPACES_FOR_PREDICTOR) -> list[Planned]:
    """``per_space`` random full-size members of each space; each space's members form their own family
    (``space:mnasnet``), since a held-out-family test must not see them either."""
    from vision_backbones.registry import get_entry
    from vision_backbones.search.spaces import get_space

    plan = []
    for name in spaces:
        space = get_space(name)
        rng = random.Random(f"{seed}:{name}")
        for i in range(per_space):
            arch = space.full_size(space.architecture(space.random_indices(rng)))
            plan.append(
                Planned(f"{name}#{seed}.{i}", get_entry(space.base).family, space.base, dict(arch), f"space:{name}")
            )
    return plan


def profile_planned(
    planned: Planned,
    state: dict[str, Any],
    *,
    image_size: int,
    repeats: int,
    clock: str,
    runtime: str,
    threads: int,
    max_slowdown: float | None,
) -> NetworkSample:
    """``planned`` built and profiled against ``state["ruler"]``: run in a fork of the builder's young copy
    (:func:`.isolated.young_copy`), so every network is timed in the same young process whatever the
    build ran, fitted or exported before."""
    from vision_backbones.registry import create_model

    torch.manual_seed(0)
    model = create_model(planned.base, **planned.overrides).eval()
    shape = (1, int(getattr(model, "in_channels", 3)), image_size, image_size)
    return sample_network(
        planned.label,
        planned.family,
        model,
        shape,
        planned.origin,
        repeats=repeats,
        clock=clock,
        ruler=state["ruler"],
        runtime=runtime,
        threads=threads,
        max_slowdown=max_slowdown,
    )


def make_ruler(clock: str, runtime: str, threads: int, reference_ms: float | None, state: dict[str, Any]) -> float:
    """The build's ruler (:meth:`.ruler.Ruler.network`), made in the measuring copy as ``state["ruler"]`` and
    calibrated there (31 calls) unless ``reference_ms`` is given; returns its reference."""
    ruler = Ruler.network(clock=clock, runtime=runtime, threads=threads, reference_ms=reference_ms)
    state["ruler"] = ruler
    return ruler.reference(calls=31)


def _stateless(work: Callable[[], Any], state: dict[str, Any]) -> Any:
    """``work()``, ignoring the measuring copy's state: for work in the copy that needs no ruler."""
    return work()


def _scaled(sample_label: str, plan: dict[str, Planned], factor: float) -> Planned | None:
    from vision_backbones.scaling import Multipliers, scaled_overrides

    source = plan.get(sample_label)
    if source is None or source.overrides:  # scale registered models only: their overrides are empty
        return None
    try:
        overrides = scaled_overrides(source.base, Multipliers(width=factor))
    except ValueError:
        return None
    return Planned(f"{source.label}@w{factor:g}", source.family, source.base, overrides, "scaled")


def load_or_build(
    cache: str | os.PathLike[str] | None = DEFAULT_CACHE,
    *,
    runtime: str = "eager",
    threads: int = 1,
    clock: str = "cpu",
    image_size: int = 224,
    per_space: int = 25,
    budget_s: float = 1500.0,
    repeats: int = 3,
    seed: int = 0,
    models: Sequence[str] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    rebuild: bool = False,
    synthetic: int = 40,
    max_slowdown: float | None = QUIET_GATE,
) -> KernelPredictor:
    """The fitted predictor of this machine: read from ``cache`` when it holds one built here with these
    settings, else built (and saved). A cache from another CPU, torch version, runtime or thread count is
    reported on stderr and rebuilt. A cache of this machine that lacks some of the synthetic networks
    (built before they existed) gets them profiled (ruled by its stored reference) and added, not rebuilt;
    synthetic networks of another prior (:data:`.synthetic.PRIOR`) or count are dropped from it."""

    check_int("threads", threads, min=1)
    check_int("image_size", image_size, min=8)
    check_int("per_space", per_space, min=0)
    expected = fingerprint(runtime, threads, clock)
    path = Path(cache) if cache is not None else None
    check_int("synthetic", synthetic, min=0)
    if path is not None and path.exists() and not rebuild:
        try:
            cached = KernelPredictor.load(path, expected)
        except ValueError as error:
            print(f"rebuilding the latency predictor: {error}", file=sys.stderr)
        else:
            current = set(synthetic_labels(synthetic, seed))
            stale = [s for s in cached.samples if s.origin == "synthetic" and s.label not in current]
            if stale or not current <= {s.label for s in cached.samples}:
                start = time.perf_counter()
                cached.samples = [s for s in cached.samples if s not in stale]
                fix_thresholds()
                with pinned(threads), young_copy() as young:
                    young.setup(partial(make_ruler, clock, runtime, threads, cached.ruler_ms))
                    add_synthetic(
                        cached, synthetic, seed, repeats, clock, young, runtime, threads, on_progress, max_slowdown
                    )
                cached.build_seconds += time.perf_counter() - start
                cached.fit_choice = None  # chosen again on the networks it has now
            if cached.fit_choice is None:  # a cache made before builds chose their fit: chosen once, kept
                cached.choose_fit(seed)
                cached.save(path)
                return cached
            return cached.fit(seed=seed)
    predictor = build(
        expected,
        runtime=runtime,
        threads=threads,
        clock=clock,
        image_size=image_size,
        per_space=per_space,
        budget_s=budget_s,
        repeats=repeats,
        seed=seed,
        models=models,
        on_progress=on_progress,
        synthetic=synthetic,
        max_slowdown=max_slowdown,
    )
    if path is not None:
        predictor.save(path)
    return predictor


def build(
    expected: dict[str, Any],
    *,
    runtime: str = "eager",
    threads: int,
    clock: str,
    image_size: int,
    per_space: int,
    budget_s: float,
    repeats: int,
    seed: int,
    models: Sequence[str] | None,
    on_progress: Callable[[str, int, int], None] | None,
    synthetic: int = 40,
    max_slowdown: float | None = QUIET_GATE,
) -> KernelPredictor:
    report = on_progress or (lambda *_: None)
    start = time.perf_counter()
    plan = zoo_plan(models) + space_plan(per_space, seed)
    by_label = {p.label: p for p in plan}
    predictor = KernelPredictor(expected)
    fix_thresholds()  # a forward's page faults then do not depend on what this process ran before
    with pinned(threads), young_copy() as young:  # every measurement in a fork of this young copy
        predictor.ruler_ms = young.setup(partial(make_ruler, clock, runtime, threads, None))
        profiled = partial(profile_planned, image_size=image_size, repeats=repeats, clock=clock, runtime=runtime,
                           threads=threads, max_slowdown=max_slowdown)  # fmt: skip
        for i, planned in enumerate(plan):
            report(planned.label, i, len(plan))
            try:
                predictor.samples.append(young.run(partial(profiled, planned)))
            except Exception as error:  # an exporter's refusal (ONNX): that network is left out, said once
                if runtime == "eager":
                    raise
                first_line = (str(error).strip().splitlines() or [""])[0][:200]
                print(
                    f"latency predictor: {planned.label} left out ({type(error).__name__}: {first_line})",
                    file=sys.stderr,
                )
        add_synthetic(predictor, synthetic, seed, repeats, clock, young, runtime, threads, on_progress, max_slowdown)
        fusion = _onnx_fusion if runtime == "onnxruntime" else _fusion
        predictor.fusion = young.run(partial(_stateless, partial(fusion, plan[: min(len(plan), 12)], image_size)))
        rounds = 0
        while time.perf_counter() - start < budget_s * 0.8 and rounds < 3:
            rounds += 1
            worst = worst_networks(predictor, seed)
            added = 0
            for label, _ in worst:
                for factor in (0.5, 0.75, 1.25):
                    if time.perf_counter() - start > budget_s:
                        break
                    scaled = _scaled(label, by_label, factor)
                    if scaled is None or scaled.label in by_label:
                        continue
                    by_label[scaled.label] = scaled
                    report(scaled.label, rounds, 3)
                    predictor.samples.append(young.run(partial(profiled, scaled)))
                    added += 1
            if not added:
                break
    predictor.choose_fit(seed)  # its cross-validation counts in the build's time
    predictor.build_seconds = time.perf_counter() - start
    return predictor


def add_synthetic(
    predictor: KernelPredictor,
    count: int,
    seed: int,
    repeats: int,
    clock: str,
    young: YoungProcess | ThisProcess,
    runtime: str,
    threads: int,
    on_progress: Callable[[str, int, int], None] | None = None,
    max_slowdown: float | None = None,
) -> None:
    """Profile the networks of :mod:`.synthetic` (``count`` per kind) that ``predictor`` lacks and add them,
    each in a fork of ``young`` (whose state holds the ruler: :func:`make_ruler`)."""
    have = {s.label for s in predictor.samples}
    missing = [label for label in synthetic_labels(count, seed) if label not in have]
    for index, label in enumerate(missing):
        if on_progress is not None:
            on_progress(label, index, len(missing))
        work = partial(_synthetic_sample, count, seed, label, repeats, clock, runtime, threads, max_slowdown)
        predictor.samples.append(young.run(work))


def _synthetic_sample(
    count: int,
    seed: int,
    label: str,
    repeats: int,
    clock: str,
    runtime: str,
    threads: int,
    max_slowdown: float | None,
    state: dict[str, Any],
) -> NetworkSample:
    """The synthetic network ``label`` drawn (the others skipped, which costs nothing) and profiled."""
    others = set(synthetic_labels(count, seed)) - {label}
    _, family, model, shape = next(iter(synthetic_networks(count, seed, skip=others)))
    return sample_network(
        label, family, model, shape, "synthetic", repeats=repeats, clock=clock, ruler=state["ruler"],
        runtime=runtime, threads=threads, max_slowdown=max_slowdown,
    )  # fmt: skip


def _fusion(plan: Sequence[Planned], image_size: int) -> dict[str, dict[str, float]]:
    from vision_backbones.measure.kernels import trace_ops
    from vision_backbones.registry import build_on_meta

    pairs = []
    for planned in plan:
        model = build_on_meta(planned.base, **planned.overrides)
        ops = trace_ops(model, (1, int(getattr(model, "in_channels", 3)), image_size, image_size))
        pairs += [(ops[a], ops[b]) for a, b in list(fused_pairs(ops))[:3]]
    return detect_fusion(pairs[:40])


def _onnx_fusion(plan: Sequence[Planned], image_size: int) -> dict[str, dict[str, float]]:
    """ONNX Runtime fuses at session creation: which exported ops vanished into other kernels."""
    from vision_backbones.measure import onnx_kernels
    from vision_backbones.registry import create_model

    profiles = []
    for planned in plan:
        model = create_model(planned.base, **planned.overrides).eval()
        shape = (1, int(getattr(model, "in_channels", 3)), image_size, image_size)
        try:
            profiles.append(onnx_kernels.profile(onnx_kernels.export(model, shape), shape, repeats=0))
        except Exception:  # left out of the build already, and said so there
            continue
    return onnx_kernels.fusion_summary(profiles)


def worst_networks(predictor: KernelPredictor, seed: int, count: int = 8) -> list[tuple[str, float]]:
    """The registered networks whose leave-their-family-out prediction misses most, as ``(label, error)``."""
    errors = []
    families = sorted({s.family for s in predictor.samples if s.origin == "zoo"})
    for family in families:
        held_out = predictor.fit(exclude_families=[family], seed=seed)
        for sample in predictor.samples:
            if sample.family == family and sample.origin == "zoo":
                errors.append((sample.label, abs(held_out.predict_sample(sample) / sample.network_ms - 1)))
    return sorted(errors, key=lambda e: -e[1])[:count]
