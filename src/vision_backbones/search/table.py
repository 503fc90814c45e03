"""NAS-Bench-style tables: every member of a small space trained with several seeds, so strategies are
compared for free and against a ground truth.

NAS-Bench-101/201 (Ying et al. 2019, Dong & Yang 2020) made search strategies comparable by training
every architecture of a small space and letting a strategy *query* the table instead of training. A
table is only worth comparing on if it says something: NAS-Bench-201 reports the rank correlation of
its validation and test accuracies and how much seeds disagree, and so does ``table_quality`` here.

One JSON line per member (rewritten atomically as results arrive, so a killed build resumes where
it stopped, and a Ray pool trains members in parallel)::

    {"key": "0-3-1-4", "indices": [...], "architecture": {...},
     "seeds": [0, 1, 2], "val_acc1_seeds": [...], "test_acc1_seeds": [...],
     "val_acc1": mean, "val_std": ..., "test_acc1": mean, "test_std": ...,
     "params": ..., "flops": ..., "deploy_params": ..., "deploy_flops": ..., "latency_ms": ..., "train_seconds": [...]}

``val_acc1`` and ``test_acc1`` are seed means; a member is complete when every seed is in. Latency is
measured in a separate pass (``measure_table_latency``) with nothing else training, one member after
the other, so two workers do not disturb each other's clock.

Build the committed tables::

    python benchmarks/search_table.py --space nasbench_mb --out benchmarks/nasbench_mb/table.jsonl
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vision_backbones.io import read_jsonl, write_jsonl
from vision_backbones.search.spaces import SearchSpace, to_json

# The proxy task of each committed table (``ProxyTask`` fields) and its training seeds.
TABLE_TASKS: dict[str, dict[str, Any]] = {
    # benchmarks/nasbench/nasbench_resnet.jsonl: one seed, two epochs (kept for the history it records)
    "nasbench_resnet": {
        "data": "mnist",
        "image_size": 32,
        "epochs": 2,
        "batch_size": 64,
        "lr": 0.01,
        "latency_image_size": 64,
        "latency_repeats": 7,
    },
    # benchmarks/nasbench_mb/table.jsonl: shaped on a pilot before any strategy ran (README there)
    "nasbench_mb": {
        "data": "mnist",
        "image_size": 16,
        "epochs": 3,
        "batch_size": 64,
        "lr": 0.01,
        "latency_image_size": 128,
        "latency_repeats": 21,
    },
}
TABLE_SEEDS: dict[str, tuple[int, ...]] = {"nasbench_resnet": (0,), "nasbench_mb": (0, 1, 2)}
PER_SEED = ("val_acc1", "test_acc1", "train_seconds")
PER_MEMBER = ("params", "flops", "deploy_params", "deploy_flops")


def table_task(space: str) -> dict[str, Any]:
    if space not in TABLE_TASKS:
        raise ValueError(f"no table task for space {space!r}; expected one of {', '.join(TABLE_TASKS)}")
    return dict(TABLE_TASKS[space])


def _evaluate(trial: Mapping[str, Any]) -> dict[str, Any]:
    """One (member, seed) training run, in a worker process (latency is measured later, alone)."""
    from vision_backbones.search.evaluate import ProxyTask, evaluate_architecture
    from vision_backbones.search.spaces import from_json

    result = evaluate_architecture(
        trial["base"], from_json(trial["architecture"]), ProxyTask(**trial["task"]), seed=trial["seed"], latency=False
    )
    return {k: result[k] for k in (*PER_SEED, *PER_MEMBER)}


def _complete(row: Mapping[str, Any], seeds: Sequence[int]) -> bool:
    return all(str(seed) in row.get("runs", {}) for seed in seeds)


def _summarise(row: dict[str, Any], seeds: Sequence[int]) -> None:
    """Per-seed lists, means and standard deviations from ``row["runs"]`` (once every seed is in)."""
    runs = [row["runs"][str(seed)] for seed in seeds]
    row["seeds"] = list(seeds)
    for name in PER_SEED:
        row[f"{name}_seeds"] = [run[name] for run in runs]
    for name in ("val_acc1", "test_acc1"):
        values = row[f"{name}_seeds"]
        row[name] = statistics.fmean(values)
        row[f"{name.split('_')[0]}_std"] = statistics.pstdev(values) if len(values) > 1 else 0.0
    for name in PER_MEMBER:
        row[name] = runs[0][name]


def build_table(
    space: SearchSpace,
    out: str | os.PathLike[str],
    *,
    task: Mapping[str, Any] | None = None,
    seeds: Sequence[int] | None = None,
    members: Iterable[Sequence[int]] | None = None,
    workers: int = 1,
    address: str | None = None,
) -> list[dict[str, Any]]:
    """Train every (member, seed) of ``space`` (or of ``members``) not yet in ``out``; returns every row.

    Runs go to a Ray pool of ``workers`` (one CPU each; this process for 1); ``out`` is rewritten
    atomically after each, so a killed build loses at most the runs in flight.
    """
    from vision_backbones.progress import progress_bar
    from vision_backbones.search.runner import make_executor

    task = dict(task if task is not None else table_task(space.name))
    seeds = tuple(seeds if seeds is not None else TABLE_SEEDS.get(space.name, (0,)))
    wanted = [space.check_indices(m) for m in (members if members is not None else space.all_indices())]
    rows = {row["key"]: row for row in read_jsonl(out)}
    for key, row in rows.items():
        if row.get("task", task) != task:
            raise ValueError(f"{str(out)!r}: member {key} was trained with another task; expected {task}")
    trials: list[dict[str, Any]] = []
    for indices in wanted:
        key = space.key(indices)
        row = rows.setdefault(
            key,
            {"key": key, "indices": list(indices), "architecture": to_json(space.architecture(indices)), "runs": {}},
        )
        row["task"] = task
        for seed in seeds:
            if str(seed) not in row["runs"]:
                trial = {"number": len(trials), "key": key, "seed": seed, "base": space.base}
                trials.append({**trial, "architecture": row["architecture"], "task": task})
    total = len(wanted) * len(seeds)
    executor = make_executor(workers, address)
    try:
        with progress_bar(transient=False) as progress:
            bar = progress.add_task(f"table {space.name}", total=total, completed=total - len(trials))
            for number, result in executor.map(_evaluate, trials):
                trial = trials[number]
                row = rows[trial["key"]]
                row["runs"][str(trial["seed"])] = result
                if _complete(row, seeds):
                    _summarise(row, seeds)
                write_jsonl(out, list(rows.values()))
                progress.advance(bar)
    finally:
        executor.close()
    return list(rows.values())


def measure_table_latency(
    space: SearchSpace, out: str | os.PathLike[str], *, task: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Batch-1 latency of every member's deployed network (one at a time, this process) not yet measured."""
    import torch

    from vision_backbones.progress import progress_bar
    from vision_backbones.registry import create_model
    from vision_backbones.search.evaluate import ProxyTask
    from vision_backbones.search.latency import measure_latency_ms
    from vision_backbones.search.spaces import from_json

    proxy = ProxyTask(**(task if task is not None else table_task(space.name)))
    rows = read_jsonl(out)
    todo = [row for row in rows if row.get("latency_ms") is None]
    with progress_bar(transient=False) as progress:
        bar = progress.add_task(f"latency {space.name}", total=len(rows), completed=len(rows) - len(todo))
        for row in todo:
            torch.manual_seed(0)
            model = create_model(
                space.base,
                num_classes=proxy.latency_num_classes,
                in_channels=proxy.latency_in_channels,
                **from_json(row["architecture"]),
            )
            row["latency_ms"] = measure_latency_ms(
                model, image_size=proxy.latency_image_size, threads=proxy.latency_threads, repeats=proxy.latency_repeats
            )
            write_jsonl(out, rows)
            progress.advance(bar)
    return rows


