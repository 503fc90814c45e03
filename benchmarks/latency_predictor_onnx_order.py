#!/usr/bin/env python
"""Does the ONNX Runtime build read a network's whole time as a benchmark row does?

    python benchmarks/latency_predictor_onnx_order.py --out benchmarks/latency_predictor/intel_xeon [--space-members 4]

A benchmark row (``latency_predictor.py --runtime onnxruntime``) exports the network in a fork of a young copy,
makes one session and times it ruled and warm (``measure.ruler.ruled_ms``: the ruler, an untimed call, the timed
call). The predictor's build (``measure.onnx_kernels.profile``) also times the whole network, to fit the kernels'
per-type scales against. Each way below runs in its own fork of one young copy, twice per network (median),
against one ruler, pinned to one CPU with the malloc thresholds fixed:

- ``row``: exactly the benchmark's row (7 rounds);
- ``build until stop 36``: the profiling session made first, then the plain one, and rounds of the ruler, two
  profiled calls, an untimed and a timed plain call (kept for the record; the library no longer does this);
- ``plain session first``: the same interleaved rounds, the plain session made before the profiling one;
- ``build since stop 37``: ``onnx_kernels.profile`` as the library runs it (the whole timed in its session alone,
  before the profiling session is made).

Networks: NAS-Bench MobileNet members (``--space-members``, seed 1) and registered mobile, ShuffleNet and residual
networks. Writes ``onnx_order.md`` in ``--out`` (with the machine and the load average). Alone on the machine only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import torch

MODELS = (
    "nasbench_mb",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "shufflenet_v2_x0_5",
    "shufflenet_v1_g3_x1_0",
    "shufflenet_v2_x1_5",
    "regnet_x_1_6gf",
    "resnet18",
)
SHAPE = (1, 3, 224, 224)
ROUNDS = 3  # the build's repeats (load_or_build)


def _setup(state: dict[str, Any]) -> float:
    from vision_backbones.measure.ruler import Ruler

    state["ruler"] = Ruler.network(runtime="onnxruntime", clock="cpu")
    return state["ruler"].calibrate()


def _exported(planned: Any) -> tuple[bytes, Any]:
    """The network exported, and the input every way feeds it."""
    from vision_backbones.measure import onnx_kernels
    from vision_backbones.registry import create_model

    torch.manual_seed(0)
    model = create_model(planned.base, **planned.overrides).eval()
    data = onnx_kernels.export(model, SHAPE)
    return data, torch.randn(*SHAPE, generator=torch.Generator().manual_seed(0)).numpy()


def _row(planned: Any, state: dict[str, Any]) -> float:
    from vision_backbones.measure import onnx_kernels
    from vision_backbones.measure.ruler import ruled_ms

    data, example = _exported(planned)
    plain = onnx_kernels.session(data, 1)
    named = {plain.get_inputs()[0].name: example}
    return ruled_ms(lambda: plain.run(None, named), state["ruler"], repeats=7, warmup=2).ms


def _interleaved(planned: Any, state: dict[str, Any], plain_first: bool) -> float:
    """Rounds of the ruler, two profiled calls, an untimed and a timed plain call, with both sessions alive."""
    from vision_backbones.measure import onnx_kernels
    from vision_backbones.measure.timing import CLOCKS

    data, example = _exported(planned)
    ruler = state["ruler"]
    with tempfile.TemporaryDirectory(prefix="vb-ort-") as folder:
        sessions: dict[str, Any] = {}
        for name in ("plain", "profiled") if plain_first else ("profiled", "plain"):
            options = {"profile_prefix": str(Path(folder) / "profile")} if name == "profiled" else {}
            sessions[name] = onnx_kernels.session(data, 1, **options)
        named = {sessions["plain"].get_inputs()[0].name: example}

        def profiled() -> object:
            return sessions["profiled"].run(None, named)

        def plain() -> object:
            return sessions["plain"].run(None, named)

        now = CLOCKS["cpu"]
        ruler.reference()
        for _ in range(2):
            profiled()
            plain()
        whole = []
        for _ in range(ROUNDS):
            scale = ruler.round_scale()
            profiled()
            profiled()
            plain()
            start = now()
            plain()
            whole.append(1e3 * (now() - start) * scale)
        sessions["profiled"].end_profiling()
    return statistics.median(whole)


def _library(planned: Any, state: dict[str, Any]) -> float:
    from vision_backbones.measure import onnx_kernels

    data, _ = _exported(planned)
    return onnx_kernels.profile(data, SHAPE, threads=1, repeats=ROUNDS, ruler=state["ruler"]).network_ms


WAYS = {
    "row": _row,
    "build until stop 36": partial(_interleaved, plain_first=False),
    "plain session first": partial(_interleaved, plain_first=True),
    "build since stop 37": _library,
}


def main() -> int:
    from vision_backbones.io import atomic_write_bytes
    from vision_backbones.measure.allocator import fix_thresholds
    from vision_backbones.measure.isolated import young_copy
    from vision_backbones.measure.machine import describe, machine_info
    from vision_backbones.measure.predictor import pinned
    from vision_backbones.measure.predictor_build import space_plan, zoo_plan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the machine's folder (onnx_order.md goes there)")
    parser.add_argument("--space-members", type=int, default=4, help="random NAS-Bench MobileNet members (seed 1)")
    args = parser.parse_args()
    if args.space_members < 0:
        raise SystemExit(f"--space-members must be 0 or more, got {args.space_members}")
    fix_thresholds()
    with pinned(1):
        young = young_copy()
    load_before = os.getloadavg()[0]
    plans = space_plan(max(1, args.space_members), 1, ["nasbench_mb"])[: args.space_members] + list(zoo_plan(MODELS))
    rows: list[tuple[str, dict[str, float]]] = []
    with pinned(1), young:
        reference = young.setup(_setup)
        for planned in plans:
            readings: dict[str, list[float]] = {name: [] for name in WAYS}
            for _ in range(2):
                for name, way in WAYS.items():
                    readings[name].append(young.run(partial(way, planned)))
            rows.append((planned.label, {name: statistics.median(v) for name, v in readings.items()}))
            print(planned.label, rows[-1][1], file=sys.stderr, flush=True)
    others = [name for name in WAYS if name != "row"]
    lines = [
        "# ONNX Runtime: does the build time the whole network as a row does?",
        "",
        f"`python benchmarks/latency_predictor_onnx_order.py --out {args.out} --space-members {args.space_members}` on "
        f"{describe(machine_info())}; each way in its own fork of one young copy, twice per network (median), 1 thread "
        f"pinned, malloc thresholds fixed, CPU clock, ruled by resnet18 at 160 px as an ONNX Runtime session "
        f"(reference {reference:.2f} ms); load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after.",
        "",
        "| network | "
        + " | ".join(f"{name} ms" for name in WAYS)
        + " | "
        + " | ".join(f"{n} / row" for n in others)
        + " |",
        "|---|" + "---|" * (len(WAYS) + len(others)),
    ]
    for label, ms in rows:
        lines.append(
            f"| {label} | "
            + " | ".join(f"{ms[name]:.2f}" for name in WAYS)
            + " | "
            + " | ".join(f"{ms[name] / ms['row']:.3f}" for name in others)
            + " |"
        )
    medians = {name: statistics.median(ms[name] / ms["row"] for _, ms in rows) for name in others}
    spread = {
        name: (min(ms[name] / ms["row"] for _, ms in rows), max(ms[name] / ms["row"] for _, ms in rows))
        for name in others
    }
    lines += [
        "",
        "Over the networks, each way / row: "
        + "; ".join(
            f"{name} median {medians[name]:.3f} ({spread[name][0]:.3f}-{spread[name][1]:.3f})" for name in others
        )
        + ".",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "onnx_order.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
