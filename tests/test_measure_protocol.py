"""The measuring protocol: the ruler cancels a machine that slows down, fixed malloc thresholds stop
page faults that depend on the process's history."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
import torch

from vision_backbones.measure.allocator import fix_thresholds
from vision_backbones.measure.ruler import Ruler, ruled_ms


def _busy(units: int) -> None:
    total = 0
    for i in range(units):
        total += i * i


class _Machine:
    """Every other pair of calls runs 3x slower: a neighbour that comes and goes."""

    def __init__(self) -> None:
        self.calls = 0

    def work(self, units: int) -> None:
        slow = (self.calls // 2) % 2 == 1
        self.calls += 1
        _busy(units * (3 if slow else 1))


def test_ruled_time_cancels_a_machine_that_slows_down() -> None:
    machine = _Machine()
    ruler = Ruler(lambda: machine.work(20_000), clock="cpu")
    ruler.reference_ms = min(ruler.time_ms() for _ in range(6))  # the ruler at the fast speed (every other pair)
    machine.calls = 0
    result = ruled_ms(lambda: machine.work(40_000), ruler, repeats=12, warmup=1)
    # each round's function and ruler ran at the same speed, so every ratio is about 2 (noise aside)
    assert result.ms == pytest.approx(2 * ruler.reference_ms, rel=0.35)  # twice the ruler's work, at the fast speed
    assert result.raw_ms > 1.4 * result.ms  # half the rounds ran 3x slower: the raw median mixes them in


def test_a_warm_ruler_times_each_call_right_after_an_untimed_call_of_itself() -> None:
    """What runs just before a timed call changes it (ONNX Runtime's small networks 15-20 %), so a warm
    ruler's rounds time the function only right after an untimed call of itself (ruler, f, timed f),
    where the alternating order times it after the ruler in every other round."""
    for warm, pattern in ((True, ["ruler", "f", "f"] * 4), (False, ["f", "ruler", "ruler", "f"] * 2)):
        events: list[str] = []
        ruler = Ruler(lambda: events.append("ruler"), reference_ms=1.0, warm=warm)
        ruler.time_ms = lambda: events.append("ruler") or 1.0  # type: ignore[method-assign]
        ruled_ms(lambda: events.append("f"), ruler, repeats=4, warmup=1)
        assert events[:2] == ["f", "ruler"] and events[2:] == pattern  # after the warm-up pair


class _BusyThenQuiet:
    """The first ``slow_calls`` calls run 3x slower: a neighbour that leaves."""

    def __init__(self, slow_calls: int) -> None:
        self.calls, self.slow_calls = 0, slow_calls

    def work(self, units: int) -> None:
        self.calls += 1
        _busy(units * (3 if self.calls <= self.slow_calls else 1))


@pytest.mark.parametrize("slow_calls", [10, 1_000])
def test_quiet_gate_measures_again_until_the_ruler_runs_near_its_reference(slow_calls: int) -> None:
    machine = _BusyThenQuiet(slow_calls=0)
    ruler = Ruler(lambda: machine.work(20_000), clock="cpu")
    ruler.reference_ms = min(ruler.time_ms() for _ in range(4))
    # one try is 10 calls (a warm-up pair, then 4 rounds of function and ruler): slow_calls=10 makes the
    # first try slow and the second quiet; 1,000 keeps the machine busy for every try
    machine.calls, machine.slow_calls = 0, slow_calls
    gated = ruled_ms(lambda: machine.work(20_000), ruler, repeats=4, max_slowdown=0.5, tries=3, pause_s=0.0)
    if slow_calls == 10:
        assert (gated.tries, gated.quiet) == (2, True)
        assert gated.ruler_ms < 1.5 * ruler.reference_ms
    else:
        assert (gated.tries, gated.quiet) == (3, False)  # every try spent, the fastest kept and marked
        assert gated.ruler_ms > 2 * ruler.reference_ms
    machine.calls = 0
    ungated = ruled_ms(lambda: machine.work(20_000), ruler, repeats=4, tries=3, pause_s=0.0)
    assert (ungated.tries, ungated.quiet) == (1, True) and ungated.ruler_ms > 2 * ruler.reference_ms
    with pytest.raises(ValueError, match=r"max_slowdown must be a finite number >= 0, got -0\.1"):
        ruled_ms(lambda: None, ruler, repeats=1, max_slowdown=-0.1)


def test_network_ruler_leaves_the_global_seed_alone_and_checks_its_reference() -> None:
    state = torch.get_rng_state()
    ruler = Ruler.network(image_size=64)
    assert torch.equal(state, torch.get_rng_state())
    assert ruler.calibrate(calls=2, warmup=1) > 0 and ruler.reference_ms is not None
    with pytest.raises(ValueError, match="reference_ms must be a positive number of milliseconds, got -1"):
        Ruler(lambda: None, reference_ms=-1)
    with pytest.raises(ValueError, match="clock"):
        Ruler(lambda: None, clock="gpu")
    with pytest.raises(ValueError, match="repeats"):
        ruled_ms(lambda: None, ruler, repeats=0)


_FAULTS = textwrap.dedent(
    """
    import resource, statistics, sys, torch
    from vision_backbones.measure.allocator import fix_thresholds
    if sys.argv[1] == "fixed":
        assert fix_thresholds()
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    def step():  # three 8 MiB activations alive at once, then freed: glibc trims 24 MiB of free heap top
        a, b, c = torch.ones(2 << 20), torch.ones(2 << 20), torch.ones(2 << 20)
        return float(a[0] + b[0] + c[0])
    for _ in range(3):
        step()
    counts = []
    for _ in range(9):
        before = faults()
        step()
        counts.append(faults() - before)
    print(int(statistics.median(counts)))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_fixed_thresholds_stop_the_page_faults_of_repeated_activations() -> None:
    # with glibc's dynamic thresholds the median step re-faults 2,048-6,144 pages in about 3 runs of 4
    # (it depends on the process's layout); with fixed thresholds it was 0 in every run
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _FAULTS, "fixed"], capture_output=True, text=True, check=True)
        assert int(done.stdout.strip().splitlines()[-1]) == 0


