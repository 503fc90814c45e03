#!/usr/bin/env python
"""Does an eager network read slower right after the ruler than right after itself, and does the build agree?

    python benchmarks/latency_predictor_order.py --out benchmarks/latency_predictor/intel_xeon [--space-members 6]

A ruled measurement (``measure.ruler.ruled_ms``) either alternates the network and the ruler (the order
flips every round, so half of the timed calls follow the ruler, whose weights flush the caches) or, with
a *warm* ruler, times each call right after an untimed call of the network itself. The predictor's build
profiles the same networks (``measure.predictor.profile_network``), and its predictions are only as good
as the build and the benchmark read the same network the same way. For registered mobile and residual
networks and ``--space-members`` random members of the MnasNet spaces, each in a fork of one young copy
(``measure.isolated``), pinned to one CPU with the malloc thresholds fixed, this times, against one ruler:

- the benchmark's two orders: ``ruled_ms`` alternating and warm (7 rounds each);
- the build's two rounds: the whole network and the sum of its profiled kernels (5 rounds each), with the
  alternating round (kernels right after the ruler) and the warm one (kernels after an untimed call).

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
COLUMNS = ("bench alternating", "bench warm", "build whole", "build kernels", "warm build whole", "warm build kernels")


def _setup(state: dict[str, Any]) -> float:
    from vision_backbones.measure.ruler import Ruler

    state["ruler"] = Ruler.network(clock="cpu")
    return state["ruler"].calibrate()


def _measure(planned: Any, state: dict[str, Any]) -> dict[str, float]:
    """One network's six readings (milliseconds at the ruler's reference), in a fork of the young copy."""
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
            "build whole": whole_ms,
            "build kernels": sum(kernel_ms),
            "warm build whole": warm_whole_ms,
            "warm build kernels": sum(warm_kernel_ms),
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
        "build whole / warm bench": ("build whole", "bench warm"),
        "warm build whole / warm bench": ("warm build whole", "bench warm"),
        "build kernels / build whole": ("build kernels", "build whole"),
        "warm build kernels / warm build whole": ("warm build kernels", "warm build whole"),
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
