"""Kernel-level latency prediction on this machine: nn-Meter's method for PyTorch eager on a CPU.

A network's latency is predicted as the sum of its kernels (:mod:`.kernels`: one meta-device trace), each
kernel predicted by the random forest of its kernel type (scikit-learn), plus the runtime's per-kernel
dispatch overhead. The forests learn from kernels timed *inside* real forwards: a profiling pass runs a
network under a dispatch mode that times every ATen op where it runs, so each kernel is timed with the
caches and memory traffic the network gives it (a kernel replayed alone, with its weights hot in cache,
ran 1.5-2.6x faster than in its network here). The sampled networks are the registered zoo and random
members of the search spaces, then adaptively more: width-scaled copies of the networks whose
prediction misses the measured latency most (nn-Meter samples more configurations where error is high).

Which consecutive ops the runtime fuses is decided by measurement (:func:`detect_fusion`): a chain of
two replayed ops that runs faster than the two alone by more than half the second is fused, and the
second op's kernel is then folded into the first. PyTorch eager fuses nothing; the test is kept so a
runtime that does (ONNX Runtime folds batch norms and activations into convolutions) is described the
same way.

Every timing is *ruled* (:mod:`.ruler`): a fixed network is timed in the same rounds and each round's
times are scaled by the ruler's reference speed over its speed in that round, which cancels the 30-50 %
swings a shared machine puts into raw timings; and the process's malloc thresholds are fixed first
(:mod:`.allocator`), so a forward's page faults do not depend on what ran before. The predictor stores
its ruler reference (``ruler_ms``); a measurement compared with its predictions is ruled by the same one.

A predictor is tied to what it measured: the CPU model, its ISA flags, the torch version, the runtime,
the thread count and the measuring protocol (:func:`fingerprint`). The samples (never pickled models) are cached in a JSON
file; a cache built elsewhere is refused with one line and rebuilt, never silently reused.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from vision_backbones.io import atomic_write_bytes
from vision_backbones.measure import ruler as ruler_settings
from vision_backbones.measure.kernels import FREE_OPS, Op, features, kernel_type, replay, trace_ops
from vision_backbones.measure.machine import cpu_model, isa_flags
from vision_backbones.measure.predictor_fit import RULE as FIT_RULE
from vision_backbones.measure.predictor_fit import FitChoice, choose_fit
from vision_backbones.measure.ruler import QUIET_GATE, WARM_RUNTIMES, Ruler
from vision_backbones.measure.synthetic import TRAINS
from vision_backbones.measure.timing import CLOCKS, num_threads, time_calls
from vision_backbones.validate import check_choice, check_int

RUNTIMES = ("eager", "onnxruntime")
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vision_backbones" / "kernels.json"
FUSION_PAIRS = (("conv", "bn"), ("dwconv", "bn"), ("bn", "unary"), ("conv", "unary"), ("binary", "unary"))
FORMAT = 2  # 2: ruled timings, fixed malloc thresholds
# gate: each profiled network is kept only when the ruler ran within QUIET_GATE of its quiet speed in this
# process in its rounds (sample_network); the ruler runs in the predictor's runtime (Ruler.network)
PROTOCOL = f"ruled:resnet18@160,malloc:fixed,gate:{QUIET_GATE:g}"


def protocol(runtime: str) -> str:
    """:data:`PROTOCOL` as ``runtime``'s predictor is measured: every profile in a fork of a young copy of
    the builder, made before it builds, fits or exports anything (``young``: :func:`.isolated.young_copy`;
    ``fork`` was forks of the builder itself, which its forest fits age); each timed call right after an
    untimed call of the same network (``warm``: :attr:`.ruler.Ruler.warm`; eager since stop 36); the whole
    network timed as a ruled row is, before the profiled calls (``whole-first``: eager since stop 36, ONNX Runtime
    since stop 37); ONNX Runtime's by an ONNX Runtime ruler."""
    ruled = PROTOCOL if runtime == "eager" else PROTOCOL.replace("@160", f"@160/{runtime}", 1)
    return ruled + (",warm" if runtime in WARM_RUNTIMES else "") + ",whole-first,young"


