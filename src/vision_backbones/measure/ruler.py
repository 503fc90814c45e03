"""A ruler: a fixed network timed beside every measurement, so a slow patch of a shared machine cancels.

On a shared virtual machine the same forward pass swings by 30-50 % between processes and within one
process over a few seconds (another tenant's load; ``benchmarks/latency_predictor/noise.md``), while
its ratio to another network timed in the same rounds stays within a few percent. A ruled measurement
times the function and the ruler alternately, takes the median of the per-round ratios and multiplies
it by the ruler's *reference* time: the milliseconds the function takes when the machine runs the
ruler at its reference speed. The reference is the ruler's fastest call in a calibration (the quiet
machine); a latency predictor stores the reference it was built with, and measurements compared with
its predictions are ruled by the same reference.

Ruling cancels a slow patch only to first order: on this AMD EPYC host the depthwise networks slowed
about 1.5x as much as the (compute-bound) ruler did and ONNX Runtime's networks less
(``benchmarks/latency_predictor/amd_epyc/ruler_residual.md``). A *quiet gate* (``max_slowdown``) keeps
a measurement only when the ruler ran within that share of its quiet speed in this process
(:meth:`Ruler.quiet_ms`: the lower quartile of its recent rounds) in the measurement's rounds, and
otherwise waits and measures again, so the residual never grows past what the gate allows.

What runs just before a timed call matters too. ONNX Runtime's small networks run 15-20 % faster right
after a call of themselves than right after the ruler (whose weights flush the caches): on the Intel Xeon
shufflenet_v2_x0_5 took 1.85 ms warm and 2.23 ms after the ruler, mobilenet_v3_small 1.94 and 2.34,
resnet50 48.1 both ways; eager PyTorch moved 2-6 %. A rounds' median that mixes both (the alternating
order) lands on either, so a ruler is *warm* (:attr:`Ruler.warm`): each timed call follows an untimed call of
the same function, the steady state a deployed network sees when it runs back to back. ONNX Runtime's since
stop 33; eager PyTorch's since stop 36, when the alternating order read 14 eager networks a median 4.7 % slower
than warm timing in one young process (up to 8 % for MnasNet-space members, 0.7 % for resnet50:
``benchmarks/latency_predictor/intel_xeon/eager_order.md``), and the eager benchmark had read the registered
models a median 3 % slower than the build that profiled them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import torch

from vision_backbones.measure.timing import CLOCKS, time_calls
from vision_backbones.validate import check_choice, check_float, check_int

RULER_MODEL = "resnet18"  # convolutions, batch norms, ReLUs, adds, pooling: most of what the zoo runs
RULER_IMAGE_SIZE = 160  # about 25 ms on one thread of a 2.1 GHz Xeon: cheap beside each measurement
RULER_RUNTIMES = ("eager", "onnxruntime")  # what a ruler can run in: the runtime of what it rules
QUIET_GATE = 0.10  # the library's gate: the largest ruler slowdown a measurement is kept at (see ruled_ms)
QUIET_TRIES = 4  # measurements at most before the quietest one is kept
QUIET_HISTORY = 9  # ruler rounds a process times before the gate compares with its own quiet speed (quiet_ms)
QUIET_WINDOW = 200  # the last rounds that quiet speed is read from (a few minutes of measuring)
WARM_RUNTIMES = ("eager", "onnxruntime")  # whose measurements time each call right after an untimed one (Ruler.warm)
Measured = TypeVar("Measured")  # what one gated measurement returns (until_quiet)


@dataclass
class Ruler:
    """``call`` is the ruler's one unit of work; ``reference_ms`` its time on the quiet machine;
    ``warm``: a measurement ruled by it times each call of the function right after an untimed one (set
    for the runtimes in :data:`WARM_RUNTIMES`; see the module's notes); ``round_ms`` every time it took
    inside a measurement's rounds, in order (what the quiet gate reads)."""

    call: Callable[[], object]
    clock: str = "cpu"
    reference_ms: float | None = None
    warm: bool = False
    round_ms: list[float] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_choice("clock", self.clock, tuple(CLOCKS))
        if self.reference_ms is not None and not self.reference_ms > 0:
            raise ValueError(f"reference_ms must be a positive number of milliseconds, got {self.reference_ms!r}")

    @classmethod
    def network(
        cls,
        *,
        clock: str = "cpu",
        image_size: int = RULER_IMAGE_SIZE,
        reference_ms: float | None = None,
        runtime: str = "eager",
        threads: int = 1,
    ) -> Ruler:
        """The library's ruler: :data:`RULER_MODEL` with seed-0 weights, batch 1, ``image_size`` px, run by
        ``runtime``: eager PyTorch, or an ONNX Runtime session of ``threads`` intra-op threads.

        A ruler runs in the runtime of what it rules. Eager PyTorch slows as a process ages (its exports
        and model builds) while ONNX Runtime sessions, with their own arenas, age less: on an Intel Xeon the
        ONNX Runtime networks lost 3-4 % against the eager ruler over 36 exports and kept within about 1.5 %
        of an ONNX Runtime ruler (``benchmarks/latency_predictor/intel_xeon/ruler_drift.md``); ShuffleNets
        still lost 5-14 % over 80 exports, so measurements run in young forks (:mod:`.isolated`)."""
        from vision_backbones.registry import create_model

        check_int("image_size", image_size, min=32)
        check_choice("runtime", runtime, RULER_RUNTIMES)
        check_int("threads", threads, min=1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = create_model(RULER_MODEL).eval()
            example = torch.randn(1, 3, image_size, image_size)
        if runtime == "onnxruntime":
            from vision_backbones.measure import onnx_kernels

            session = onnx_kernels.session(onnx_kernels.export(model, tuple(example.shape)), threads)
            feed = {session.get_inputs()[0].name: example.numpy()}
            return cls(lambda: session.run(None, feed), clock, reference_ms, warm=runtime in WARM_RUNTIMES)

        def forward() -> object:
            with torch.no_grad():
                return model(example)

        return cls(forward, clock, reference_ms, warm=runtime in WARM_RUNTIMES)

    @classmethod
    def of(cls, predictor: object) -> Ruler:
        """The ruler a latency predictor's timings were ruled by: its runtime, thread count and clock (from
        its fingerprint), scaled to its stored reference."""
        stamp: dict[str, Any] = getattr(predictor, "fingerprint", {})
        return cls.network(
            clock=stamp.get("clock", "cpu"),
            reference_ms=getattr(predictor, "ruler_ms", None),
            runtime=stamp.get("runtime", "eager"),
            threads=stamp.get("threads", 1),
        )

    def time_ms(self) -> float:
        now = CLOCKS[self.clock]
        start = now()
        self.call()
        return 1e3 * (now() - start)

    def calibrate(self, calls: int = 15, warmup: int = 2) -> float:
        """Set (and return) the reference: the fastest of ``calls`` timed calls after ``warmup``."""
        check_int("calls", calls, min=1)
        for _ in range(warmup):
            self.call()
        self.reference_ms = min(self.time_ms() for _ in range(calls))
        return self.reference_ms

    def reference(self, calls: int = 15) -> float:
        """The reference in milliseconds, calibrated first (``calls`` timed calls) when none is set."""
        return self.reference_ms if self.reference_ms is not None else self.calibrate(calls)

    def round_scale(self) -> float:
        """One timed call of the ruler as the factor a round's times are multiplied by: the reference
        over this call's time (above 1 when the machine runs slow now)."""
        elapsed = self.time_ms()
        self.round_ms.append(elapsed)
        return self.reference() / max(elapsed, 1e-6)

    def quiet_ms(self, rounds: int | None = None) -> float:
        """The quiet gate's baseline: the ruler's quiet speed *inside this process's recent measurements*,
        the lower quartile of the last :data:`QUIET_WINDOW` of its first ``rounds`` round times (all by
        default), never below the reference; the reference until :data:`QUIET_HISTORY` rounds were timed.

        Not the reference itself: the reference is the fastest of back-to-back calls, and between a
        measurement's calls the ruler reads slower on a quiet machine, by an amount that grows with the
        process (Intel Xeon, stop 31: 23.2-24.5 ms back to back in a fresh process, 26-28.5 ms between
        the first ONNX Runtime profiles, 29-31 ms after 400 exported networks, load average below 1).
        A window, so that slow drift is followed while a slow patch of a few rows is still refused."""
        end = len(self.round_ms) if rounds is None else min(rounds, len(self.round_ms))
        if end < QUIET_HISTORY:
            return self.reference()
        return max(self.reference(), statistics.quantiles(self.round_ms[max(0, end - QUIET_WINDOW) : end], n=4)[0])

    def slowdown_since(self, mark: int) -> float:
        """How much slower than its quiet speed (:meth:`quiet_ms` before them) the ruler ran in the rounds
        after ``round_ms[:mark]``: their median's share above it (0.0 when no round was timed since)."""
        rounds = self.round_ms[mark:]
        return statistics.median(rounds) / self.quiet_ms(mark) - 1 if rounds else 0.0


@dataclass(frozen=True)
class RuledTime:
    """``ms``: the ruled milliseconds; ``raw_ms`` and ``ruler_ms``: the medians as timed; ``tries``: how
    many times it was measured (the quiet gate's retries); ``quiet``: whether the kept try met the gate
    (always true without one)."""

    ms: float
    raw_ms: float
    ruler_ms: float
    ratios: tuple[float, ...]
    tries: int = 1
    quiet: bool = True


def ruled_ms(
    function: Callable[[], object],
    ruler: Ruler,
    *,
    repeats: int,
    warmup: int = 1,
    max_slowdown: float | None = None,
    tries: int = 1,
    pause_s: float = 2.0,
) -> RuledTime:
    """``function`` and ``ruler`` timed alternately ``repeats`` times: the order flips every round, or with a
    warm ruler (:attr:`Ruler.warm`) each round times the ruler, calls the function untimed, then times it.

    ``max_slowdown`` (the quiet gate, e.g. 0.10): a measurement whose ruler median ran more than that
    share above the ruler's quiet speed (:meth:`Ruler.quiet_ms`) is taken again after ``pause_s`` seconds,
    up to ``tries`` times in all (:func:`until_quiet`); the quietest try is kept and says whether it met the
    gate."""
    check_int("repeats", repeats, min=1)
    check_int("warmup", warmup, min=0)
    check_int("tries", tries, min=1)
    check_float("pause_s", pause_s, min=0.0)
    if max_slowdown is not None:
        check_float("max_slowdown", max_slowdown, min=0.0)
    reference = ruler.reference()
    timed, attempt, _, quiet = until_quiet(
        lambda: _ruled_once(function, ruler, repeats, warmup, reference),
        ruler,
        max_slowdown=max_slowdown,
        tries=tries,
        pause_s=pause_s,
    )
    return replace(timed, tries=attempt, quiet=quiet)


def until_quiet(
    measure: Callable[[], Measured],
    ruler: Ruler,
    *,
    max_slowdown: float | None,
    tries: int,
    pause_s: float,
) -> tuple[Measured, int, float, bool]:
    """The quiet gate around one measurement: ``measure`` (which times ``ruler`` in its rounds) is run until
    its ruler rounds ran within ``max_slowdown`` of the ruler's quiet speed before them
    (:meth:`Ruler.slowdown_since`), up to ``tries`` times ``pause_s`` seconds apart; one try without a gate.
    Returns ``(the quietest try's result, tries made, its slowdown, whether it met the gate)``. Used by
    :func:`ruled_ms` and the predictor's profiles (``predictor.sample_network``)."""
    kept: tuple[Measured, float] | None = None
    for attempt in range(1, tries + 1):
        if attempt > 1:
            time.sleep(pause_s)
        mark = len(ruler.round_ms)
        result = measure()
        slowdown = ruler.slowdown_since(mark)
        if kept is None or slowdown < kept[1]:
            kept = (result, slowdown)
        if max_slowdown is None or slowdown <= max_slowdown:
            break
    assert kept is not None
    return kept[0], attempt, kept[1], max_slowdown is None or kept[1] <= max_slowdown


def gated_ms(function: Callable[[], object], ruler: Ruler, *, repeats: int, warmup: int = 1) -> RuledTime:
    """:func:`ruled_ms` through the library's quiet gate: :data:`QUIET_GATE`, up to :data:`QUIET_TRIES`
    tries a second apart (what NetAdapt's and the picker's measurements use)."""
    return ruled_ms(
        function, ruler, repeats=repeats, warmup=warmup, max_slowdown=QUIET_GATE, tries=QUIET_TRIES, pause_s=1.0
    )


def _ruled_once(function: Callable[[], object], ruler: Ruler, repeats: int, warmup: int, reference: float) -> RuledTime:
    now = CLOCKS[ruler.clock]
    for _ in range(warmup):
        function()
        ruler.call()
    raw: list[float] = []
    rules: list[float] = []
    for round_index in range(repeats):
        if ruler.warm:  # the timed call follows an untimed call of itself, not the ruler
            rules.append(ruler.time_ms())
            raw.append(time_calls(function, repeats=1, warmup=1, clock=ruler.clock)[0])
            continue
        if round_index % 2:
            rules.append(ruler.time_ms())
        start = now()
        function()
        raw.append(1e3 * (now() - start))
        if not round_index % 2:
            rules.append(ruler.time_ms())
    ruler.round_ms.extend(rules)
    ratios = tuple(f / r for f, r in zip(raw, rules))
    return RuledTime(statistics.median(ratios) * reference, statistics.median(raw), statistics.median(rules), ratios)
