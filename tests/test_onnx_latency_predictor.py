"""The latency predictor on ONNX Runtime: its kernels are the nodes of the session's optimized graph."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("onnxruntime")

from vision_backbones.measure import onnx_kernels
from vision_backbones.measure.onnx_kernels import Node, kernel, runs_of
from vision_backbones.measure.predictor import KernelPredictor, fingerprint
from vision_backbones.measure.predictor_build import load_or_build
from vision_backbones.measure.ruler import Ruler
from vision_backbones.registry import create_model


def _event(name: str, ts: int, dur: int, op: str = "Conv", cat: str = "Node") -> dict[str, object]:
    args = {
        "op_name": op,
        "input_type_shape": [{"float": [1, 8, 16, 16]}],
        "output_type_shape": [{"float": [1, 8, 8, 8]}],
    }
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "args": args}


def test_profiler_events_split_into_runs_in_execution_order() -> None:
    events = [
        {"cat": "Session", "name": "model_run", "ts": 100, "dur": 50},
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 50},
        _event("b_kernel_time", 120, 7),
        _event("a_kernel_time", 105, 3),
        _event("a_fence_before", 104, 0),  # not a kernel time
        _event("a_kernel_time", 205, 4),
        _event("b_kernel_time", 230, 9, op="Add"),
        _event("stray_kernel_time", 400, 1),  # outside every run
    ]
    first, second = runs_of(events)
    assert [(n.name, n.ms) for n in first] == [("a", 0.003), ("b", 0.007)]
    assert [(n.name, n.op) for n in second] == [("a", "Conv"), ("b", "Add")]
    assert first[0].inputs == ((1, 8, 16, 16),) and first[0].outputs == ((1, 8, 8, 8),)


def test_kernels_are_typed_by_grouping_and_sized_by_their_work() -> None:
    conv = Node("c", "Conv", ((1, 16, 32, 32), (32, 16, 3, 3), (32,)), ((1, 32, 16, 16),), 1.0)
    depthwise = Node("d", "Conv", ((1, 16, 32, 32), (16, 1, 3, 3), (16,)), ((1, 16, 32, 32),), 1.0)
    grouped = Node("g", "Conv", ((1, 16, 32, 32), (16, 4, 3, 3), (16,), (1, 16, 32, 32)), ((1, 16, 32, 32),), 1.0)
    kind, row = kernel(conv, "Relu")
    assert kind == "ort:Conv" and row[0] == 16 * 16 * 32 * 16 * 9  # MACs: output elements x fan-in
    assert row[10] == 1 and row[11] == 0 and row[12] == onnx_kernels.ACTIVATIONS.index("Relu")
    assert kernel(depthwise)[0] == "ort:Conv:dw" and kernel(depthwise)[1][10] == 16
    kind, row = kernel(grouped)
    assert kind == "ort:Conv:group" and row[10] == 4 and row[11] == 1  # a fused residual add (sum input)
    gemm = kernel(Node("f", "Gemm", ((1, 512), (1000, 512), (1000,)), ((1, 1000),), 1.0))
    assert gemm == ("ort:Gemm", [512000.0, 1.0, 512.0, 1000.0])
    kind, row = kernel(Node("r", "ReorderInput", ((1, 3, 8, 8),), ((1, 8, 8, 8),), 1.0))
    assert kind == "ort:ReorderInput" and row[0] == 512 and len(row) == 12


def test_a_real_session_fuses_and_its_kernels_are_timed_without_leaving_files() -> None:
    shape = (1, 3, 64, 64)
    data = onnx_kernels.export(create_model("mobilenet_v3_small").eval(), shape)
    before = set(Path(tempfile.gettempdir()).glob("vb-ort-*"))
    result = onnx_kernels.profile(data, shape, repeats=2, warmup=1)
    assert set(Path(tempfile.gettempdir()).glob("vb-ort-*")) == before  # the profile and optimized graph are gone
    assert len(result.kernels) == len(result.kernel_ms) > 20
    assert all(ms >= 0 for ms in result.kernel_ms) and result.network_ms > 0
    kinds = {kind for kind, _ in result.kernels}
    assert {"ort:Conv", "ort:Conv:dw"} <= kinds and all(kind.startswith("ort:") for kind in kinds)
    fusion = onnx_kernels.fusion_summary([result])
    # ONNX Runtime fuses every ReLU into the convolution before it on any CPU: none runs alone
    # (HardSwish fuses too where the NCHWc layout is on, AVX2 and up; not asserted)
    assert fusion["Relu"]["ran"] == 0 and fusion["Relu"]["fused"] == 1.0
    assert fusion["Conv"]["exported"] == fusion["Conv"]["ran"]
    trace_only = onnx_kernels.profile(data, shape, repeats=0)  # another session: the same kernels, maybe reordered
    assert sorted(trace_only.kernels) == sorted(result.kernels) and math.isnan(trace_only.network_ms)


def test_a_model_whose_pooling_cannot_be_symbolic_is_exported_at_a_fixed_size() -> None:
    """AlexNet and VGG pool to 7x7 adaptively, which the exporter cannot write for a symbolic size."""
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(4 * 49, 5)).eval()
    data = onnx_kernels.export(model, (1, 3, 44, 44))  # 42 px maps: 7 divides them
    kinds = {kind for kind, _ in onnx_kernels.profile(data, (1, 3, 44, 44), repeats=0).kernels}
    assert "ort:Gemm" in kinds and any(kind.startswith("ort:Conv") for kind in kinds)


def test_the_predictor_is_per_runtime_and_refuses_the_other_runtimes_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager, ort = fingerprint("eager"), fingerprint("onnxruntime")
    assert ort["runtime"] == "onnxruntime" and ort["onnxruntime"] and "onnxruntime" not in eager
    rulers: list[str] = []
    network = Ruler.network.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        Ruler, "network", classmethod(lambda cls, **kw: rulers.append(kw["runtime"]) or network(cls, **kw))
    )
    from vision_backbones.measure import isolated, predictor_build

    monkeypatch.setattr(predictor_build, "young_copy", isolated.ThisProcess)  # measured here: the spy sees the ruler
    cache = tmp_path / "kernels.json"
    built = load_or_build(
        cache,
        runtime="onnxruntime",
        models=["mobilenet_v3_small", "mnasnet0_5"],
        per_space=0,
        budget_s=0,
        image_size=64,
        synthetic=0,
    )
    assert all(kind.startswith("ort:") for s in built.samples for kind, _, _ in s.kernels)
    assert rulers == ["onnxruntime"]  # the build is ruled in the runtime it measures
    assert built.fusion["Relu"]["fused"] == 1.0
    with pytest.raises(ValueError, match=r"runtime 'onnxruntime' \(here 'eager'\)"):
        KernelPredictor.load(cache, eager)
    small, large = (built.predict_ms(create_model(n).eval(), (1, 3, 64, 64)) for n in ("mnasnet0_5", "mnasnet1_3"))
    assert 0 < small < large
    with pytest.raises(ValueError, match="expected predict_ms"):
        built.predict_many([[]])
    stored = json.loads(cache.read_text())
    stored["fingerprint"]["onnxruntime"] = "0.1"
    cache.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"onnxruntime '0.1'"):
        KernelPredictor.load(cache, ort)


def test_an_onnx_runtime_predictor_is_ruled_by_an_onnx_runtime_ruler() -> None:
    """The eager ruler slows as a process exports networks and ONNX Runtime's sessions do not
    (ruler_drift.md), so ONNX Runtime's timings are ruled by the ruler's ONNX Runtime session, and a cache
    ruled by the eager one is refused (its protocol differs)."""
    import numpy as np

    ort, eager = fingerprint("onnxruntime"), fingerprint("eager")
    assert ort["protocol"] != eager["protocol"] and "onnxruntime" in ort["protocol"]
    ruler = Ruler.of(SimpleNamespace(fingerprint=ort, ruler_ms=12.5))
    outputs = ruler.call()
    assert isinstance(outputs, list) and isinstance(outputs[0], np.ndarray) and outputs[0].shape == (1, 1000)
    assert ruler.reference_ms == 12.5 and ruler.clock == ort["clock"]
    assert ruler.warm and ",warm" in ort["protocol"]  # its networks are timed right after themselves
    eager_ruler = Ruler.of(SimpleNamespace(fingerprint=eager, ruler_ms=None))
    assert isinstance(eager_ruler.call(), torch.Tensor) and eager_ruler.warm and ",warm" in eager["protocol"]
    with pytest.raises(ValueError, match="runtime must be one of"):
        Ruler.network(runtime="tflite")


def test_a_missing_runtime_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if it were not installed
    with pytest.raises(ValueError, match="runtime 'onnxruntime' is not installed; expected"):
        fingerprint("onnxruntime")


def test_a_profile_times_each_whole_call_right_after_a_call_of_itself() -> None:
    """ONNX Runtime's small networks run 15-20 % faster right after themselves than after the ruler, so
    the build's whole-network time comes right after a call of the same session, as the warm ruler's
    measurements do (``ruled_ms``), and so do the profiled kernels (a round's second profiled call)."""
    from vision_backbones.measure.onnx_kernels import profiled_rounds, whole_rounds

    events: list[str] = []
    clock = iter(float(t) for t in range(100))
    ruler = Ruler(lambda: events.append("ruler"), reference_ms=1.0, warm=True)
    ruler.time_ms = lambda: events.append("ruler") or 2.0  # type: ignore[method-assign]
    whole = whole_rounds(
        lambda: events.append("plain"), ruler, repeats=2, warmup=1, now=lambda: events.append("clock") or next(clock)
    )
    round_ = ["ruler", "plain", "clock", "plain", "clock"]
    assert events == ["plain", *round_, *round_]
    assert whole == [500.0, 500.0]  # 1 s between the clock reads, ruler 2x slow
    events.clear()
    scales = profiled_rounds(lambda: events.append("profiled"), ruler, repeats=2, warmup=1)
    assert events == ["profiled", *(["ruler", "profiled", "profiled"] * 2)] and scales == [0.5, 0.5]


def test_a_profile_times_the_whole_in_its_session_alone_before_the_profiler_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Timed in rounds beside the profiling session, the whole read NAS-Bench MobileNet networks 2-5 % faster
    than a ruled row (onnx_order.md): the build times it as a row is timed, before a profiling session exists."""
    made = onnx_kernels.session
    events: list[str] = []

    def session(data: bytes, threads: int, **options: object) -> object:
        events.append("profiling session" if options.get("profile_prefix") else "plain session")
        return made(data, threads, **options)  # type: ignore[arg-type]

    def whole_rounds(*args: object, **kwargs: object) -> list[float]:
        events.append("whole")
        return [1.0]

    monkeypatch.setattr(onnx_kernels, "session", session)
    monkeypatch.setattr(onnx_kernels, "whole_rounds", whole_rounds)
    shape = (1, 3, 32, 32)
    data = onnx_kernels.export(create_model("resnet18").eval(), shape)
    assert onnx_kernels.profile(data, shape, repeats=1, warmup=0).network_ms == 1.0
    assert events == ["plain session", "whole", "profiling session"]
    assert ",whole-first," in fingerprint("onnxruntime")["protocol"]  # older caches are refused
