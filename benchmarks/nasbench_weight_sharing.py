"""Weight sharing judged against the nasbench_mb table: supernet rankings and differentiable search.

1. Ranking: for each training variant (``spos``, ``fairnas``, ``fewshot``; ``search.op_supernet_training``)
   and supernet seed, train an ``OpSupernet`` on the table's own proxy task (MNIST 16 px, AdamW 0.01,
   batch 64, ``table.TABLE_TASKS``), score every complete table member (or ``--members`` sampled ones)
   with the shared weights after recomputing its batch-norm statistics, and compare with the table's
   test accuracy (seed mean): Kendall tau, Spearman, top-10 % precision, plus the skip share of the
   supernet's top 10 % (a supernet that favours shallow paths shows there).
2. Differentiable search: ``darts`` and ``drnas`` (``search.darts``) for ``--darts-seeds`` seeds each;
   the derived member (argmax per layer) is looked up in the table: its test accuracy, its rank
   percentile (share of the table's members with a higher test mean: 0 is the best member, < 5 is
   the top 5 %), its skip share, and the alpha trajectories (``weight_sharing_alphas.png``).

Budgets (one intra-op thread; per supernet well under the issue's 15 minutes on the 2-core machine):
``--epochs 20`` supernet epochs (SPOS ~1.3 s an epoch, FairNAS ~5x that, few-shot a 10-epoch warm-up
then 5 sub-supernets x 10 epochs) and ``--search-epochs 30`` for DARTS / DrNAS (~10 s an epoch),
paper defaults for the architecture optimizer (Adam 3e-4, betas (0.5, 0.999), weight decay 1e-3).

Each run is cached as JSON under ``<out>/weight_sharing_runs/`` as it finishes (a killed benchmark
resumes, and two processes may share the work: ``--variants spos --methods none`` beside
``--variants none --methods darts,drnas``); the report is written (atomically) once every run is in::

    python benchmarks/nasbench_weight_sharing.py [--table benchmarks/nasbench_mb/table.jsonl] \\
        [--supernet-seeds 3] [--darts-seeds 5] [--epochs 20] [--search-epochs 30] [--members 0]

Writes ``<out>/weight_sharing.md``, ``weight_sharing.json`` and ``weight_sharing_alphas.png``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VARIANTS = ("spos", "fairnas", "fewshot")
METHODS = ("darts", "drnas")


def _names(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    names = [] if text in ("", "none") else text.split(",")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise SystemExit(f"{flag} {','.join(unknown)}: expected some of {','.join(allowed)} or 'none'")
    return names


def load_table(path: Path, members: int) -> list[dict[str, Any]]:
    """The table's complete rows (every seed in), or ``members`` of them sampled with seed 0."""
    from vision_backbones.io import read_jsonl

    rows = [row for row in read_jsonl(path) if "test_acc1" in row]
    if len(rows) < 20:
        raise SystemExit(f"{path}: {len(rows)} complete members; expected the built table (at least 20)")
    if members and members < len(rows):
        rows = random.Random(0).sample(rows, members)
    return sorted(rows, key=lambda row: row["key"])


def proxy_task() -> Any:
    from vision_backbones.search.evaluate import ProxyTask
    from vision_backbones.search.table import table_task

    fields = {k: v for k, v in table_task("nasbench_mb").items() if not k.startswith("latency")}
    return ProxyTask(**fields, threads=1)


def rank_percentile(test_acc1: float, table: list[dict[str, Any]]) -> float:
    """Share (percent) of the table's members with a higher test mean: 0 is the best member."""
    return 100.0 * sum(row["test_acc1"] > test_acc1 for row in table) / len(table)


