#!/usr/bin/env python
"""Does an eager network read slower right after the ruler than right after itself, and does the build agree?

    python benchmarks/latency_predictor_order.py --out benchmarks/latency_predictor/intel_xeon [--space-members 6]

A ruled measurement (``measure.ruler.ruled_ms``) either alternates the network and the ruler (the order
flips every round, so half of the timed calls follow the ruler, whose weights flush the caches) or, with
a *warm* ruler, times each call right after one untimed call of the network itself. The predictor's build
profiles the same networks (``measure.predictor.profile_network``), and its predictions are only as good
as the build and the benchmark read the same network the same way. For registered mobile and residual
networks and ``--space-members`` random members of the MnasNet spaces, each in a fork of one young copy
(``measure.isolated``), pinned to one CPU with the malloc thresholds fixed, this times, against one ruler:

- the benchmark's two orders: ``ruled_ms`` alternating and warm (7 rounds each);
- the build's rounds (5 each): alternating (the profiled call right after the ruler, then the whole); warm
  (the ruler, an untimed call, the timed whole, then the profiled call: the library's since stop 36); and
  stop 36's first warm round, kept for the record (the ruler, an untimed call, the profiled call, an untimed
  call, then the timed whole: three forwards after the ruler).

Writes ``eager_order.md`` in ``--out`` (with the machine and the load average). Alone on the machine only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

MODELS = (
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "mnasnet1_0",
    "efficientnet_b0",
    "shufflenet_v2_x1_0",
    "resnet18",
    "resnet50",
)
COLUMNS = (
    "bench alternating",
    "bench warm",
    "build alternating whole",
    "build alternating kernels",
    "build warm whole",
    "build warm kernels",
    "whole 3 calls after the ruler",
)


def _setup(state: dict[str, Any]) -> float:
    from vision_backbones.measure.ruler import Ruler

    state["ruler"] = Ruler.network(clock="cpu")
    return state["ruler"].calibrate()


def _three_calls_after(model: Any, example: torch.Tensor, ruler: Any, repeats: int = 5) -> float:
    """Stop 36's first warm round: the ruler, an untimed call, a profiled call, an untimed call, the timed whole
    (ruled milliseconds, median over rounds)."""
    from vision_backbones.measure.predictor import _OpTimer
    from vision_backbones.measure.timing import time_calls

    for _ in range(2):
        model(example)
    whole = []
    for _ in range(repeats):
        scale = ruler.round_scale()
        model(example)
        with _OpTimer("cpu"):
            model(example)
        whole.append(scale * time_calls(lambda: model(example), repeats=1, warmup=1, clock="cpu")[0])
    return statistics.median(whole)


def _measure(planned: Any, state: dict[str, Any]) -> dict[str, float]:
    """One network's readings (milliseconds at the ruler's reference), in a fork of the young copy."""
    from vision_backbones.measure.predictor import profile_network
    from vision_backbones.measure.ruler import ruled_ms
    from vision_backbones.registry import create_model

    torch.manual_seed(0)
    model = create_model(planned.base, **planned.overrides).eval()
    example = torch.randn(1, 3, 224, 224)
    alternating = replace(state["ruler"], warm=False)
    warm = replace(state["ruler"], warm=True)
    shape = (1, 3, 224, 224)
    with torch.no_grad():
        _, kernel_ms, whole_ms = profile_network(model, shape, ruler=alternating)
        _, warm_kernel_ms, warm_whole_ms = profile_network(model, shape, ruler=warm)
        return {
            "bench alternating": ruled_ms(lambda: model(example), alternating, repeats=7, warmup=2).ms,
            "bench warm": ruled_ms(lambda: model(example), warm, repeats=7, warmup=2).ms,
            "build alternating whole": whole_ms,
            "build alternating kernels": sum(kernel_ms),
            "build warm whole": warm_whole_ms,
            "build warm kernels": sum(warm_kernel_ms),
            "whole 3 calls after the ruler": _three_calls_after(model, example, warm),
        }


def main() -> int:
    from vision_backbones.io import atomic_write_bytes
    from vision_backbones.measure.allocator import fix_thresholds
    from vision_backbones.measure.isolated import young_copy
    from vision_backbones.measure.machine import describe, machine_info
    from vision_backbones.measure.predictor import pinned
    from vision_backbones.measure.predictor_build import space_plan, zoo_plan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the machine's folder (eager_order.md goes there)")
    parser.add_argument("--space-members", type=int, default=6, help="random MnasNet-space members (seed 1)")
    args = parser.parse_args()
    if args.space_members < 0:
        raise SystemExit(f"--space-members must be 0 or more, got {args.space_members}")
    fix_thresholds()
    with pinned(1):
        young = young_copy()
    load_before = os.getloadavg()[0]
    plans = list(zoo_plan(MODELS))
    plans += space_plan(max(1, (args.space_members + 1) // 2), 1, ["mnasnet", "mnasnet_oneshot"])[: args.space_members]
    rows: list[tuple[str, dict[str, float]]] = []
    with pinned(1), young:
        reference = young.setup(_setup)
        for planned in plans:
            rows.append((planned.label, young.run(partial(_measure, planned))))
            print(planned.label, rows[-1][1], file=sys.stderr, flush=True)
    ratios = {
        "alternating / warm bench": ("bench alternating", "bench warm"),
        "build alternating whole / warm bench": ("build alternating whole", "bench warm"),
        "build warm whole / warm bench": ("build warm whole", "bench warm"),
        "whole 3 calls after / warm bench": ("whole 3 calls after the ruler", "bench warm"),
        "build warm kernels / its whole": ("build warm kernels", "build warm whole"),
    }
    lines = [
        "# Eager timing order: after the ruler or after the network itself?",
        "",
        f"`python benchmarks/latency_predictor_order.py --out {args.out} --space-members {args.space_members}` on "
        f"{describe(machine_info())}; every network in a fork of one young copy, 1 thread pinned, malloc thresholds "
        f"fixed, CPU clock, ruled by resnet18 at 160 px (reference {reference:.2f} ms); load average {load_before:.2f} "
        f"before, {os.getloadavg()[0]:.2f} after.",
        "",
        "| network | " + " | ".join(f"{c} ms" for c in COLUMNS) + " | " + " | ".join(ratios) + " |",
        "|---|" + "---|" * (len(COLUMNS) + len(ratios)),
    ]
    for label, ms in rows:
        lines.append(
            f"| {label} | "
            + " | ".join(f"{ms[c]:.2f}" for c in COLUMNS)
            + " | "
            + " | ".join(f"{ms[a] / ms[b]:.3f}" for a, b in ratios.values())
            + " |"
        )
    medians = {name: statistics.median(ms[a] / ms[b] for _, ms in rows) for name, (a, b) in ratios.items()}
    lines += ["", "Medians over the networks: " + "; ".join(f"{k} {v:.3f}" for k, v in medians.items()) + "."]
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "eager_order.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
