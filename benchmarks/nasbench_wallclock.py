#!/usr/bin/env python
"""Weight sharing against black-box search at equal wall-clock, on the frozen nasbench_mb table.

    python benchmarks/nasbench_wallclock.py [--runs benchmarks/nasbench_mb/weight_sharing_runs ...] \\
        [--table benchmarks/nasbench_mb/table.jsonl] [--seeds 20] [--out benchmarks/nasbench_mb]

Protocol (fixed before any number was read):

- A weight-sharing run (``benchmarks/nasbench_weight_sharing.py``, cached JSON under ``--runs``) costs
  what it took on this machine: supernet training + scoring every member (``train_seconds`` +
  ``score_seconds``), or the whole DARTS / DrNAS search (``seconds``). It returns one member: the
  supernet's best-scored member, or the derived (argmax) architecture. Methods are grouped by
  variant and budget (``spos e20``, ``darts e30``, ...).
- Its wall-clock budget T is the median cost over its seeds. Each black-box strategy
  (``random``, ``local`` and ``bananas``, the best black-box strategy of ``comparison.md``) runs
  ``--seeds`` times on the table through ``nasbench_compare.run_one`` with ``seconds=T``: a query
  costs the recorded training time of the training seed it draws (``train_seconds_seeds``), and the
  run stops before the query that would pass T. Its returned member is the incumbent (best observed
  validation accuracy), as in ``comparison.md``.
- Truth is the table's test accuracy (seed mean) of the returned member. Per (method, strategy): a
  two-sided Mann-Whitney U of the per-seed test accuracies (scipy), Holm-corrected over every
  comparison together; the verdict reads alpha = 0.05.
- Caveat, stated in the report: the table's training times were recorded with two Ray workers
  sharing the two cores, the weight-sharing runs with two benchmark processes sharing them; both
  use one intra-op thread per run, so the clocks are comparable but not identical.

Writes ``<out>/wallclock.md`` and ``wallclock.json`` (atomically).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROG = "python benchmarks/nasbench_wallclock.py"
BLACK_BOX = ("random", "local", "bananas")
ALPHA = 0.05


def load_compare() -> Any:
    """``benchmarks/nasbench_compare.py`` as a module (its run loop, streams, statistics)."""
    spec = importlib.util.spec_from_file_location("bench_nasbench_compare", HERE / "nasbench_compare.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules.setdefault("bench_nasbench_compare", module)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def method_runs(folders: Sequence[Path], table_rows: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Weight-sharing runs grouped as ``"<variant or method> e<epochs>"``: seed, cost, returned member."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for folder in folders:
        if not folder.is_dir():
            raise SystemExit(
                f"--runs {folder}: not a folder; expected weight_sharing_runs of nasbench_weight_sharing.py"
            )
        for path in sorted(folder.glob("*.json")):
            run = json.loads(path.read_text())
            if "variant" in run:
                label, seconds, key = (
                    run["variant"],
                    run["train_seconds"] + run["score_seconds"],
                    run["best_by_supernet"],
                )
            elif "method" in run:
                if run.get("test_acc1") is None:
                    continue  # derived member outside the table: cannot be judged
                label, seconds = run["method"], run["seconds"]
                key = "-".join(str(i) for i in run["derived"])
            else:
                raise SystemExit(f"{path}: neither a supernet ranking run nor a differentiable search run")
            if key not in table_rows:
                raise SystemExit(f"{path}: member {key} is not in the table")
            extra = f" lr{run['arch_lr']:g}" if run.get("arch_lr", 3e-4) != 3e-4 else ""
            grouped.setdefault(f"{label} e{run['epochs']}{extra}", []).append(
                {"seed": run["seed"], "seconds": float(seconds), "key": key, "test_acc1": table_rows[key]["test_acc1"]}
            )
    if not grouped:
        raise SystemExit(f"no weight-sharing runs under {', '.join(map(str, folders))}")
    return grouped


def black_box(
    compare: Any, space: Any, table: Any, label: str, seeds: int, seconds: float, max_queries: int
) -> list[dict[str, Any]]:
    """``seeds`` runs of a black-box strategy within ``seconds`` of recorded training time each."""
    out = []
    for seed in range(seeds):
        record = compare.run_one(space, table, label, seed, max_queries, seconds=seconds)
        best = compare.incumbents(record["observed"])[-1]
        key = record["keys"][best]
        out.append(
            {
                "seed": seed,
                "queries": len(record["keys"]),
                "seconds": sum(record["seconds"]),
                "key": key,
                "test_acc1": table.rows[key]["test_acc1"],
            }
        )
    return out


def mean_std(values: Sequence[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {spread:.2f}"


def markdown(summary: Mapping[str, Any]) -> str:
    lines = [
        "# Weight sharing vs black-box search at equal wall-clock (nasbench_mb)",
        "",
        f"Generated by `{summary['command']}` on {summary['machine']}.",
        f"Table optimum (test, seed mean): {summary['optimum']:.2f}. Black-box seeds: {summary['seeds']}. "
        "Truth: the returned member's test accuracy, seed mean of the table. p: two-sided Mann-Whitney U "
        "against the weight-sharing method, Holm-corrected over every comparison.",
        "",
        "| method | seeds | wall-clock T (median s) | method test acc | "
        + " | ".join(f"{s} test acc (queries) | p vs {s}" for s in BLACK_BOX)
        + " |",
        "|---|---|---|---|" + "---|---|" * len(BLACK_BOX),
    ]
    for name, entry in summary["methods"].items():
        cells = [
            name,
            str(len(entry["runs"])),
            f"{entry['seconds']:.0f}",
            mean_std([r["test_acc1"] for r in entry["runs"]]),
        ]
        for strategy in BLACK_BOX:
            result = entry["black_box"][strategy]
            queries = statistics.median(r["queries"] for r in result["runs"])
            cells.append(f"{mean_std([r['test_acc1'] for r in result['runs']])} ({queries:.0f})")
            cells.append(f"{result['p_holm']:.3g}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Verdicts (alpha = 0.05, Holm)", ""]
    lines += [f"- {verdict}" for verdict in summary["verdicts"]]
    lines += [
        "",
        "Caveat: the table's training times were recorded with two Ray workers sharing the two cores, the "
        "weight-sharing runs with two benchmark processes sharing them; both use one intra-op thread per run.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from vision_backbones.io import atomic_write_bytes
    from vision_backbones.measure.machine import describe, machine_info
    from vision_backbones.search.spaces import get_space
    from vision_backbones.search.table import TableEvaluator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=HERE / "nasbench_mb" / "table.jsonl")
    parser.add_argument(
        "--runs",
        type=Path,
        nargs="+",
        default=[
            HERE / "nasbench_mb" / "weight_sharing_runs",
            HERE / "nasbench_mb" / "weight_sharing_e100" / "weight_sharing_runs",
        ],
    )
    parser.add_argument("--seeds", type=int, default=20, help="runs per black-box strategy and method budget")
    parser.add_argument("--max-queries", type=int, default=1000, help="upper bound on a black-box run's queries")
    parser.add_argument("--out", type=Path, default=HERE / "nasbench_mb")
    args = parser.parse_args(argv)
    if args.seeds < 2:
        raise SystemExit(f"--seeds {args.seeds}: expected at least 2 (a test needs several runs)")

    compare = load_compare()
    space = get_space("nasbench_mb")
    table = TableEvaluator.from_file(space, args.table)
    methods = method_runs([p for p in args.runs if p.exists()] or args.runs, table.rows)
    summary: dict[str, Any] = {
        "command": f"{PROG} {shlex.join(list(argv) if argv is not None else sys.argv[1:])}",
        "machine": describe(machine_info()),
        "optimum": max(row["test_acc1"] for row in table.rows.values()),
        "seeds": args.seeds,
        "methods": {},
    }
    comparisons: list[tuple[str, str, float]] = []
    for name, runs in sorted(methods.items()):
        seconds = statistics.median(r["seconds"] for r in runs)
        entry: dict[str, Any] = {"runs": runs, "seconds": seconds, "black_box": {}}
        ours = [r["test_acc1"] for r in runs]
        for strategy in BLACK_BOX:
            results = black_box(compare, space, table, strategy, args.seeds, seconds, args.max_queries)
            theirs = [r["test_acc1"] for r in results]
            p = compare.mann_whitney(ours, theirs, "two-sided")
            entry["black_box"][strategy] = {"runs": results, "p": p}
            comparisons.append((name, strategy, p))
        summary["methods"][name] = entry
    adjusted = compare.holm([p for _, _, p in comparisons])
    verdicts = []
    for (name, strategy, _), p_holm in zip(comparisons, adjusted):
        result = summary["methods"][name]["black_box"][strategy]
        result["p_holm"] = p_holm
        ours = statistics.fmean(r["test_acc1"] for r in summary["methods"][name]["runs"])
        theirs = statistics.fmean(r["test_acc1"] for r in result["runs"])
        if p_holm < ALPHA:
            word = "beats" if ours > theirs else "loses to"
            verdicts.append(f"{name} {word} {strategy} ({ours:.2f} vs {theirs:.2f}, p = {p_holm:.3g})")
        else:
            verdicts.append(
                f"{name} vs {strategy}: no significant difference ({ours:.2f} vs {theirs:.2f}, p = {p_holm:.3g})"
            )
    summary["verdicts"] = verdicts
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "wallclock.json", (json.dumps(summary, indent=1) + "\n").encode())
    atomic_write_bytes(args.out / "wallclock.md", markdown(summary).encode())
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
