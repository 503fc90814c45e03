#!/usr/bin/env python
"""The ASHA search's best architecture retrained from scratch beside the registered MnasNets, 3 seeds each.

    python benchmarks/search_asha/retrain.py [--seeds 3]

Every network trains with the search's proxy task at full fidelity (MNIST, 3 epochs, one thread) from
scratch per seed; latency is measured on the deployed network (3 x 224 x 224, 1000 classes, batch 1, one
thread, median of 15) in this process, interleaved over two rounds. Writes ``retrain.md`` / ``retrain.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REGISTERED = ("mnasnet0_5", "mnasnet0_75", "mnasnet1_0")


def main() -> int:
    from scipy.stats import mannwhitneyu

    from vision_backbones.io import atomic_write_bytes
    from vision_backbones.measure.machine import describe, machine_info
    from vision_backbones.registry import create_model
    from vision_backbones.search.evaluate import ProxyTask, evaluate_architecture
    from vision_backbones.search.latency import measure_latency_ms
    from vision_backbones.search.spaces import from_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    best = json.loads((HERE / "best_architecture.json").read_text())
    task = ProxyTask(**json.loads((HERE / "search.json").read_text())["task"])
    candidates = {f"searched (trial #{best['trial']})": (best["model"], from_json(best["overrides"]))}
    candidates |= {name: (name, {}) for name in REGISTERED}
    latency: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(2):  # interleaved rounds
        for name, (base, arch) in candidates.items():
            latency[name].append(measure_latency_ms(create_model(base, **arch).eval(), image_size=224))
    rows = {}
    for name, (base, arch) in candidates.items():
        runs = [evaluate_architecture(base, arch, task, seed=seed, latency=False) for seed in range(args.seeds)]
        rows[name] = {
            "test_acc1": [r["test_acc1"] for r in runs],
            "val_acc1": [r["val_acc1"] for r in runs],
            "latency_ms": statistics.median(latency[name]),
            "params": runs[0]["params"],
        }
        print(name, rows[name], flush=True)
    searched = next(iter(rows))
    lines = [
        "# The ASHA search's best, retrained from scratch beside the registered MnasNets",
        "",
        f"`python benchmarks/search_asha/retrain.py --seeds {args.seeds}` on {describe(machine_info())}.",
        f"Proxy task: {task.data}, {task.epochs} epochs, {args.seeds} seeds each; latency 224 px, batch 1, 1 thread.",
        "p: two-sided Mann-Whitney U of test top-1 against the searched network.",
        "",
        "| network | test top-1 (mean ± std) | val top-1 | latency ms | params (proxy) | p |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        test = row["test_acc1"]
        p = "-" if name == searched else f"{mannwhitneyu(rows[searched]['test_acc1'], test).pvalue:.3g}"
        lines.append(
            f"| {name} | {statistics.fmean(test):.2f} ± {statistics.stdev(test):.2f} | "
            f"{statistics.fmean(row['val_acc1']):.2f} | {row['latency_ms']:.2f} | {row['params']:,} | {p} |"
        )
    atomic_write_bytes(HERE / "retrain.json", (json.dumps(rows, indent=1) + "\n").encode())
    atomic_write_bytes(HERE / "retrain.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
