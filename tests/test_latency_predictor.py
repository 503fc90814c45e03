"""The kernel-level latency predictor: its trace, its kernels, its forests, its cache and ``backbones pick`` on it."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from vision_backbones.measure.kernels import KERNEL_TYPES, features, kernel_type, replay, trace_ops
from vision_backbones.measure.predictor import KernelPredictor, NetworkSample, fingerprint, profile_network
from vision_backbones.measure.predictor_build import load_or_build
from vision_backbones.registry import build_on_meta, create_model


class _Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        y = y + self.dw(y)
        return self.fc(y.mean((2, 3)))


def test_trace_types_the_kernels_and_links_producers_to_consumers() -> None:
    ops = trace_ops(_Small(), (1, 3, 16, 16))
    kinds = [kernel_type(op) for op in ops]
    assert kinds == ["conv", "bn", "unary", "dwconv", "binary", "pool", "linear"]
    assert set(kinds) <= set(KERNEL_TYPES)
    conv, bn, relu, dw, add = ops[:5]
    assert bn.producers == (0,) and relu.producers == (1,)
    assert set(add.producers) == {2, 3}  # the residual add reads the relu and the depthwise conv
    assert sorted(relu.consumers) == [3, 4]
    # conv features: in 3, out 8, 16 x 16, 3 x 3, stride 1, MACs = 8 * 16 * 16 * 3 * 9
    row = features(conv)
    assert row[:5] == [3, 8, 16, 16, 3] and row[10] == 8 * 16 * 16 * 3 * 9
    assert len({len(features(op)) for op in ops if kernel_type(op) == "conv"}) == 1


def test_replay_runs_the_op_on_real_tensors_of_the_recorded_shapes() -> None:
    ops = trace_ops(_Small(), (2, 3, 16, 16))
    with torch.no_grad():
        outputs = [replay(op)() for op in ops]
    for op, out in zip(ops, outputs):
        first = out[0] if isinstance(out, tuple) else out
        assert tuple(first.shape) == op.output.shape


def test_trace_is_on_meta_and_matches_what_the_cpu_forward_runs() -> None:
    model = create_model("mnasnet0_5").eval()
    ops, op_ms, whole_ms = profile_network(model, (1, 3, 64, 64), repeats=2, warmup=1)
    assert len(ops) == len(op_ms) > 100 and all(ms >= 0 for ms in op_ms) and whole_ms > 0
    assert next(model.parameters()).device.type == "cpu"  # the trace used a meta copy
    assert [op.name for op in trace_ops(build_on_meta("mnasnet0_5"), (1, 3, 64, 64))] == [op.name for op in ops]


class _Logged(nn.Module):
    """A convolution that logs each forward on real data (not the meta trace's) in ``events``."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.conv, self.events = nn.Conv2d(3, 4, 3), events

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            self.events.append("f")
        return self.conv(x)


@pytest.mark.parametrize(("warm", "round_events"), [(True, ["ruler", "f", "f", "f"]), (False, ["f", "f", "ruler"])])
def test_a_warm_profile_times_kernels_and_whole_right_after_the_network_itself(
    warm: bool, round_events: list[str]
) -> None:
    """Eager networks, MobileNets most, run 3-6 % faster right after a call of themselves than after the
    ruler, and faster still after three calls, so with a warm ruler a round times the ruler, calls the network
    untimed, times it (the whole, as a warm ruled row is timed) and profiles it (its kernels warm)."""
    from vision_backbones.measure.ruler import Ruler

    events: list[str] = []
    ruler = Ruler(lambda: events.append("ruler"), reference_ms=1.0, warm=warm)
    with torch.no_grad():
        profile_network(_Logged(events), (1, 3, 8, 8), repeats=3, warmup=1, ruler=ruler)
    assert events[0] == "f" and events[1:] == round_events * 3  # after the warm-up call


def _synthetic(label: str, family: str, rng: random.Random) -> NetworkSample:
    """A network whose convs take 1 ms per 10 MMACs and whose other kernels take 0.01 ms."""
    kernels = []
    for _ in range(20):
        c, o, h = rng.choice((16, 32, 64)), rng.choice((16, 32, 64)), rng.choice((8, 16, 32))
        macs = c * o * h * h * 9
        row = [c, o, h, h, 3, 3, 1, 1, 1, 1, macs, c * h * h, o * h * h, o * c * 9, 0.0]
        kernels.append(("conv", [float(v) for v in row], macs / 1e7))
        kernels.append(("unary", [float(o * h * h), 1.0] + [0.0] * 18, 0.01))
    total = sum(ms for _, _, ms in kernels)
    return NetworkSample(label, family, kernels, total + 0.002 * len(kernels))


def test_forests_learn_kernel_latency_and_the_overhead_per_kernel() -> None:
    rng = random.Random(0)
    predictor = KernelPredictor(fingerprint())
    predictor.samples = [_synthetic(f"n{i}", f"f{i % 4}", rng) for i in range(40)]
    unseen = _synthetic("new", "f9", random.Random(1))
    # without per-type scales the overhead is identifiable (here every unary kernel costs the same
    # 0.01 ms, so a unary scale and the per-kernel overhead would trade off against each other)
    predictor.fit(kind_scales=False)
    assert predictor.overhead_ms[0] == pytest.approx(0.002, abs=5e-4)
    assert predictor.predict_sample(unseen) == pytest.approx(unseen.network_ms, rel=0.05)
    predictor.fit()
    assert predictor.predict_sample(unseen) == pytest.approx(unseen.network_ms, rel=0.05)
    # leaving families out changes what the forests saw
    assert predictor.fit(exclude_families=["f0"]).excluded_families == ("f0",)
    with pytest.raises(ValueError, match="no samples left"):
        predictor.fit(exclude_families=["f0", "f1", "f2", "f3"])


def test_kind_scales_learn_how_far_in_network_kernel_times_overstate_a_type() -> None:
    """Convs timed inside the profiled forward read 25 % above what they cost in the plain forward: the
    whole-network times say so, and only the fit with per-type scales hears it."""
    rng = random.Random(0)
    samples = [_synthetic(f"n{i}", f"f{i % 4}", rng) for i in range(40)]
    for sample in samples:  # the plain forward: convs at 0.8 of their profiled time, the rest as profiled
        sample.network_ms = sum((0.8 if kind == "conv" else 1.0) * ms for kind, _, ms in sample.kernels)
    predictor = KernelPredictor(fingerprint())
    predictor.samples = samples
    unseen = _synthetic("new", "f9", random.Random(1))
    truth = sum((0.8 if kind == "conv" else 1.0) * ms for kind, _, ms in unseen.kernels)
    assert predictor.fit(kind_scales=False).predict_sample(unseen) > 1.1 * truth  # an overhead cannot take time away
    scaled = predictor.fit(kind_scales=True)
    assert scaled.kind_scale["conv"] == pytest.approx(0.8, abs=0.03)
    assert scaled.predict_sample(unseen) == pytest.approx(truth, rel=0.05)
    assert predictor.fit(kind_scales=False).kind_scale == {}  # refitting without them forgets them


def _profiled(
    label: str, family: str, rng: random.Random, kernels: int, convs: float = 0.3, largest: float = 6.0
) -> NetworkSample:
    """A network of ``kernels`` convs and element-wise kernels of widely spread sizes, each profiled
    kernel reading 0.004 ms above what it costs in the plain forward (the profiler's own cost per kernel);
    ``convs``: the share of convs, ``largest``: log10 of the largest element-wise kernel's size."""
    listed, truth = [], 0.0
    for _ in range(kernels):
        if rng.random() < convs:
            c, o, h = rng.choice((16, 32, 64)), rng.choice((16, 32, 64)), rng.choice((8, 16, 32))
            macs = c * o * h * h * 9
            row = [c, o, h, h, 3, 3, 1, 1, 1, 1, macs, c * h * h, o * h * h, o * c * 9, 0.0]
            kind, features_, ms = "conv", [float(v) for v in row], macs / 1e7
        else:
            size = 10 ** rng.uniform(3, largest)
            kind, features_, ms = "unary", [size, 1.0] + [0.0] * 18, size / 2e6
        listed.append((kind, features_, ms + 0.004))
        truth += ms
    return NetworkSample(label, family, listed, truth)


def test_the_profilers_cost_per_kernel_is_subtracted_where_the_fit_allows_it() -> None:
    """ONNX Runtime's profiler adds a fixed cost to every kernel it times, so a network of many small
    kernels sums well above its whole time; a proportional per-type scale cannot take a fixed cost away,
    a negative per-kernel overhead can (``profiler_cost``: an option cross-validation chose against)."""
    rng = random.Random(0)
    predictor = KernelPredictor(fingerprint())
    predictor.samples = [_profiled(f"n{i}", f"f{i % 4}", rng, rng.randint(10, 120)) for i in range(60)]
    unseen = _profiled("many small", "f9", random.Random(1), 150, convs=0.0, largest=4.5)
    assert not predictor.profiler_cost  # the default
    kept = predictor.fit()
    assert kept.overhead_ms[0] >= 0.0 and kept.predict_sample(unseen) > 1.1 * unseen.network_ms
    predictor.profiler_cost = True
    subtracted = predictor.fit()
    assert subtracted.overhead_ms[0] == pytest.approx(-0.004, abs=1e-3)
    assert subtracted.predict_sample(unseen) == pytest.approx(unseen.network_ms, rel=0.05)


def test_wide_matmuls_are_predicted_as_the_one_by_one_convs_they_compute() -> None:
    """ConvNeXt's pointwise MLPs are ``linear`` kernels of 3,136 rows; the linear forest only ever saw
    classifier heads of one row. Routed to the conv forest, they read as a 1x1 conv on a 56x56 map."""
    from vision_backbones.measure.predictor import as_conv

    kind, row = as_conv("linear", [3136.0, 96.0, 384.0, 3136.0 * 96 * 384, 3136.0 * 384])
    assert kind == "conv" and row[:4] == [96.0, 384.0, 56.0, 56.0] and row[10] == 3136 * 96 * 384
    head = [1.0, 768.0, 1000.0, 768000.0, 1000.0]
    assert as_conv("linear", head) == ("linear", head)  # a classifier head stays a linear kernel
    assert as_conv("conv", [1.0] * 15) == ("conv", [1.0] * 15)
    traced = trace_ops(build_on_meta("convnext_tiny"), (1, 3, 64, 64))
    wide = [features(op) for op in traced if kernel_type(op) == "linear" and features(op)[0] >= 64]
    assert wide and all(as_conv("linear", row)[0] == "conv" for row in wide)
    predictor = KernelPredictor(fingerprint())
    assert predictor._route("linear", wide[0])[0] == "conv"  # wider than any linear the forest saw
    predictor.linear_rows_seen = 10_000.0  # a fit that saw such matmuls predicts them as its own
    assert predictor._route("linear", wide[0])[0] == "linear"


def test_overhead_is_never_negative_so_no_network_is_predicted_below_zero() -> None:
    """Networks whose whole time is below their kernels' sum (profiling adds time) by a fixed 5 ms: an
    ordinary least-squares intercept of -5 ms would predict a network of a few small kernels below zero."""
    rng = random.Random(0)
    predictor = KernelPredictor(fingerprint())
    samples = [_synthetic(f"n{i}", f"f{i % 4}", rng) for i in range(40)]
    for sample in samples:
        sample.network_ms = sample.kernel_sum_ms - 5.0
    predictor.samples = samples
    predictor.fit()
    assert min(predictor.overhead_ms) >= 0.0
    tiny = NetworkSample("tiny", "f9", [("unary", [64.0, 1.0] + [0.0] * 18, 0.01)] * 3, 0.03)
    assert predictor.predict_sample(tiny) > 0


def test_unknown_runtime_is_one_line() -> None:
    with pytest.raises(ValueError, match="runtime must be one of"):
        fingerprint("tflite")


def _tiny_build(cache: Path, synthetic: int = 0) -> KernelPredictor:
    return load_or_build(
        cache,
        models=["mobilenet_v3_small", "mnasnet0_5"],
        per_space=0,
        budget_s=0,
        image_size=64,
        synthetic=synthetic,
    )


def test_synthetic_networks_hold_the_kernel_types_few_families_have() -> None:
    from vision_backbones.measure.synthetic import PRIOR, synthetic_labels, synthetic_networks

    networks = list(synthetic_networks(3, seed=0))
    assert [label for label, *_ in networks] == synthetic_labels(3, seed=0)
    skipped = list(synthetic_networks(3, seed=0, skip={networks[0][0]}))  # skipping one changes none of the others
    assert [n[0] for n in skipped] == [n[0] for n in networks[1:]]
    assert all(str(a[2]) == str(b[2]) and a[3] == b[3] for a, b in zip(skipped, networks[1:]))
    assert [label for label, *_ in networks][:2] == [f"synthetic:gconv#p{PRIOR}.0.0", f"synthetic:gconv#p{PRIOR}.0.1"]
    assert [label for label, *_ in synthetic_networks(3, seed=0)] == [label for label, *_ in networks]
    kinds = {family: {kernel_type(op) for op in trace_ops(model, shape)} for _, family, model, shape in networks}
    assert {"gconv", "bn", "unary"} <= kinds["synthetic:gconv"] and "dwconv" not in kinds["synthetic:gconv"]
    assert {"linear", "ln", "binary"} <= kinds["synthetic:mlp"]
    wide = [
        features(op)[0]
        for _, family, model, shape in networks
        if family == "synthetic:mlp"
        for op in trace_ops(model, shape)
        if kernel_type(op) == "linear"
    ]
    assert min(wide) >= 49  # matrix products over a whole map, not one-row heads


def test_a_held_out_familys_kernels_are_not_seen_through_a_synthetic_network() -> None:
    """A synthetic kernel equal to one of the held-out family's is dropped with the family: the
    held-out prediction then cannot read that kernel's time, here a tell-tale 500 ms (the conv costs
    0.13 ms)."""
    rng = random.Random(0)
    predictor = KernelPredictor(fingerprint())
    samples = [_synthetic(f"n{i}", f"f{i % 4}", rng) for i in range(40)]
    kind, row = (
        "conv",
        [48.0, 48.0, 8.0, 8.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0, 48 * 48 * 64 * 9, 3072.0, 3072.0, 20736.0, 0.0],
    )
    samples[0].kernels.append((kind, row, 48 * 48 * 64 * 9 / 1e7))  # a kernel only family f0 has
    leak = NetworkSample("synthetic:conv#0", "synthetic:conv", [(kind, row, 500.0)], 500.0, "synthetic")
    predictor.samples = [leak, *samples]  # first, so the forest learns its time, not f0's copy of it
    probe = NetworkSample("probe", "f0", [(kind, row, 0.0)], 0.0)
    assert predictor.fit(exclude_families=["f1"], kind_scales=False).predict_sample(probe) > 10.0  # seen
    assert predictor.fit(exclude_families=["f0"], kind_scales=False).predict_sample(probe) < 5.0


def test_a_cache_without_synthetic_networks_gets_them_added_not_rebuilt(tmp_path: Path) -> None:
    from vision_backbones.measure.synthetic import synthetic_labels

    cache = tmp_path / "kernels.json"
    built = _tiny_build(cache)
    grown = _tiny_build(cache, synthetic=1)
    labels = [s.label for s in grown.samples]
    assert labels == ["mobilenet_v3_small", "mnasnet0_5", *synthetic_labels(1)]
    assert [s.network_ms for s in grown.samples[:2]] == [s.network_ms for s in built.samples]  # measured once
    assert grown.ruler_ms == built.ruler_ms and grown.build_seconds > built.build_seconds
    assert {s.origin for s in grown.samples[2:]} == {"synthetic"}
    assert [s.label for s in _tiny_build(cache, synthetic=1).samples] == labels  # saved: not added twice
    stored = json.loads(cache.read_text())  # a network of an older prior is stale: dropped, today's profiled
    stored["samples"][2]["label"] = "synthetic:gconv#p0.0.0"
    stored["samples"][2]["network_ms"] = -1.0
    cache.write_text(json.dumps(stored))
    again = _tiny_build(cache, synthetic=1)
    assert sorted(s.label for s in again.samples) == sorted(labels)
    assert all(s.network_ms > 0 for s in again.samples)


def test_cache_of_another_machine_is_refused_and_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "kernels.json"
    built = _tiny_build(cache)
    assert [s.label for s in built.samples] == ["mobilenet_v3_small", "mnasnet0_5"]
    # the fusion test ran on the traced pairs (its verdict is a timing: benchmarks report it, tests do not)
    assert built.fusion and all(set(v) == {"share_of_second", "fused"} for v in built.fusion.values())
    again = _tiny_build(cache)  # read back, not rebuilt: same measurements
    assert [s.network_ms for s in again.samples] == [s.network_ms for s in built.samples]
    assert built.ruler_ms is not None and built.ruler_ms > 0 and again.ruler_ms == built.ruler_ms  # same units
    stored = json.loads(cache.read_text())
    stored["fingerprint"]["cpu"] = "Some Other CPU"
    stored["fingerprint"]["torch"] = "1.0"
    cache.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"built with cpu 'Some Other CPU' \(here .*torch '1.0'"):
        KernelPredictor.load(cache, fingerprint())
    rebuilt = _tiny_build(cache)
    assert "rebuilding the latency predictor" in capsys.readouterr().err
    assert json.loads(cache.read_text())["fingerprint"] == fingerprint()
    assert rebuilt.samples[0].network_ms != -1
    cache.write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read"):
        KernelPredictor.load(cache, fingerprint())