def table_quality(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What a table says about itself (NAS-Bench-201's own checks): rank agreement of validation and
    test, accuracy range, and how much training seeds agree (mean pairwise Spearman of per-seed test)."""
    from itertools import combinations

    from scipy.stats import kendalltau, spearmanr

    rows = [row for row in rows if "val_acc1" in row]
    if len(rows) < 3:
        raise ValueError(f"table has {len(rows)} complete members; expected at least 3 to judge it")
    val = [row["val_acc1"] for row in rows]
    test = [row["test_acc1"] for row in rows]
    quality: dict[str, Any] = {
        "members": len(rows),
        "spearman_val_test": float(spearmanr(val, test).statistic),
        "kendall_val_test": float(kendalltau(val, test).statistic),
        "test_min": min(test),
        "test_max": max(test),
        "test_range": max(test) - min(test),
        "test_median": statistics.median(test),
        "seed_std_median": statistics.median(row["test_std"] for row in rows),
    }
    seed_counts = {len(row.get("test_acc1_seeds", [])) for row in rows}
    if min(seed_counts) > 1:
        n = min(seed_counts)
        pairs = [
            spearmanr(
                [row["test_acc1_seeds"][a] for row in rows], [row["test_acc1_seeds"][b] for row in rows]
            ).statistic
            for a, b in combinations(range(n), 2)
        ]
        quality["spearman_seed_to_seed"] = float(statistics.fmean(pairs))
    best_val = max(rows, key=lambda row: row["val_acc1"])
    quality["test_of_best_val"] = best_val["test_acc1"]
    quality["params_spearman_test"] = float(spearmanr([row["params"] for row in rows], test).statistic)
    return quality


class TableEvaluator:
    """Answers ``(indices) -> row`` from a built table: a strategy's query costs nothing."""

    def __init__(self, space: SearchSpace, rows: Sequence[Mapping[str, Any]]) -> None:
        self.space = space
        self.rows = {row["key"]: dict(row) for row in rows if "val_acc1" in row}
        missing = space.size - len(self.rows)
        if missing:
            raise ValueError(
                f"table of space {space.name!r} lacks {missing} of {space.size} members; expected a full table"
            )
        for key, row in self.rows.items():
            try:
                indices = space.check_indices(row["indices"])
                expected = to_json(space.architecture(indices))
            except (ValueError, KeyError) as error:
                raise ValueError(f"table member {key}: not a member of space {space.name!r} ({error})") from None
            if space.key(indices) != key or row["architecture"] != expected:
                raise ValueError(
                    f"table member {key}: architecture {row['architecture']} is not what space {space.name!r} "
                    f"builds for it ({expected}); expected a table of this space"
                )

    @classmethod
    def from_file(cls, space: SearchSpace, path: str | os.PathLike[str]) -> TableEvaluator:
        return cls(space, read_jsonl(path))

    def __call__(self, indices: Sequence[int]) -> dict[str, Any]:
        return self.rows[self.space.key(indices)]

    def best(self, metric: str = "val_acc1") -> dict[str, Any]:
        return max(self.rows.values(), key=lambda row: row[metric])