def test_fix_thresholds_names_a_bad_value() -> None:
    with pytest.raises(ValueError, match="mmap_threshold must be a positive number of bytes, got 0"):
        fix_thresholds(mmap_threshold=0)


def test_netadapt_and_the_picker_measure_through_the_quiet_gate(monkeypatch, tmp_path) -> None:
    from types import SimpleNamespace

    from vision_backbones.budget.calibrated_latency import LatencyModel
    from vision_backbones.budget.pick import PickSettings, ruled_latency
    from vision_backbones.measure import ruler as ruler_module

    record = tmp_path / "gates.txt"  # a file: NetAdapt measures in a forked copy of this process
    real = ruler_module.ruled_ms

    def recording(function, ruler, **kwargs):
        with record.open("a") as gates:
            gates.write(f"{kwargs.get('max_slowdown')}\n")
        return real(function, ruler, **kwargs)

    monkeypatch.setattr(ruler_module, "ruled_ms", recording)
    latency = LatencyModel("resnet18", 32, 1, 1, None, "cpu")
    latency.measure({"widths": (8, 8, 8, 8)})
    if latency.young is not None:
        latency.young.close()
    predictor = SimpleNamespace(fingerprint={"clock": "cpu"}, ruler_ms=30.0)
    ruled_latency(lambda: None, PickSettings(threads=1, rounds=1), predictor)
    assert record.read_text().split() == [str(ruler_module.QUIET_GATE)] * 2


def test_a_predictor_profile_is_taken_again_until_its_ruler_rounds_are_quiet() -> None:
    from torch import nn

    from vision_backbones.measure.predictor import pinned, sample_network

    machine = _BusyThenQuiet(slow_calls=0)
    ruler = Ruler(lambda: machine.work(20_000), clock="cpu")
    quiet = min(ruler.time_ms() for _ in range(4))
    # back-to-back calls run faster than the ruler does between a measurement's calls: the gate compares a
    # profile with the ruler's quiet speed in this process (quiet_ms), not with the reference
    ruler.reference_ms = 0.6 * quiet
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())

    def profile(**gate: float) -> Any:
        # one thread, as the predictor measures: with more, OpenMP's workers spin on after the model's convs
        # and their CPU time lands in the ruler's next call (the process clock counts every thread)
        with pinned(1):
            return sample_network("net", "toy", model, (1, 3, 16, 16), "zoo", repeats=3, ruler=ruler, tries=3, **gate)

    for _ in range(4):  # the process's history: 12 quiet rounds (the ruler runs once per profiled round)
        assert profile().tries == 1
    assert ruler.quiet_ms() > 1.4 * ruler.reference_ms
    machine.calls, machine.slow_calls = 0, 3  # the next profile's 3 rounds run slow
    kept = profile(max_slowdown=0.5)
    assert kept.tries == 2 and kept.ruler_slowdown is not None and kept.ruler_slowdown <= 0.5
    assert min(ruler.round_ms[-6:-3]) > 2 * max(ruler.round_ms[-3:])
    machine.calls, machine.slow_calls = 0, 1_000  # busy throughout: every try spent, the quietest kept
    busy = profile(max_slowdown=0.5)
    assert busy.tries == 3 and busy.ruler_slowdown is not None and busy.ruler_slowdown > 1.0
    machine.calls, machine.slow_calls = 0, 3  # ungated: the first, busy profile is kept
    ungated = profile()
    assert ungated.tries == 1 and ungated.ruler_slowdown is not None and ungated.ruler_slowdown > 1.0
