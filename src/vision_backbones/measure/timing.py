"""Timing: repeated calls after a warm-up, interleaved A/B rounds, and their medians and spreads.

Wall clock (``time.perf_counter``) unless asked otherwise: :func:`time_calls` takes ``clock="cpu"``
and :func:`interleaved_times` also records the CPU time of this process (``time.process_time``),
which with one thread is the work done and far less sensitive to other processes on a shared machine.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles (the IQR is ``q3 - q1``), min and max of ``values``."""
    if not values:
        raise ValueError("no values to summarize")
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median": statistics.median(ordered),
        "q1": q1,
        "q3": q3,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_calls(
    function: Callable[[], object], *, repeats: int, warmup: int, clock: str = "wall", threads: int | None = None
) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``function`` after ``warmup`` untimed calls.

    ``clock="cpu"`` times this process's CPU time instead of wall time: with one thread it is the
    work done, and other processes on a shared machine barely change it. ``threads``: PyTorch's
    intra-op threads while timing (``None`` leaves the setting as it is).
    """
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    now = CLOCKS[clock]
    times = []
    with num_threads(threads):
        for _ in range(warmup):
            function()
        for _ in range(repeats):
            start = now()
            function()
            times.append(1e3 * (now() - start))
    return times


def call_seconds(function: Callable[[], object], inner: int = 1) -> tuple[float, float]:
    """``(wall seconds, CPU seconds of this process)`` per call, averaged over ``inner`` calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(inner):
        function()
    return (time.perf_counter() - wall) / inner, (time.process_time() - cpu) / inner


def interleaved_times(
    functions: dict[str, Callable[[], object]],
    *,
    rounds: int,
    warmup: int = 1,
    min_time: float = 0.05,
    max_inner: int = 50,
) -> dict[str, Any]:
    """Time each function once per round, rotating their order every round.

    Drifting machine load then hits every function alike. Returns ``{"wall": {key: [s per round]},
    "cpu": {...}, "inner": n}``; ``inner`` calls make one measurement, chosen from the warm-up (at
    least one untimed call each) so that one measurement takes about ``min_time``.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    slowest = 0.0
    for function in functions.values():
        for _ in range(max(1, warmup)):
            wall, _ = call_seconds(function)
        slowest = max(slowest, wall)
    inner = max(1, min(max_inner, math.ceil(min_time / max(slowest, 1e-9))))
    keys = list(functions)
    walls: dict[str, list[float]] = {k: [] for k in keys}
    cpus: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        order = keys[r % len(keys) :] + keys[: r % len(keys)]
        for key in order:
            wall, cpu = call_seconds(functions[key], inner)
            walls[key].append(wall)
            cpus[key].append(cpu)
    return {"wall": walls, "cpu": cpus, "inner": inner}


def ratio_summary(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, float]:
    """Per-round ratios ``numerator[i] / denominator[i]`` summarized (median, quartiles, min, max)."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"need equal, non-empty round lists, got {len(numerator)} and {len(denominator)}")
    return summarize([a / b for a, b in zip(numerator, denominator)])


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads (``None``: leave PyTorch's setting), then restore it."""
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