def test_predictions_follow_the_work(tmp_path: Path) -> None:
    predictor = _tiny_build(tmp_path / "kernels.json")
    small, large = (predictor.predict_ms(build_on_meta(n), (1, 3, 64, 64)) for n in ("mnasnet0_5", "mnasnet1_3"))
    assert 0 < small < large and math.isfinite(large)


def test_pick_predicts_the_zoo_and_times_only_the_models_near_the_budget(tmp_path: Path, capsys) -> None:
    from vision_backbones.cli import main as cli_main

    cache = tmp_path / "kernels.json"
    predictor = _tiny_build(cache)
    from vision_backbones.registry import list_models

    slowest = max(predictor.predict_ms(build_on_meta(n), (1, 3, 64, 64)) for n in list_models("m[no]*"))
    budget = slowest / 2  # the slowest is then predicted far over it: left out of the timing
    argv = ["pick", "--latency-ms", f"{budget:.4f}", "--models", "m[no]*", "--image-size", "64", "--threads", "1"]
    argv += ["--rounds", "1", "--no-cache", "--predictor-cache", str(cache), "--json", str(tmp_path / "pick.json")]
    code = cli_main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    rows = json.loads((tmp_path / "pick.json").read_text())["models"]
    assert len(rows) > 8 and all(n.startswith(("mnasnet", "mobilenet")) for n in rows)
    for row in rows.values():
        assert row["predicted_ms"] > 0
        if row["status"] == "predicted":
            assert row["latency_ms"] == row["predicted_ms"]
    statuses = {row["status"] for row in rows.values()}
    assert "measured" in statuses and "predicted" in statuses  # the far ones are only predicted
    assert "predicted ms" in out.out
    measured = [row for row in rows.values() if row["status"] == "measured"]
    assert all(row["latency_clock"] == "cpu, ruled" and row["latency_raw_ms"] > 0 for row in measured)