def fingerprint(runtime: str = "eager", threads: int = 1, clock: str = "cpu") -> dict[str, Any]:
    """What a predictor's measurements depend on besides the kernels: a cache with another one is stale."""
    check_choice("runtime", runtime, RUNTIMES)
    check_int("threads", threads, min=1)
    check_choice("clock", clock, tuple(CLOCKS))
    stamp = {
        "format": FORMAT,
        "cpu": cpu_model(),
        "isa": isa_flags(),
        "torch": torch.__version__,
        "runtime": runtime,
        "threads": threads,
        "clock": clock,
        "protocol": protocol(runtime),
    }
    if runtime == "onnxruntime":
        from vision_backbones.measure.onnx_kernels import onnxruntime_version

        stamp["onnxruntime"] = onnxruntime_version()
    return stamp


@contextlib.contextmanager
def pinned(threads: int) -> Iterator[None]:
    """``threads`` intra-op threads on the first ``threads`` CPUs this process may use, then restored."""
    before_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if before_cpus is not None and len(before_cpus) > threads:
        os.sched_setaffinity(0, sorted(before_cpus)[:threads])
    try:
        with num_threads(threads):
            yield
    finally:
        if before_cpus is not None:
            os.sched_setaffinity(0, before_cpus)


# ----------------------------------------------------------------- measuring kernels in their network


class _OpTimer(TorchDispatchMode):
    """Times every costly ATen op of a real forward where it runs (around the kernel only)."""

    def __init__(self, clock: str) -> None:
        super().__init__()
        self.now = CLOCKS[clock]
        self.times: list[float] = []
        self.names: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        start = self.now()
        out = func(*args, **(kwargs or {}))
        elapsed = self.now() - start
        if str(func).split(".")[1] not in FREE_OPS:
            self.times.append(1e3 * elapsed)
            self.names.append(str(func))
        return out


@dataclass
class NetworkSample:
    """One profiled network: each kernel's type, features and in-network milliseconds, and the whole
    forward measured without the profiler (wall clock, median)."""

    label: str
    family: str
    kernels: list[tuple[str, list[float], float]]
    network_ms: float
    origin: str = "zoo"  # zoo, space:<name>, scaled
    ruler_slowdown: float | None = None  # the kept profile's ruler median over its quiet speed, minus 1
    tries: int = 1  # profiles taken under the quiet gate (the quietest kept)

    @property
    def kernel_sum_ms(self) -> float:
        return sum(ms for _, _, ms in self.kernels)


@torch.no_grad()
def profile_network(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    repeats: int = 5,
    warmup: int = 2,
    clock: str = "cpu",
    ruler: Ruler | None = None,
) -> tuple[list[Op], list[float], float]:
    """``(ops, median ms of each op inside the forward, median ms of the whole forward)``; the whole forward
    is timed without the profiler, rounds of both interleaved. ``clock``: ``cpu`` (this process's CPU
    time: with one thread, the work done, barely moved by other processes) or ``wall``. ``ruler``: timed
    once per round, and that round's times scaled by its reference over its time (see :mod:`.ruler`).

    With a warm ruler (:attr:`.ruler.Ruler.warm`) a round is the ruler, an untimed forward, the timed one
    (the whole, exactly as a warm ruled measurement times it: :func:`.ruler.ruled_ms`) and the profiled
    forward, right after a call of its network. Timing the whole after the profiled call instead (three
    forwards after the ruler, not one) read the smallest networks up to 9 % faster than a warm ruled row in
    the same process (mobilenet_v3_small 0.906 of it, against 0.959 whole-first; Intel Xeon, stop 36:
    ``benchmarks/latency_predictor/intel_xeon/eager_order.md``), and a build that did so read the held-out
    registered models 75.9 % within ±10 %, whole-first 89.3 % (the same benchmark rows)."""
    model = model.eval()
    if ruler is not None:
        ruler.reference()  # calibrated before the first round, not inside it
    ops = trace_ops(model, input_shape)
    example = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
    per_round: list[list[float]] = []
    whole: list[float] = []
    for _ in range(warmup):
        model(example)
    warm = ruler is not None and ruler.warm
    for _ in range(repeats):
        if ruler is not None and warm:  # as a warm ruled row: the ruler, an untimed call, the timed call
            scale = ruler.round_scale()
            whole_ms = time_calls(lambda: model(example), repeats=1, warmup=1, clock=clock)[0]
        timer = _OpTimer(clock)  # then the profiled call, right after a call of its network
        with timer:
            model(example)
        if timer.names != [op.name for op in ops]:
            extra = sorted(set(timer.names) ^ {op.name for op in ops}) or "the same ops in another order"
            raise RuntimeError(
                f"the forward ran {len(timer.names)} costly ops, its meta trace {len(ops)} (differing: {extra}); "
                "expected the same ops"
            )
        if not warm:  # the whole after the profiled call, the ruler last: the next round's kernels follow it
            whole_ms = time_calls(lambda: model(example), repeats=1, warmup=0, clock=clock)[0]
            scale = 1.0 if ruler is None else ruler.round_scale()
        per_round.append([ms * scale for ms in timer.times])
        whole.append(whole_ms * scale)
    op_ms = [statistics.median(column) for column in zip(*per_round)]
    return ops, op_ms, statistics.median(whole)