def ranking_run(variant: str, seed: int, epochs: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from vision_backbones.search.darts import skip_share
    from vision_backbones.search.op_supernet_training import OpSupernetTrainer, ranking_figures, score_members
    from vision_backbones.search.spaces import get_space

    space = get_space("nasbench_mb")
    trainer = OpSupernetTrainer(space, proxy_task(), epochs=epochs, seed=seed, variant=variant)
    start = time.perf_counter()
    while not trainer.done:
        trainer.train_epoch()
    trained = time.perf_counter()
    scores = score_members(trainer, [row["indices"] for row in rows], seed=seed)
    scored = time.perf_counter()
    top = sorted(range(len(rows)), key=lambda i: -scores[i])[: max(1, -(-len(rows) // 10))]
    best = rows[top[0]]
    return {
        "variant": variant,
        "seed": seed,
        "epochs": epochs,
        "units": trainer.units,
        "warmup_epochs": trainer.warmup_epochs if variant == "fewshot" else None,
        **ranking_figures(scores, rows),
        "top10_skip_share": statistics.fmean(skip_share(space, rows[i]["indices"]) for i in top),
        "table_top10_skip_share": statistics.fmean(
            skip_share(space, row["indices"]) for row in sorted(rows, key=lambda r: -r["test_acc1"])[: len(top)]
        ),
        "best_by_supernet": best["key"],
        "best_by_supernet_test_acc1": best["test_acc1"],
        "best_by_supernet_rank_percentile": rank_percentile(best["test_acc1"], rows),
        "train_seconds": trained - start,
        "score_seconds": scored - trained,
        "losses": trainer.losses,
        "scores": dict(zip((row["key"] for row in rows), scores)),
    }


def darts_run(method: str, seed: int, epochs: int, arch_lr: float, table: list[dict[str, Any]]) -> dict[str, Any]:
    from vision_backbones.search.darts import DifferentiableTrainer, skip_share
    from vision_backbones.search.spaces import get_space

    space = get_space("nasbench_mb")
    trainer = DifferentiableTrainer(space, proxy_task(), epochs=epochs, seed=seed, method=method, arch_lr=arch_lr)
    start = time.perf_counter()
    while not trainer.done:
        trainer.train_epoch()
    derived = trainer.derived()
    row = next((r for r in table if tuple(r["indices"]) == derived), None)
    return {
        "method": method,
        "seed": seed,
        "epochs": epochs,
        "arch_lr": arch_lr,
        "derived": list(derived),
        "ops": list(space.architecture(derived)["ops"]),
        "skip_share": skip_share(space, derived),
        "test_acc1": row["test_acc1"] if row else None,
        "rank_percentile": rank_percentile(row["test_acc1"], table) if row else None,
        "seconds": time.perf_counter() - start,
        "losses": trainer.losses,
        "trajectory": trainer.trajectory,
    }


def mean_std(values: list[float], digits: int = 3) -> str:
    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {spread:.{digits}f}"


def plot_alphas(runs: list[dict[str, Any]], path: Path) -> None:
    from vision_backbones.models.nasbench_mb import OPS
    from vision_backbones.plots import pyplot, save_figure

    plt = pyplot()
    methods = sorted({run["method"] for run in runs})
    layers = len(runs[0]["trajectory"][0])
    figure, axes = plt.subplots(len(methods), layers, figsize=(3.2 * layers, 2.6 * len(methods)), squeeze=False)
    colours = plt.get_cmap("tab10")
    for row, method in enumerate(methods):
        for run in (r for r in runs if r["method"] == method):
            for layer in range(layers):
                for k, op in enumerate(OPS):
                    series = [epoch[layer][k] for epoch in run["trajectory"]]
                    label = op if run["seed"] == 0 and layer == 0 else None
                    axes[row][layer].plot(series, color=colours(k), alpha=0.6, linewidth=1, label=label)
        for layer in range(layers):
            axes[row][layer].set_title(f"{method}: ops[{layer}]", fontsize=9)
            axes[row][layer].set_xlabel("epoch", fontsize=8)
        axes[row][0].set_ylabel("probability", fontsize=8)
        axes[row][0].legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path, dpi=110)


def report(args: argparse.Namespace, rankings: list[dict[str, Any]], searches: list[dict[str, Any]]) -> str:
    from vision_backbones.measure.machine import describe, machine_info

    lines = [
        "# Weight sharing on nasbench_mb, judged against its table",
        "",
        f"Generated by `python benchmarks/nasbench_weight_sharing.py {' '.join(sys.argv[1:])}` on {describe(machine_info())}.",
        f"Table: `{args.table}`; truth = test accuracy, seed mean. One intra-op thread per run.",
        "",
        "## Supernet rankings",
        "",
        "| variant | seeds | epochs (units) | train s | score s | Kendall tau | Spearman | top-10 % precision "
        "| skip share, supernet top 10 % (table's) | supernet's best: rank percentile |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        runs = [r for r in rankings if r["variant"] == variant]
        if not runs:
            continue
        lines.append(
            f"| {variant} | {len(runs)} | {runs[0]['epochs']} ({runs[0]['units']}) "
            f"| {statistics.fmean(r['train_seconds'] for r in runs):.0f} "
            f"| {statistics.fmean(r['score_seconds'] for r in runs):.0f} "
            f"| {mean_std([r['kendall_tau'] for r in runs])} | {mean_std([r['spearman'] for r in runs])} "
            f"| {mean_std([r['top10_precision'] for r in runs], 2)} "
            f"| {mean_std([r['top10_skip_share'] for r in runs], 2)} ({runs[0]['table_top10_skip_share']:.2f}) "
            f"| {mean_std([r['best_by_supernet_rank_percentile'] for r in runs], 1)} |"
        )
    if rankings:
        lines += ["", f"Members ranked: {int(rankings[0]['members'])}."]
    lines += [
        "",
        "## Differentiable search: the derived member in the table",
        "",
        "| method | seed | derived ops | test acc (table) | rank percentile | skip share | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in searches:
        accuracy = "-" if run["test_acc1"] is None else f"{run['test_acc1']:.2f}"
        percentile = "-" if run["rank_percentile"] is None else f"{run['rank_percentile']:.1f}"
        lines.append(
            f"| {run['method']} | {run['seed']} | {' '.join(run['ops'])} | {accuracy} | {percentile} "
            f"| {run['skip_share']:.2f} | {run['seconds']:.0f} |"
        )
    for method in METHODS:
        runs = [r for r in searches if r["method"] == method and r["rank_percentile"] is not None]
        if runs:
            top5 = sum(r["rank_percentile"] < 5 for r in runs)
            lines.append(
                f"\n{method}: rank percentile {mean_std([r['rank_percentile'] for r in runs], 1)}, "
                f"skip share {mean_std([r['skip_share'] for r in runs], 2)}, in the top 5 %: {top5} of {len(runs)} seeds."
            )
    if searches:
        lines += ["", "Alpha trajectories (layer probabilities per epoch, every seed): `weight_sharing_alphas.png`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import torch

    from vision_backbones.io import atomic_write_bytes, read_json, write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=HERE / "nasbench_mb" / "table.jsonl")
    parser.add_argument("--out", type=Path, default=HERE / "nasbench_mb")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="supernet variants, or 'none'")
    parser.add_argument("--methods", default=",".join(METHODS), help="differentiable methods, or 'none'")
    parser.add_argument("--supernet-seeds", type=int, default=3)
    parser.add_argument("--darts-seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20, help="supernet epochs (few-shot: half warm-up)")
    parser.add_argument("--search-epochs", type=int, default=30, help="DARTS / DrNAS epochs")
    parser.add_argument("--arch-lr", type=float, default=3e-4, help="architecture Adam lr (DARTS's default)")
    parser.add_argument("--members", type=int, default=0, help="rank this many sampled members (0: all complete)")
    args = parser.parse_args(argv)
    variants = _names(args.variants, VARIANTS, "--variants")
    methods = _names(args.methods, METHODS, "--methods")
    torch.set_num_threads(1)

    table = load_table(args.table, 0)
    rows = load_table(args.table, args.members)
    cache = args.out / "weight_sharing_runs"
    cache.mkdir(parents=True, exist_ok=True)
    suffix = f"e{args.epochs}_m{len(rows)}"
    jobs: list[tuple[Path, Any]] = []
    for variant in variants:
        for seed in range(args.supernet_seeds):
            jobs.append((cache / f"{variant}_{suffix}_s{seed}.json", (ranking_run, variant, seed, args.epochs, rows)))
    for method in methods:
        for seed in range(args.darts_seeds):
            name = f"{method}_e{args.search_epochs}_lr{args.arch_lr:g}_t{len(table)}_s{seed}.json"
            jobs.append((cache / name, (darts_run, method, seed, args.search_epochs, args.arch_lr, table)))
    for number, (path, (function, *arguments)) in enumerate(jobs, 1):
        if not path.exists():
            start = time.perf_counter()
            write_json(path, function(*arguments))
            print(f"[{number}/{len(jobs)}] {path.name}: {time.perf_counter() - start:.0f} s", flush=True)
    runs = [read_json(path) for path, _ in jobs]
    rankings = [r for r in runs if "variant" in r]
    searches = [r for r in runs if "method" in r]
    summary = {
        "table": str(args.table),
        "members_ranked": len(rows),
        "table_members": len(table),
        "task": proxy_task().to_dict(),
        "rankings": [{k: v for k, v in r.items() if k != "scores"} for r in rankings],
        "searches": searches,
    }
    write_json(args.out / "weight_sharing.json", summary)
    if searches:
        plot_alphas(searches, args.out / "weight_sharing_alphas.png")
    atomic_write_bytes(args.out / "weight_sharing.md", report(args, rankings, searches).encode())
    print(
        f"wrote {args.out / 'weight_sharing.md'}, weight_sharing.json"
        + (", weight_sharing_alphas.png" if searches else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