def test_ruled_measurements_stay_out_of_the_pick_cache(tmp_path: Path) -> None:
    """The pick cache holds raw timings in the clock its key names; a candidate measured on the
    predictor's ruled scale is reported but not cached, so a later ``--measure-all`` run cannot
    take it for a raw timing."""
    from vision_backbones.budget.pick import PickSettings, measure_zoo

    predictor = _tiny_build(tmp_path / "kernels.json")
    settings = PickSettings(image_size=64, threads=1, rounds=1)
    names = ["mnasnet0_5", "mobilenet_v3_small"]
    budget = predictor.predict_ms(build_on_meta("mnasnet0_5"), (1, 3, 64, 64))  # near the budget: measured
    cache = tmp_path / "pick.json"
    measured = measure_zoo(names, budget, settings, cache=cache, predictor=predictor)
    ruled = [n for n, row in measured["models"].items() if row.get("latency_clock") == "cpu, ruled"]
    assert "mnasnet0_5" in ruled and measured["timed_now"] >= len(ruled)
    cached = json.loads(cache.read_text()) if cache.exists() else {}
    assert not any(name in rows for rows in cached.values() for name in ruled)


def test_the_picker_measures_on_the_predictors_scale() -> None:
    """A candidate the picker measures is ruled by the predictor's reference: a predictor whose ruler
    took 1000 ms when it was built (a machine 1000 ms / today's ruler slower) scales the raw time up
    by that much, so measured and predicted figures share one scale."""
    from types import SimpleNamespace

    import torch

    from vision_backbones.budget.pick import PickSettings, ruled_latency

    layer = torch.nn.Conv2d(8, 8, 3)
    x = torch.randn(1, 8, 32, 32)
    settings = PickSettings(threads=1, rounds=3)
    slow = ruled_latency(lambda: layer(x), settings, SimpleNamespace(fingerprint={"clock": "cpu"}, ruler_ms=1000.0))
    assert slow["latency_clock"] == "cpu, ruled"
    assert slow["latency_ms"] > 10 * slow["latency_raw_ms"]  # today's ruler takes far less than 1000 ms