def sample_network(
    label: str,
    family: str,
    model: nn.Module,
    input_shape: Sequence[int],
    origin: str,
    *,
    repeats: int = 5,
    clock: str = "cpu",
    ruler: Ruler | None = None,
    runtime: str = "eager",
    threads: int = 1,
    max_slowdown: float | None = None,
    tries: int | None = None,
    pause_s: float = 2.0,
) -> NetworkSample:
    """One network profiled kernel by kernel on ``runtime``: eager PyTorch (:func:`profile_network`, at the
    threads the caller set) or ONNX Runtime (the model exported, its session's kernels profiled at
    ``threads``: :mod:`.onnx_kernels`).

    ``max_slowdown`` (with a ``ruler``): the quiet gate of :func:`.ruler.ruled_ms` for a whole profile. A
    profile whose ruler rounds ran more than that share above its quiet speed (:meth:`.ruler.Ruler.quiet_ms`)
    is taken again after ``pause_s`` seconds, up to ``tries`` in all (default :data:`.ruler.QUIET_TRIES`);
    the quietest is kept."""
    check_choice("runtime", runtime, RUNTIMES)
    attempts = 1 if max_slowdown is None or ruler is None else ruler_settings.QUIET_TRIES if tries is None else tries
    check_int("tries", attempts, min=1)
    data = None
    if runtime == "onnxruntime":
        from vision_backbones.measure import onnx_kernels

        data = onnx_kernels.export(model, input_shape)  # before the first try: the export runs no ruler

    def profiled() -> NetworkSample:
        if data is not None:
            result = onnx_kernels.profile(data, input_shape, threads=threads, repeats=repeats, clock=clock, ruler=ruler)
            kernels = [(kind, row, ms) for (kind, row), ms in zip(result.kernels, result.kernel_ms)]
            return NetworkSample(label, family, kernels, result.network_ms, origin)
        ops, op_ms, network_ms = profile_network(model, input_shape, repeats=repeats, clock=clock, ruler=ruler)
        kernels = [(kernel_type(op), [float(v) for v in features(op)], ms) for op, ms in zip(ops, op_ms)]
        return NetworkSample(label, family, kernels, network_ms, origin)

    if ruler is None:
        return profiled()
    kept, attempt, slowdown, _ = ruler_settings.until_quiet(
        profiled, ruler, max_slowdown=max_slowdown, tries=attempts, pause_s=pause_s
    )
    kept.tries, kept.ruler_slowdown = attempt, slowdown
    return kept


# ----------------------------------------------------------------- fusion, by measurement


def fused_pairs(ops: Sequence[Op]) -> Iterable[tuple[int, int]]:
    """``(producer, consumer)`` indices of consecutive op pairs whose types are a :data:`FUSION_PAIRS`
    candidate and where the consumer is the producer's only reader."""
    for index, op in enumerate(ops):
        if len(op.consumers) != 1:
            continue
        consumer = op.consumers[0]
        if (kernel_type(op), kernel_type(ops[consumer])) in FUSION_PAIRS and ops[consumer].producers == (index,):
            yield index, consumer


