#!/usr/bin/env python
"""Does the ruler keep its speed relative to the networks as a process ages?

    python benchmarks/latency_predictor_ruler_drift.py --out benchmarks/latency_predictor/intel_xeon [--rounds 6]

Ruling (``measure.ruler``) assumes that whatever slows the ruler slows the measured network as much. This
checks one thing that could break it on a quiet machine: the process itself. In one process, pinned to one
CPU with the malloc thresholds fixed, it times the ruler (resnet18 at 160 px) in eager PyTorch and as an
ONNX Runtime session, two ONNX Runtime networks (mnasnet1_0, resnet50 at 224 px) and one eager network
(mnasnet1_0), in interleaved rounds (median of 41, CPU clock); then exports and runs six other registered
models through ONNX Runtime, as ``latency_predictor.py --runtime onnxruntime`` does between its rows, and
times the five again, ``--rounds`` times. A ratio network / ruler that moves is a bias a ruled measurement
inherits from the process's history; a ruler is fit for a runtime when that runtime's ratios stay put.

Writes ``ruler_drift.md`` in ``--out`` (with the machine and the load average). Alone on the machine only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

AGEING = ("mobilenet_v2", "regnet_x_800mf", "efficientnet_b0", "densenet121", "vgg11", "resnet34")
ROUNDS = 41  # interleaved timing rounds per process state
RATIOS = (  # (network, ruler): the ratios the table follows
    ("mnasnet1_0 (ORT)", "eager ruler"),
    ("resnet50 (ORT)", "eager ruler"),
    ("mnasnet1_0 (ORT)", "ORT ruler"),
    ("resnet50 (ORT)", "ORT ruler"),
    ("mnasnet1_0 (eager)", "eager ruler"),
)


def main() -> int:
    from vision_backbones.io import atomic_write_bytes
    from vision_backbones.measure import onnx_kernels
    from vision_backbones.measure.allocator import fix_thresholds
    from vision_backbones.measure.machine import describe, machine_info
    from vision_backbones.measure.predictor import pinned
    from vision_backbones.measure.ruler import Ruler
    from vision_backbones.measure.timing import CLOCKS
    from vision_backbones.registry import create_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the machine's folder (ruler_drift.md goes there)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of six exports between the timings")
    args = parser.parse_args()
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, got {args.rounds}")
    now = CLOCKS["cpu"]

    def session_call(name: str, size: int) -> Callable[[], object]:
        torch.manual_seed(0)
        model = create_model(name).eval()
        session = onnx_kernels.session(onnx_kernels.export(model, (1, 3, size, size)), 1)
        feed = {session.get_inputs()[0].name: torch.randn(1, 3, size, size).numpy()}
        return lambda: session.run(None, feed)

    def eager_call(name: str, size: int) -> Callable[[], object]:
        torch.manual_seed(0)
        model, example = create_model(name).eval(), torch.randn(1, 3, size, size)

        def forward() -> object:
            with torch.no_grad():
                return model(example)

        return forward

    def medians_ms(calls: dict[str, Callable[[], object]]) -> dict[str, float]:
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(ROUNDS):
            for name, call in calls.items():
                start = now()
                call()
                times[name].append(1e3 * (now() - start))
        return {name: statistics.median(values) for name, values in times.items()}

    fix_thresholds()
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, dict[str, float]]] = []
    with pinned(1):
        timed = {
            "eager ruler": Ruler.network(clock="cpu").call,
            "ORT ruler": Ruler.network(clock="cpu", runtime="onnxruntime").call,
            "mnasnet1_0 (ORT)": session_call("mnasnet1_0", 224),
            "resnet50 (ORT)": session_call("resnet50", 224),
            "mnasnet1_0 (eager)": eager_call("mnasnet1_0", 224),
        }
        for call in timed.values():
            call()
        rows.append(("start (3 exports)", medians_ms(timed)))
        for index in range(args.rounds):
            for name in AGEING:
                call = session_call(name, 224)
                call()
                del call
            rows.append((f"after {3 + 6 * (index + 1)} exports", medians_ms(timed)))
            print(rows[-1], file=sys.stderr, flush=True)
    names = list(timed)
    first = rows[0][1]
    lines = [
        "# Does the ruler keep its speed relative to the networks as a process ages?",
        "",
        f"`python benchmarks/latency_predictor_ruler_drift.py --out {args.out} --rounds {args.rounds}` on "
        f"{describe(machine_info())}; one process, 1 thread pinned, malloc thresholds fixed, CPU clock, median of "
        f"{ROUNDS} interleaved rounds; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after.",
        "",
        "| process state | "
        + " | ".join(f"{n} ms" for n in names)
        + " | "
        + " | ".join(f"{a} / {b}" for a, b in RATIOS)
        + " |",
        "|---|" + "---|" * (len(names) + len(RATIOS)),
    ]
    for label, ms in rows:
        ratios = [ms[a] / ms[b] / (first[a] / first[b]) for a, b in RATIOS]
        lines.append(
            f"| {label} | "
            + " | ".join(f"{ms[n]:.2f}" for n in names)
            + " | "
            + " | ".join(f"{r:.3f}" for r in ratios)
            + " |"
        )
    last = rows[-1][1]
    drift = {f"{a} / {b}": last[a] / last[b] / (first[a] / first[b]) - 1 for a, b in RATIOS}
    lines += [
        "",
        "Ratios are relative to the start: 1.000 means ruling by that ruler would give the network the same time "
        "at this point of the process as at its start. At the end: "
        + "; ".join(f"{k} {v:+.1%}" for k, v in drift.items())
        + ".",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "ruler_drift.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
