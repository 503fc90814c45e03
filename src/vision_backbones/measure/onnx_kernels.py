"""ONNX Runtime's kernels: the nodes of a session's optimized graph, read from its profiler.

ONNX Runtime fuses when it builds a session, not op by op at run time: with every graph optimization on
(what :mod:`vision_backbones.deploy` ships), batch norms are folded into the convolutions before them,
activations (ReLU, Clip, HardSwish, HardSigmoid, ...) and a residual add become part of the convolution,
and on AVX-512 CPUs the convolutions move to the blocked NCHWc layout with reorder nodes at its edges.
The kernels it runs are therefore not the exported graph's nodes; they are the nodes its profiler
reports. A network's kernels here come from one profiled call of its session (the call's times are
not used for a prediction); the per-node times of several profiled calls are the predictor's training
targets. Each node is typed (``ort:Conv``, ``ort:Conv:dw``, ``ort:Conv:group``, ``ort:ReorderInput``,
``ort:Gemm``, ...) and featurized from the shapes the profiler records plus its fused activation (read
from the optimized graph ONNX Runtime writes).

Which ops fused is reported by counting op types in the exported graph and in the kernels that ran
(:func:`fusion_summary`): that is ONNX Runtime's own answer, measured on this machine's session.
"""

from __future__ import annotations

import collections
import json
import math
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from vision_backbones.measure.timing import CLOCKS


class Ruler(Protocol):
    """What profiling needs of a :class:`.ruler.Ruler` (named here: the ruler builds its ONNX Runtime
    session with this module, so importing it would be a circle)."""

    def reference(self, calls: int = 15) -> float: ...

    def round_scale(self) -> float: ...


PREFIX = "ort:"
CONV_OPS = ("Conv", "FusedConv", "NhwcFusedConv")
ACTIVATIONS = ("", "Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "LeakyRelu", "Tanh", "Silu")


def onnxruntime_version() -> str:
    """The installed ONNX Runtime's version; one line naming the extra when it is missing."""
    try:
        import onnxruntime
    except ImportError:
        raise ValueError(
            "runtime 'onnxruntime' is not installed; expected `pip install 'vision-backbones[deploy]'` "
            "or runtime 'eager'"
        ) from None
    return str(onnxruntime.__version__)


def export(model: nn.Module, input_shape: Sequence[int]) -> bytes:
    """``model`` as the deploy exporter writes it (:func:`~vision_backbones.deploy.formats.onnx_bytes`:
    dynamic batch and size, opset 18; a fixed size where adaptive pooling needs one, AlexNet and VGG)."""
    import warnings

    from vision_backbones.deploy.formats import onnx_bytes

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sample = torch.randn(*input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixed-size notice: a prediction is for input_shape anyway
        return onnx_bytes(model.eval(), sample)


def session(data: bytes, threads: int, *, profile_prefix: str | None = None, optimized: str | None = None) -> Any:
    """An ONNX Runtime CPU session as the deploy tools make it (every graph optimization, sequential,
    ``threads`` intra-op threads, no spinning), optionally profiling or writing its optimized graph."""
    onnxruntime_version()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # the "hardware specific optimizations" warning of a saved NCHWc graph
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimized is not None:
        options.optimized_model_filepath = optimized
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Node:
    """One kernel that ran: its node name, ONNX Runtime op, input and output shapes, and milliseconds."""

    name: str
    op: str
    inputs: tuple[tuple[int, ...], ...]
    outputs: tuple[tuple[int, ...], ...]
    ms: float


def _shapes(entries: Any) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(d) for d in shape) for entry in entries or () for shape in entry.values())