def detect_fusion(samples: Sequence[tuple[Op, Op]], *, repeats: int = 9) -> dict[str, dict[str, float]]:
    """For each pair type: median of ``(t(a then b) - t(a)) / t(b)`` over its samples and whether it
    fuses (below 0.5: running b after a costs less than half of b alone)."""
    shares: dict[str, list[float]] = defaultdict(list)
    with torch.no_grad():
        for first, second in samples:
            run_first, run_second = replay(first), replay(second)
            both = lambda run_first=run_first, run_second=run_second: (run_first(), run_second())
            t_first, t_second, t_both = (
                statistics.median(time_calls(f, repeats=repeats, warmup=2)) for f in (run_first, run_second, both)
            )
            shares[f"{kernel_type(first)}+{kernel_type(second)}"].append((t_both - t_first) / max(t_second, 1e-6))
    return {
        pair: {"share_of_second": statistics.median(values), "fused": float(statistics.median(values) < 0.5)}
        for pair, values in shares.items()
    }


# ----------------------------------------------------------------- the regressors


def _forest(features_rows: list[list[float]], log_ms: list[float], seed: int) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=60, min_samples_leaf=1, random_state=seed, n_jobs=1)
    return forest.fit(features_rows, log_ms)


def _cost(kind: str, row: Sequence[float]) -> float:
    """A size the forest's target is divided by (it then learns a rate, which varies far less)."""
    if kind in ("conv", "dwconv", "gconv"):
        return row[10] / 1e6 + (row[11] + row[12]) / 1e5 + 1e-3
    if kind == "linear":
        return row[3] / 1e6 + 1e-3
    return row[0] / 1e5 + 1e-3


def _with_alignment(kind: str, row: Sequence[float]) -> list[float]:
    """A convolution's features (eager or ONNX Runtime) plus its channels per group and whether each is
    a multiple of 16 (AVX-512 holds 16 floats): oneDNN blocks channels by the vector width, and VGG's
    convolutions of 64-512 channels ran 15-30 % faster per multiply-add here than synthetic ones of
    random multiples of 8 on the same maps. Derived when fitting and predicting, so cached samples keep
    their rows."""
    if kind in ("conv", "dwconv", "gconv") and len(row) == 15:
        groups, channels_in, channels_out = max(row[9], 1.0), row[0], row[1]
    elif kind.startswith("ort:Conv") and len(row) == 16:  # onnx_kernels.kernel's layout
        groups, channels_in, channels_out = max(row[10], 1.0), row[2], row[5]
    else:
        return list(row)
    per_in, per_out = channels_in / groups, channels_out / groups
    return [*row, per_in, per_out, float(per_in % 16 == 0), float(per_out % 16 == 0)]


MATMUL_AS_CONV_ROWS = 64


def as_conv(kind: str, row: Sequence[float]) -> tuple[str, list[float]]:
    """A matrix product over many rows (``linear`` with ``rows >= 64``: ConvNeXt's pointwise MLPs, a
    transformer's projections) as the 1x1 convolution it computes the same GEMM of: ``rows`` pixels (a
    square map of that area),
    ``inner`` input and ``cols`` output channels. The classifier heads that train the ``linear`` forest
    have one row, so a held-out family's wide matmuls would otherwise be extrapolated from them. Eager
    kernels only (ONNX Runtime's types are its own)."""
    if kind != "linear" or len(row) != 5 or row[0] < MATMUL_AS_CONV_ROWS:
        return kind, list(row)
    rows, inner, cols = row[0], row[1], row[2]
    side = math.sqrt(rows)  # the rows as a square map, the shapes the conv forest learned from
    return "conv", [
        inner, cols, side, side, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, rows * inner * cols, rows * inner, rows * cols,
        inner * cols, 1.0,
    ]  # fmt: skip


