"""Random search vs REINFORCE (LSTM controller) vs regularized evolution on the NAS-Bench-style table.

Every strategy queries the committed table (``benchmarks/nasbench/nasbench_resnet.jsonl``: all 256
members of ``nasbench_resnet`` trained once) instead of training, with reward = validation accuracy,
for 100 queries per run and ``--seeds`` seeds; budgets 25 / 50 / 100 are the prefixes of each run. A
query of an architecture already seen counts (as in NAS-Bench-201). Reported per strategy and budget:
mean +- std of the best validation accuracy found, the test accuracy of that architecture, the regret
to the table's best validation accuracy, and a one-sided Mann-Whitney U test of "better than random
search" on the per-seed best validation accuracies. Strategies run with their published defaults
(``controller.py``, ``evolution.py``); nothing is tuned on the table.

    python benchmarks/search_comparison.py [--seeds 30] [--table benchmarks/nasbench/nasbench_resnet.jsonl]

Writes ``benchmarks/nasbench/comparison.md``, ``comparison.json`` and ``best_so_far.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BUDGETS = (25, 50, 100)
STRATEGIES = {
    "random": ("random", {}),
    "reinforce_lstm": ("reinforce", {"cell": "lstm"}),
    "evolution": ("evolution", {}),
}


def run_one(
    space: Any, table: Any, strategy_name: str, options: dict[str, Any], seed: int, queries: int
) -> list[dict[str, Any]]:
    from vision_backbones.search.strategies import make_strategy

    strategy = make_strategy(strategy_name, space, seed=seed, **options)
    rows = []
    for _ in range(queries):
        indices = strategy.propose()
        row = table(indices)
        strategy.observe(indices, row["val_acc1"] / 100.0)
        rows.append(row)
    return rows


def best_so_far(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The best-by-validation row after each query."""
    out, best = [], None
    for row in rows:
        if best is None or row["val_acc1"] > best["val_acc1"]:
            best = row
        out.append(best)
    return out


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main(argv: list[str] | None = None) -> int:
    from rich.progress import Progress
    from scipy.stats import mannwhitneyu

    from vision_backbones.io import atomic_write, atomic_write_stream
    from vision_backbones.measure.machine import describe, machine_info
    from vision_backbones.search.spaces import get_space
    from vision_backbones.search.table import TableEvaluator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(HERE / "nasbench" / "nasbench_resnet.jsonl"))
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--out", default=str(HERE / "nasbench"))
    args = parser.parse_args(argv)

    space = get_space("nasbench_resnet")
    table = TableEvaluator.from_file(space, args.table)
    optimum = table.best("val_acc1")
    test_optimum = max(row["test_acc1"] for row in table.rows.values())
    started = time.perf_counter()
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    with Progress() as progress:
        bar = progress.add_task("strategies x seeds", total=len(STRATEGIES) * args.seeds)
        for label, (name, options) in STRATEGIES.items():
            curves[label] = []
            for seed in range(args.seeds):
                curves[label].append(best_so_far(run_one(space, table, name, options, seed, max(BUDGETS))))
                progress.advance(bar)
    seconds = time.perf_counter() - started

    results: dict[str, Any] = {}
    lines = [
        "| strategy | queries | best val top-1 (%) | its test top-1 (%) | regret (val, points) | p vs random (Mann-Whitney U, one-sided) |",
        "|---|---|---|---|---|---|",
    ]
    for budget in BUDGETS:
        random_best = [curve[budget - 1]["val_acc1"] for curve in curves["random"]]
        for label, runs in curves.items():
            best_val = [curve[budget - 1]["val_acc1"] for curve in runs]
            best_test = [curve[budget - 1]["test_acc1"] for curve in runs]
            regret = [optimum["val_acc1"] - v for v in best_val]
            p_value = (
                None if label == "random" else float(mannwhitneyu(best_val, random_best, alternative="greater").pvalue)
            )
            found_optimum = sum(1 for curve in runs if curve[budget - 1]["key"] == optimum["key"])
            results[f"{label}@{budget}"] = {
                "best_val_mean": statistics.mean(best_val),
                "best_val_std": statistics.stdev(best_val),
                "test_mean": statistics.mean(best_test),
                "test_std": statistics.stdev(best_test),
                "regret_mean": statistics.mean(regret),
                "regret_std": statistics.stdev(regret),
                "p_value_vs_random": p_value,
                "found_optimum": found_optimum,
            }
            p_text = "—" if p_value is None else f"{p_value:.3f}"
            lines.append(
                f"| {label} | {budget} | {mean_std(best_val)} | {mean_std(best_test)} | {mean_std(regret)} | {p_text} |"
            )

    info = machine_info()
    values = sorted(row["val_acc1"] for row in table.rows.values())
    summary = {
        "table": str(Path(args.table).name),
        "members": len(values),
        "seeds": args.seeds,
        "budgets": list(BUDGETS),
        "optimum": {"key": optimum["key"], "val_acc1": optimum["val_acc1"], "test_acc1": optimum["test_acc1"]},
        "val_acc1_quantiles": {"min": values[0], "median": statistics.median(values), "max": values[-1]},
        "test_optimum": test_optimum,
        "seconds": seconds,
        "machine": describe(info),
        "results": results,
    }
    out = Path(args.out)
    atomic_write(out / "comparison.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2) + "\n"))
    _plot(curves, optimum["val_acc1"], out / "best_so_far.png", args.seeds, atomic_write_stream)
    text = "\n".join(
        [
            "# Strategies against the NAS-Bench-style table",
            "",
            f"Generated by `python benchmarks/search_comparison.py --seeds {args.seeds}` in {seconds:.0f} s on {describe(info)}.",
            f"Table: {len(values)} members of `nasbench_resnet`, validation top-1 from {values[0]:.1f} to {values[-1]:.1f} % "
            f"(median {statistics.median(values):.1f}); the optimum is `{optimum['key']}` "
            f"({optimum['val_acc1']:.1f} % val, {optimum['test_acc1']:.1f} % test). Reward = validation accuracy; "
            "budgets are prefixes of 100-query runs, one run per seed.",
            "",
            *lines,
            "",
            "![best so far](best_so_far.png)",
            "",
        ]
    )
    atomic_write(out / "comparison.md", lambda tmp: Path(tmp).write_text(text))
    print(text)
    return 0


def _plot(
    curves: dict[str, list[list[dict[str, Any]]]], optimum: float, path: Path, seeds: int, atomic_write_stream: Any
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axes = plt.subplots(figsize=(6.5, 4))
    for label, runs in curves.items():
        values = np.array([[row["val_acc1"] for row in curve] for curve in runs])  # (seeds, queries)
        mean, std = values.mean(0), values.std(0)
        queries = np.arange(1, values.shape[1] + 1)
        axes.plot(queries, mean, label=label)
        axes.fill_between(queries, mean - std, mean + std, alpha=0.15)
    axes.axhline(optimum, color="grey", linestyle="--", label="table optimum")
    axes.set_xlabel("queries")
    axes.set_ylabel("best validation top-1 so far (%)")
    axes.set_title(f"nasbench_resnet (256 members): mean ± std over {seeds} seeds")
    axes.legend(fontsize=8)
    figure.tight_layout()
    atomic_write_stream(path, lambda stream: figure.savefig(stream, format="png", dpi=120))
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