def runs_of(events: Sequence[dict[str, Any]]) -> list[list[Node]]:
    """The profiler's events as one list of :class:`Node` per ``session.run``, in execution order."""
    runs = sorted(
        (e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e["name"] == "model_run"
    )
    grouped: list[list[Node]] = [[] for _ in runs]
    for event in sorted((e for e in events if e.get("cat") == "Node"), key=lambda e: e["ts"]):
        if not event["name"].endswith("_kernel_time"):
            continue
        index = next((i for i, (start, end) in enumerate(runs) if start <= event["ts"] <= end), None)
        if index is None:
            continue
        args = event.get("args", {})
        grouped[index].append(
            Node(
                event["name"][: -len("_kernel_time")],
                str(args.get("op_name", "?")),
                _shapes(args.get("input_type_shape")),
                _shapes(args.get("output_type_shape")),
                event["dur"] / 1e3,
            )
        )
    return grouped


def _dims(shape: Sequence[int], count: int = 4) -> list[float]:
    padded = [1, *shape] if len(shape) < count else list(shape)
    padded = ([1] * (count - len(padded)) + padded)[-count:]
    return [float(d) for d in padded]


def kernel(node: Node, activation: str = "") -> tuple[str, list[float]]:
    """``(kernel type, features)`` of a node; the first feature is the size its time scales with."""
    inputs, outputs = node.inputs, node.outputs
    out = outputs[0] if outputs else ()
    if node.op in CONV_OPS and len(inputs) >= 2 and len(inputs[0]) == 4 and len(inputs[1]) == 4 and len(out) == 4:
        (n, c, h, w), (o, per_group, kh, kw) = inputs[0], inputs[1]
        groups = max(1, c // max(per_group, 1))
        kind = "Conv" if groups == 1 else ("Conv:dw" if groups == c and o % c == 0 else "Conv:group")
        macs = n * out[1] * out[2] * out[3] * per_group * kh * kw
        act = float(ACTIVATIONS.index(activation)) if activation in ACTIVATIONS else float(len(ACTIVATIONS))
        return PREFIX + kind, [
            float(macs), float(n), float(c), float(h), float(w), float(o), float(kh), float(kw),
            float(out[2]), float(out[3]), float(groups), float(len(inputs) >= 4), act,
            float(math.prod(inputs[0])), float(math.prod(out)), float(math.prod(inputs[1])),
        ]  # fmt: skip
    if node.op in ("Gemm", "MatMul") and len(inputs) >= 2:
        rows, depth = (math.prod(inputs[0][:-1]), inputs[0][-1]) if inputs[0] else (1, 1)
        width = inputs[1][0] if node.op == "Gemm" and len(inputs[1]) == 2 else inputs[1][-1]
        return PREFIX + node.op, [float(rows * depth * width), float(rows), float(depth), float(width)]
    largest = max([math.prod(s) for s in inputs] + [math.prod(out)] + [1])
    first = inputs[0] if inputs else ()
    return PREFIX + node.op, [
        float(largest),
        float(len(inputs)),
        *_dims(first),
        *_dims(out),
        float(sum(math.prod(s) for s in inputs)),
        float(math.prod(out)),
    ]


def _activations(path: Path) -> dict[str, str]:
    """Each fused node's activation, from the optimized graph ONNX Runtime wrote."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {
        node.name: attribute.s.decode()
        for node in graph.node
        for attribute in node.attribute
        if attribute.name == "activation"
    }


@dataclass
class Profiled:
    """A network's kernels (type, features), each kernel's median ruled milliseconds over the profiled
    calls, the whole call's median ruled milliseconds (timed without the profiler), and the op counts
    before and after ONNX Runtime's fusion."""

    kernels: list[tuple[str, list[float]]]
    kernel_ms: list[float]
    network_ms: float
    exported_ops: dict[str, int]
    kernel_ops: dict[str, int]


def profile(
    data: bytes,
    input_shape: Sequence[int],
    *,
    threads: int = 1,
    repeats: int = 3,
    warmup: int = 2,
    clock: str = "cpu",
    ruler: Ruler | None = None,
) -> Profiled:
    """Profile the ONNX model ``data``: first the whole network, timed in ``repeats`` rounds of an unprofiled
    session alone, in the rounds a warm ruled row is timed in (:func:`whole_rounds`), then a profiling session is made
    and ``repeats`` rounds of it read the kernels (:func:`profiled_rounds`); ``repeats=0`` only reads the
    kernels from one profiled call (a prediction's trace). Leaves no file behind.

    Whole first (since stop 37): timed in rounds interleaved with the profiling session's calls, with both
    sessions alive, the whole read every NAS-Bench MobileNet network 2-5 % faster than a ruled row of the same
    network (0.953-0.978 of it; Intel Xeon, one young copy, each way in its own fork:
    ``benchmarks/latency_predictor/intel_xeon/onnx_order.md``), where the session timed alone first read them
    0.958-1.035 of the row, no bias (the other networks: both ways within a few percent of the row)."""
    import onnx

    feed_array = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0)).numpy()
    if ruler is not None:
        ruler.reference()  # calibrated before the first round, not inside it
    with tempfile.TemporaryDirectory(prefix="vb-ort-") as folder:
        optimized = Path(folder) / "optimized.onnx"
        whole: list[float] = []
        if repeats:  # the whole first, its session alone, as a ruled row times it
            plain = session(data, threads)
            plain_feed = {plain.get_inputs()[0].name: feed_array}
            whole = whole_rounds(lambda: plain.run(None, plain_feed), ruler, repeats, warmup, CLOCKS[clock])
        profiled = session(data, threads, profile_prefix=str(Path(folder) / "profile"), optimized=str(optimized))
        feed = {profiled.get_inputs()[0].name: feed_array}
        if repeats:
            scales = profiled_rounds(lambda: profiled.run(None, feed), ruler, repeats, warmup)
        else:
            profiled.run(None, feed)
            scales = [1.0]
        events = json.loads(Path(profiled.end_profiling()).read_text())
        activations = _activations(optimized)
        exported = collections.Counter(node.op_type for node in onnx.load_from_string(data).graph.node)
    # the warm-up calls are profiled too, and each round's first profiled call only warms its second
    runs = runs_of(events)[-2 * repeats :][1::2] if repeats else runs_of(events)[-1:]
    nodes = runs[-1]
    if any([n.name for n in run] != [n.name for n in nodes] for run in runs):
        raise RuntimeError("ONNX Runtime ran different nodes in two calls of one session; expected the same graph")
    kernels = [kernel(node, activations.get(node.name, "")) for node in nodes]
    if repeats:
        per_kernel = [statistics.median(run[i].ms * s for run, s in zip(runs, scales)) for i in range(len(nodes))]
    else:
        per_kernel = [node.ms for node in nodes]
    return Profiled(
        kernels,
        per_kernel,
        statistics.median(whole) if whole else float("nan"),
        dict(exported),
        dict(collections.Counter(node.op for node in nodes)),
    )