@dataclass
class KernelPredictor:
    """Per-kernel-type random forests plus a per-kernel overhead, fitted on :class:`NetworkSample` s."""

    fingerprint: dict[str, Any]
    samples: list[NetworkSample] = field(default_factory=list)
    fusion: dict[str, dict[str, float]] = field(default_factory=dict)
    build_seconds: float = 0.0
    excluded_families: tuple[str, ...] = ()
    forests: dict[str, Any] = field(default_factory=dict, repr=False)
    fallback: dict[str, float] = field(default_factory=dict, repr=False)
    overhead_ms: tuple[float, float] = (0.0, 0.0)  # per kernel, per network
    ruler_ms: float | None = None  # the ruler reference every timing was scaled to (see .ruler)
    kind_scale: dict[str, float] = field(default_factory=dict, repr=False)
    matmuls_as_conv: bool = True  # see as_conv and _route
    linear_rows_seen: float = 0.0  # the most rows of a linear kernel the fit saw
    # _with_alignment's features; None: eager only (the AMD EPYC's hand-made choice: eager 86.3 -> 87.8 % of
    # held-out registered models within ±10 %, ONNX Runtime 77.9 -> 74.3 %). A build chooses (fit_choice)
    alignment: bool | None = None
    # whether the per-kernel overhead may be negative: the profiler's own cost per kernel, which a profiled
    # kernel's time includes and the whole network's does not. A build chooses (fit_choice)
    profiler_cost: bool = False
    # a configuration timed in several places (a network's repeated blocks, other networks): one forest row
    # at the median of its times; off: at the first network's time
    pool_repeats: bool = False
    # the fit options this build chose by cross-validation on its own networks (.predictor_fit.choose_fit)
    fit_choice: FitChoice | None = None

    def _route(self, kind: str, row: Sequence[float]) -> tuple[str, list[float]]:
        """A linear kernel with more rows than any the linear forest learned from is predicted by the
        conv forest (:func:`as_conv`); the forests themselves learn every kernel as its own type, so the
        other families' predictions do not change."""
        if (
            self.matmuls_as_conv
            and kind == "linear"
            and row
            and row[0] > max(self.linear_rows_seen, MATMUL_AS_CONV_ROWS - 1)
        ):
            return as_conv(kind, row)
        return kind, list(row)

    def fit(
        self,
        *,
        exclude_families: Sequence[str] = (),
        exclude_labels: Sequence[str] = (),
        seed: int = 0,
        kind_scales: bool = True,
    ) -> KernelPredictor:
        """Fit the forests and the overhead on every sample whose family is not in ``exclude_families`` and
        whose label is not in ``exclude_labels`` (a cross-validation fold of search-space members).

        ``kind_scales``: also fit one factor per kernel type (bounded to 0.5-1.5) from in-network kernel
        time to whole-network time. A kernel timed inside a profiled forward starts with caches the
        profiler's own work disturbed, more so for the small kernels of mobile networks; one factor per
        type lets the whole-network times say by how much. Off: every factor is 1. Chosen by
        leave-one-family-out cross-validation on the build samples (``benchmarks/latency_predictor_cv.py``:
        63.0 -> 72.9 % within ±10 %), not on the test sets."""
        excluded, excluded_labels = set(exclude_families), set(exclude_labels)
        kept = [s for s in self.samples if s.family not in excluded and s.label not in excluded_labels]
        if not kept:
            raise ValueError(
                f"no samples left to fit after leaving out {sorted(exclude_families)} and {len(excluded_labels)} labels"
            )
        rows: dict[str, list[list[float]]] = defaultdict(list)
        targets: dict[str, list[float]] = defaultdict(list)
        # a held-out family's kernels are never seen: a synthetic network's kernel equal to one of them goes too
        held_out = {(k, tuple(r)) for s in self.samples if s.family in excluded for k, r, _ in s.kernels}
        # every time a configuration was timed, in whichever networks: one row each, at their median
        timed: dict[tuple[str, tuple[float, ...]], list[float]] = defaultdict(list)
        for sample in kept:
            synthetic = sample.origin == "synthetic"
            trains = TRAINS.get(sample.family)
            for kind, row, ms in sample.kernels:
                key = (kind, tuple(row))
                if synthetic and (key in held_out or (trains is not None and kind not in trains)):
                    continue  # synthetic: only the types it was drawn for
                if key in timed and not self.pool_repeats:
                    continue  # the first network that timed it
                timed[key].append(ms)
        for (kind, key_row), times in timed.items():
            row = list(key_row)
            rows[kind].append(_with_alignment(kind, row) if self.aligned else row)
            targets[kind].append(math.log(max(statistics.median(times), 1e-4) / _cost(kind, row)))
        self.forests, self.fallback = {}, {}
        self.linear_rows_seen = max((row[0] for row in rows.get("linear", [])), default=0.0)
        for kind in rows:
            self.fallback[kind] = statistics.median(targets[kind])
            if len(rows[kind]) >= 5:
                self.forests[kind] = _forest(rows[kind], targets[kind], seed)
        self.excluded_families = tuple(sorted(exclude_families))
        # dispatch overhead: network time minus its kernels' in-network times, per kernel and per network;
        # non-negative least squares (scipy, which scikit-learn brings): a negative intercept fitted on a
        # few noisy networks once predicted a small network at -5.9 ms
        import numpy as np
        from scipy.optimize import lsq_linear, nnls

        self.kind_scale = {}
        kept = [s for s in kept if s.origin != "synthetic"] or kept  # whole networks as the zoo builds them
        if kind_scales:
            kinds = sorted({kind for s in kept for kind, _, _ in s.kernels})
            design = np.array(
                [
                    [sum(ms for k, _, ms in s.kernels if k == kind) for kind in kinds] + [len(s.kernels), 1.0]
                    for s in kept
                ]
            )
            # the profiler's cost per kernel cannot exceed the fastest profiled kernel's whole time
            fastest = min((ms for s in kept for _, _, ms in s.kernels), default=0.0)
            lower = [0.5] * len(kinds) + [-fastest if self.profiler_cost else 0.0, 0.0]
            upper = [1.5] * len(kinds) + [np.inf, np.inf]
            # relative errors matter (a 2 ms and a 2 s network alike): rows weighted by 1 / network time
            weights = np.array([1.0 / max(s.network_ms, 1e-3) for s in kept])
            targets_ms = np.array([s.network_ms for s in kept])
            solution = lsq_linear(design * weights[:, None], targets_ms * weights, bounds=(lower, upper)).x
            self.kind_scale = {kind: float(v) for kind, v in zip(kinds, solution)}
            self.overhead_ms = (float(solution[-2]), float(solution[-1]))
            return self
        counts = np.array([[len(s.kernels), 1.0] for s in kept])
        gaps = np.array([s.network_ms - s.kernel_sum_ms for s in kept])
        solution, _ = nnls(counts, gaps)
        self.overhead_ms = (float(solution[0]), float(solution[1]))
        return self

    def choose_fit(self, seed: int = 0) -> KernelPredictor:
        """Choose the fit options by leave-one-family-out cross-validation on this predictor's own networks
        (:func:`.predictor_fit.choose_fit`), keep the choice in :attr:`fit_choice` and refit with it."""
        return self.with_fit_choice(choose_fit(self)).fit(seed=seed)

    def with_fit_choice(self, choice: FitChoice) -> KernelPredictor:
        """Set ``choice``'s options (not fitted)."""
        self.fit_choice = choice
        for key, value in choice.options.items():
            setattr(self, key, value)
        return self

    def predict_kernels(self, kernels: Sequence[tuple[str, Sequence[float]]]) -> list[float]:
        """Milliseconds of each ``(kernel type, features)``."""
        kernels = [self._route(kind, row) for kind, row in kernels]
        by_kind: dict[str, list[int]] = defaultdict(list)
        for index, (kind, _) in enumerate(kernels):
            by_kind[kind].append(index)
        predicted = [0.0] * len(kernels)
        for kind, indices in by_kind.items():
            rows = [list(kernels[i][1]) for i in indices]
            forest = self.forests.get(kind)
            if forest is not None:
                logs = forest.predict([_with_alignment(kind, row) for row in rows] if self.aligned else rows)
            else:
                logs = [self.fallback.get(kind, self._default_log())] * len(rows)
            scale = self.kind_scale.get(kind, 1.0)
            for index, row, log_rate in zip(indices, rows, logs):
                predicted[index] = scale * math.exp(float(log_rate)) * _cost(kind, row)
        return predicted

    def _default_log(self) -> float:
        return statistics.median(self.fallback.values()) if self.fallback else 0.0

    @property
    def aligned(self) -> bool:
        return self.runtime == "eager" if self.alignment is None else self.alignment

    @property
    def runtime(self) -> str:
        return str(self.fingerprint.get("runtime", "eager"))

    def predict_ms(self, model: nn.Module, input_shape: Sequence[int] = (1, 3, 224, 224)) -> float:
        """Predicted milliseconds of one forward of ``model`` on ``input_shape``: eager reads a meta trace
        (meta or real weights); ONNX Runtime exports the model and reads one profiled call's kernels."""
        if self.runtime == "onnxruntime":
            from vision_backbones.measure.onnx_kernels import trace

            return self._totals([trace(model, input_shape, int(self.fingerprint.get("threads", 1)))])[0]
        ops = trace_ops(model, input_shape)
        return self.predict_ops(ops)

    def predict_ops(self, ops: Sequence[Op]) -> float:
        return self.predict_many([ops])[0]

    def predict_many(self, traces: Sequence[Sequence[Op]]) -> list[float]:
        """``predict_ops`` of several networks, their kernels sent through each forest in one call (eager)."""
        if self.runtime != "eager":
            raise ValueError(
                f"meta traces are eager PyTorch's kernels; this predictor is {self.runtime!r}'s: expected predict_ms"
            )
        return self._totals([[(kernel_type(op), features(op)) for op in ops] for ops in traces])

    def predict_sample(self, sample: NetworkSample) -> float:
        return self._totals([[(kind, row) for kind, row, _ in sample.kernels]])[0]

    def _totals(self, networks: Sequence[Sequence[tuple[str, Sequence[float]]]]) -> list[float]:
        """Each network's kernels predicted and summed, plus the per-kernel and per-network overhead."""
        if not self.forests and not self.fallback:
            raise ValueError("the predictor is not fitted; call fit() or load it with load_or_build()")
        flat = iter(self.predict_kernels([kernel for kernels in networks for kernel in kernels]))
        per_kernel, per_network = self.overhead_ms
        return [sum(next(flat) for _ in kernels) + per_kernel * len(kernels) + per_network for kernels in networks]

    def predict_kernel_lists(self, networks: Sequence[Sequence[tuple[str, Sequence[float]]]]) -> list[float]:
        """Each network given as its ``(kernel type, features)`` list (any runtime's), predicted."""
        return self._totals(networks)

    # ------------------------------------------------------------- cache
    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "fusion": self.fusion,
            "build_seconds": self.build_seconds,
            "ruler_ms": self.ruler_ms,
            **({} if self.fit_choice is None else {"fit_choice": self.fit_choice.to_json()}),
            "samples": [
                {
                    "label": s.label,
                    "family": s.family,
                    "origin": s.origin,
                    "network_ms": s.network_ms,
                    "kernels": [[kind, row, ms] for kind, row, ms in s.kernels],
                    **({} if s.ruler_slowdown is None else {"ruler_slowdown": s.ruler_slowdown, "tries": s.tries}),
                }
                for s in self.samples
            ],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(self.to_json()).encode())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], expected: dict[str, Any]) -> KernelPredictor:
        """The predictor cached in ``path``; a cache of another machine, library version or runtime is a
        one-line ``ValueError`` saying what differs (the caller rebuilds)."""
        try:
            stored = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(
                f"latency predictor cache {str(path)!r} cannot be read ({error}); expected a file this library wrote"
            ) from None
        recorded = stored.get("fingerprint", {}) if isinstance(stored, dict) else {}
        differing = sorted(k for k in set(expected) | set(recorded) if expected.get(k) != recorded.get(k))
        if differing:
            details = ", ".join(f"{k} {recorded.get(k)!r} (here {expected.get(k)!r})" for k in differing)
            raise ValueError(f"latency predictor cache {str(path)!r} was built with {details}; expected this machine's")
        samples = [
            NetworkSample(
                s["label"],
                s["family"],
                [(k, list(r), float(ms)) for k, r, ms in s["kernels"]],
                float(s["network_ms"]),
                s["origin"],
                float(s["ruler_slowdown"]) if s.get("ruler_slowdown") is not None else None,
                int(s.get("tries", 1)),
            )
            for s in stored["samples"]
        ]
        ruler_ms = stored.get("ruler_ms")
        loaded = cls(
            expected,
            samples,
            stored.get("fusion", {}),
            float(stored.get("build_seconds", 0.0)),
            ruler_ms=float(ruler_ms) if ruler_ms is not None else None,
        )
        choice = None if stored.get("fit_choice") is None else FitChoice.from_json(stored["fit_choice"])
        if choice is not None and choice.rule == FIT_RULE:  # one made by an older rule is made again
            loaded.with_fit_choice(choice)
        return loaded
