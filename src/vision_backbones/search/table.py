"""A NAS-Bench-style table: every member of a small space evaluated once, so strategies are compared for free.

NAS-Bench-101/201 (Ying et al. 2019, Dong & Yang 2020) made search strategies comparable by training
every architecture of a small space once and letting a strategy *query* the table instead of training.
Here the space is ``nasbench_resnet`` (256 members) and the proxy is the MNIST task of
``search.evaluate``; ``build_table`` writes one JSON line per member (rewritten atomically after each,
so a killed build resumes where it stopped), and ``TableEvaluator`` answers a strategy's queries from it.

Rebuild (about 30-40 minutes on 2 shared cores)::

    python benchmarks/search_table.py --out benchmarks/nasbench/nasbench_resnet.jsonl
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from vision_backbones.io import read_jsonl, write_jsonl
from vision_backbones.search.spaces import SearchSpace, to_json

# The proxy task of the committed table: two epochs on the 3,000 MNIST training images at 32 px,
# latency of the deployed network (3 x 64 x 64 input, 1000 classes) on one thread.
TABLE_TASK: dict[str, Any] = {
    "data": "mnist",
    "image_size": 32,
    "epochs": 2,
    "batch_size": 64,
    "lr": 0.01,
    "latency_image_size": 64,
    "latency_repeats": 7,
}
TABLE_SEED = 0


def build_table(
    space: SearchSpace,
    out: str | os.PathLike[str],
    *,
    task: Mapping[str, Any] = TABLE_TASK,
    seed: int = TABLE_SEED,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every member of ``space`` not yet in ``out`` and add it; returns every row."""
    from vision_backbones.progress import progress_bar
    from vision_backbones.search.evaluate import ProxyTask, evaluate_architecture

    proxy_task = ProxyTask(**task)
    rows = read_jsonl(out)
    done = {row["key"] for row in rows}
    todo = [m for m in space.all_indices() if space.key(m) not in done][:limit]
    with progress_bar(transient=False) as progress:
        bar = progress.add_task(f"table {space.name}", total=space.size, completed=len(done))
        for indices in todo:
            architecture = space.architecture(indices)
            result = evaluate_architecture(space.base, architecture, proxy_task, seed=seed)
            rows.append(
                {
                    "key": space.key(indices),
                    "indices": list(indices),
                    "architecture": to_json(architecture),
                    **{
                        k: result[k]
                        for k in (
                            "val_acc1",
                            "test_acc1",
                            "params",
                            "flops",
                            "latency_ms",
                            "seconds",
                            "deploy_params",
                            "deploy_flops",
                        )
                    },
                    "seed": seed,
                }
            )
            write_jsonl(out, rows)
            progress.advance(bar)
            if not sys.stdout.isatty():
                print(
                    f"{len(rows)}/{space.size} {rows[-1]['key']} val {result['val_acc1']:.1f} {result['seconds']:.1f}s",
                    flush=True,
                )
    return rows


class TableEvaluator:
    """Answers ``(indices) -> result`` from a built table: a strategy's query costs nothing."""

    def __init__(self, space: SearchSpace, rows: Sequence[Mapping[str, Any]]) -> None:
        self.space = space
        self.rows = {row["key"]: dict(row) for row in rows}
        missing = space.size - len(self.rows)
        if missing:
            raise ValueError(
                f"table of space {space.name!r} lacks {missing} of {space.size} members; expected a full table"
            )

    @classmethod
    def from_file(cls, space: SearchSpace, path: str | os.PathLike[str]) -> TableEvaluator:
        return cls(space, read_jsonl(path))

    def __call__(self, indices: Sequence[int]) -> dict[str, Any]:
        return self.rows[self.space.key(indices)]

    def best(self, metric: str = "val_acc1") -> dict[str, Any]:
        return max(self.rows.values(), key=lambda row: row[metric])
