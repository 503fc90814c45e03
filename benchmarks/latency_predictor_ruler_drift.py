#!/usr/bin/env python
"""Does the ruler keep its speed relative to the networks as a process ages?

    python benchmarks/latency_predictor_ruler_drift.py --out benchmarks/latency_predictor/intel_xeon [--rounds 2]

Ruling (``measure.ruler``) assumes that whatever slows the ruler slows the measured network as much. This
checks one thing that could break it on a quiet machine: the process itself. In one process, pinned to one
CPU with the malloc thresholds fixed, it times (median of 21 calls each, CPU clock) the eager ruler
(resnet18 at 160 px), the same network as an ONNX Runtime session, and two ONNX Runtime networks
(mnasnet1_0, resnet50 at 224 px); then exports and runs six other registered models through ONNX Runtime,
as ``latency_predictor.py --runtime onnxruntime`` does between its rows, and times the four again, ``--rounds``
times. A ratio network / ruler that moves is a bias a ruled measurement inherits from the process's history.

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


def main() -> int:
    from vision_backbones.io import atomic_write_bytes
    from vision_backbones.measure import onnx_kernels
    from vision_backbones.measure.allocator import fix_thresholds
    from vision_backbones.measure.machine import describe, machine_info
    from vision_backbones.measure.predictor import pinned
    from vision_backbones.measure.ruler import RULER_IMAGE_SIZE, RULER_MODEL, Ruler
    from vision_backbones.measure.timing import CLOCKS
    from vision_backbones.registry import create_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the machine's folder (ruler_drift.md goes there)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of six exports between the timings")
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

    def median_ms(call: Callable[[], object]) -> float:
        times = []
        for _ in range(21):
            start = now()
            call()
            times.append(1e3 * (now() - start))
        return statistics.median(times)

    fix_thresholds()
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, dict[str, float]]] = []
    with pinned(1):
        eager_ruler = Ruler.network(clock="cpu")
        timed = {
            "eager ruler": eager_ruler.call,
            "ONNX Runtime ruler": session_call(RULER_MODEL, RULER_IMAGE_SIZE),
            "mnasnet1_0 (ORT)": session_call("mnasnet1_0", 224),
            "resnet50 (ORT)": session_call("resnet50", 224),
        }
        rows.append(("start (3 exports)", {name: median_ms(call) for name, call in timed.items()}))
        for index in range(args.rounds):
            for name in AGEING:
                call = session_call(name, 224)
                call()
                del call
            rows.append(
                (f"after {3 + 6 * (index + 1)} exports", {name: median_ms(call) for name, call in timed.items()})
            )
            print(rows[-1], file=sys.stderr, flush=True)
    names = list(timed)
    first = rows[0][1]
    lines = [
        "# Does the ruler keep its speed relative to the networks as a process ages?",
        "",
        f"`python benchmarks/latency_predictor_ruler_drift.py --out {args.out} --rounds {args.rounds}` on "
        f"{describe(machine_info())}; one process, 1 thread pinned, malloc thresholds fixed, CPU clock, median of 21 "
        f"calls each; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after.",
        "",
        "| process state | " + " | ".join(f"{n} ms" for n in names) + " | mnasnet1_0 / eager ruler | resnet50 / eager "
        "ruler | mnasnet1_0 / ORT ruler | resnet50 / ORT ruler |",
        "|---|" + "---|" * (len(names) + 4),
    ]
    for label, ms in rows:
        ratios = [
            ms["mnasnet1_0 (ORT)"] / ms["eager ruler"] / (first["mnasnet1_0 (ORT)"] / first["eager ruler"]),
            ms["resnet50 (ORT)"] / ms["eager ruler"] / (first["resnet50 (ORT)"] / first["eager ruler"]),
            ms["mnasnet1_0 (ORT)"]
            / ms["ONNX Runtime ruler"]
            / (first["mnasnet1_0 (ORT)"] / first["ONNX Runtime ruler"]),
            ms["resnet50 (ORT)"] / ms["ONNX Runtime ruler"] / (first["resnet50 (ORT)"] / first["ONNX Runtime ruler"]),
        ]
        lines.append(
            f"| {label} | "
            + " | ".join(f"{ms[n]:.2f}" for n in names)
            + " | "
            + " | ".join(f"{r:.3f}" for r in ratios)
            + " |"
        )
    lines += [
        "",
        "Ratios are relative to the start: 1.000 means ruling by that ruler would give the network the same time "
        "at this point of the process as at its start.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "ruler_drift.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
