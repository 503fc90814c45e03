#!/usr/bin/env python
"""``backbones pick`` on the kernel-level predictor: its time over the whole zoo, and its ranking against ``backbones profile``.

    python benchmarks/budget/pick_predictor.py [--latency-ms 15] [--models 24] [--predictor-cache F] [--out DIR]

1. ``backbones pick --latency-ms T --threads 1 --no-cache`` over all registered models, run as a
   subprocess with a warm predictor (``--predictor-cache``, built beforehand on this machine): its wall
   time, start to exit, three times (median).
2. In this process: the picker's figures for every model (``measure_zoo`` with the predictor: measured for
   the models near the budget or on the front, predicted for the rest), then ``profile_model`` (what
   ``backbones profile`` runs: eval latency, 1 thread, 224 px, batch 1) on ``--models`` registered models
   spread evenly over the picker's latency range; Spearman's rank correlation of the two, and of the
   predictor alone against the profile.

Writes ``pick_predictor.md`` and ``pick_predictor.json`` into ``--out`` (default: beside this file; one
folder per machine, as the predictor's own benchmark keeps them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    import torch
    from scipy.stats import spearmanr

    from vision_backbones.budget.pick import PickSettings, measure_zoo
    from vision_backbones.io import atomic_write_bytes
    from vision_backbones.measure.machine import describe, machine_info
    from vision_backbones.measure.predictor import pinned
    from vision_backbones.measure.predictor_build import load_or_build
    from vision_backbones.measure.profile import profile_model
    from vision_backbones.registry import list_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=15.0)
    parser.add_argument("--models", type=int, default=24)
    parser.add_argument("--predictor-cache", type=Path, default=HERE.parent / "latency_predictor" / "kernels_cpu.json")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for pick_predictor.md and .json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "vision_backbones.cli", "pick", "--latency-ms", f"{args.latency_ms:g}"]
    command += ["--threads", "1", "--no-cache", "--predictor-cache", str(args.predictor_cache)]
    load_before = os.getloadavg()
    walls = []
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"backbones pick failed: {done.stderr.strip().splitlines()[-1]}")
    pick_output = done.stdout

    torch.set_num_threads(1)
    predictor = load_or_build(args.predictor_cache)
    settings = PickSettings(threads=1)
    picked = measure_zoo(list_models(), args.latency_ms, settings, predictor=predictor)["models"]
    timed = sorted((r for r in picked.values() if r.get("latency_ms") is not None), key=lambda r: r["latency_ms"])
    step = max(1, len(timed) // args.models)
    chosen = timed[::step][: args.models]
    profiled = {}
    with pinned(1):
        for row in chosen:
            result = profile_model(row["name"], threads=1, throughput_batch=1, repeats=5, warmup=2)
            profiled[row["name"]] = result["eval_latency_ms"]
            print(
                f"{row['name']}: pick {row['latency_ms']:.2f} ({row['status']}), profile {profiled[row['name']]:.2f}",
                flush=True,
            )
    load_after = os.getloadavg()
    names = list(profiled)
    pick_ms = [picked[n]["latency_ms"] for n in names]
    predicted_ms = [picked[n]["predicted_ms"] for n in names]
    profile_ms = [profiled[n] for n in names]
    summary = {
        "machine": machine_info(),
        "budget_ms": args.latency_ms,
        "pick_wall_s": walls,
        "models": len(list_models()),
        "agreement_models": len(names),
        "spearman_pick_vs_profile": float(spearmanr(pick_ms, profile_ms)[0]),
        "spearman_predicted_vs_profile": float(spearmanr(predicted_ms, profile_ms)[0]),
        "rows": {
            n: {
                "pick_ms": picked[n]["latency_ms"],
                "status": picked[n]["status"],
                "predicted_ms": picked[n]["predicted_ms"],
                "profile_ms": profiled[n],
            }
            for n in names
        },
        "load_before": load_before,
        "load_after": load_after,
    }
    atomic_write_bytes(args.out / "pick_predictor.json", (json.dumps(summary, indent=1) + "\n").encode())
    lines = [
        "# `backbones pick` on the kernel-level predictor",
        "",
        f"`python benchmarks/budget/pick_predictor.py --latency-ms {args.latency_ms:g}"
        f"{'' if args.out == HERE else f' --predictor-cache {args.predictor_cache} --out {args.out}'}` on {describe(summary['machine'])}; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.",
        "",
        f"- `backbones pick --latency-ms {args.latency_ms:g} --threads 1 --no-cache` over all {summary['models']} models with a warm "
        f"predictor: **{statistics.median(walls):.1f} s** wall, start to exit (median of 3: "
        + ", ".join(f"{w:.1f}" for w in walls)
        + ").",
        f"- Ranking agreement with `profile_model` (what `backbones profile` runs) in the same process, {len(names)} models "
        f"spread over the picker's range: Spearman **{summary['spearman_pick_vs_profile']:.3f}** for the picker's figures "
        f"(measured near the budget, predicted elsewhere), {summary['spearman_predicted_vs_profile']:.3f} for the predictor alone.",
        "",
        "| model | pick ms | how | predicted ms | profile ms |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {r['pick_ms']:.2f} | {r['status']} | {r['predicted_ms']:.2f} | {r['profile_ms']:.2f} |"
        for n, r in summary["rows"].items()
    ]
    lines += ["", "The picker's own output (last run):", "", "```", pick_output.strip(), "```"]
    atomic_write_bytes(args.out / "pick_predictor.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