def whole_rounds(
    plain: Callable[[], object],
    ruler: Ruler | None,
    repeats: int,
    warmup: int,
    now: Callable[[], float],
) -> list[float]:
    """The whole network's ruled milliseconds in each of ``repeats`` rounds after ``warmup`` untimed calls: a
    round times the ruler (its scale: reference over its time; 1.0 without one), calls ``plain`` untimed and
    times the next call, as a warm ruled row's rounds are (:func:`.ruler.ruled_ms`: each timed call right after an
    untimed call of itself; ONNX Runtime's small networks ran 15-20 % faster so than right after the ruler). Its
    warm-up calls run without the ruler, whose warm-up ``ruled_ms`` interleaves."""
    for _ in range(warmup):
        plain()
    whole: list[float] = []
    for _ in range(repeats):
        scale = 1.0 if ruler is None else ruler.round_scale()
        plain()
        start = now()
        plain()
        whole.append(1e3 * (now() - start) * scale)
    return whole


def profiled_rounds(profiled: Callable[[], object], ruler: Ruler | None, repeats: int, warmup: int) -> list[float]:
    """Each of ``repeats`` rounds' scale after ``warmup`` profiled calls: a round times the ruler and calls
    ``profiled`` twice; the second call's kernels are the round's (they run right after a call of their own
    session, warm).

    Warm kernels sum to the warm whole: on the Intel Xeon the kernels of a profiled call right after another
    session's call summed to 1.11-1.24x the whole network for mobile networks (1.02 for ResNets), and
    0.98-1.05x when they ran right after their own session's call (shufflenet_v2_x0_5, 459 kernels: 1.56
    and 1.42x, the profiler's own cost per kernel)."""
    for _ in range(warmup):
        profiled()
    scales: list[float] = []
    for _ in range(repeats):
        scales.append(1.0 if ruler is None else ruler.round_scale())
        profiled()
        profiled()
    return scales


def trace(model: nn.Module, input_shape: Sequence[int], threads: int = 1) -> list[tuple[str, list[float]]]:
    """The kernels ONNX Runtime runs for ``model`` (exported, one profiled call)."""
    return profile(export(model, input_shape), input_shape, threads=threads, repeats=0).kernels


def fusion_summary(profiles: Sequence[Profiled]) -> dict[str, dict[str, float]]:
    """Per exported op type, how many ran as kernels of their own: ``{"BatchNormalization": {"exported": 104,
    "ran": 0, "fused": 1.0}, ...}`` summed over ``profiles`` (``fused``: the share that vanished into others)."""
    exported: collections.Counter[str] = collections.Counter()
    ran: collections.Counter[str] = collections.Counter()
    for item in profiles:
        exported.update(item.exported_ops)
        ran.update(item.kernel_ops)
    return {
        op: {"exported": float(count), "ran": float(ran[op]), "fused": max(0.0, 1 - ran[op] / count)}
        for op, count in sorted(exported.items())
        if op not in ("Identity", "Constant", "Shape", "Gather", "Unsqueeze", "Concat") or ran[op]
    }