def _conv_row(channels: int, side: int = 14) -> list[float]:
    macs = channels * channels * side * side * 9
    row = [channels, channels, side, side, 3, 3, 1, 1, 1, 1, macs, channels * side * side, channels * side**2]
    return [float(v) for v in [*row, channels * channels * 9, 0.0]]


def test_channel_alignment_lets_the_forest_tell_vector_aligned_convs_apart() -> None:
    """Convs whose channels are multiples of 16 run at half the rate of the others (as oneDNN's vector
    blocking makes them): with the derived alignment features an unseen misaligned width (104) is
    predicted slower than the aligned one beside it (112); without them the forest cannot tell."""
    from vision_backbones.measure.predictor import _cost

    samples = []
    for i, channels in enumerate(range(40, 100, 8)):  # 40, 48, ..., 96: every other one aligned
        rate = 1.0 if channels % 16 == 0 else 2.0
        kernels = [
            ("conv", _conv_row(channels, side), rate * _cost("conv", _conv_row(channels, side))) for side in (7, 14, 28)
        ]
        samples.append(NetworkSample(f"n{i}", f"f{i}", kernels, sum(ms for _, _, ms in kernels)))
    predictor = KernelPredictor(fingerprint())
    predictor.samples = samples
    probe = [("conv", _conv_row(104)), ("conv", _conv_row(112))]
    misaligned, aligned = predictor.fit(kind_scales=False).predict_kernels(probe)
    assert misaligned / aligned > 1.6
    predictor.alignment = False
    misaligned, aligned = predictor.fit(kind_scales=False).predict_kernels(probe)
    assert misaligned / aligned < 1.2
