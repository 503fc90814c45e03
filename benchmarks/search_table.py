#!/usr/bin/env python
"""Build (or resume) the NAS-Bench-style table of a small space: every member trained with several seeds.

    python benchmarks/search_table.py --space nasbench_mb --out benchmarks/nasbench_mb/table.jsonl --workers 2
    python benchmarks/search_table.py --space nasbench_mb --out benchmarks/nasbench_mb/table.jsonl --latency
    python benchmarks/search_table.py --space nasbench_mb --out benchmarks/nasbench_mb/table.jsonl --quality

The table is ``vision_backbones.search.table``'s: one JSON line per member, rewritten atomically after
each run, so a killed build resumes where it stopped (rerun the same command). ``--sample N`` trains only
N seeded random members (the pilots that shaped the proxy); ``--set key=value`` changes the proxy task
(a pilot's, never the committed table's).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence

from vision_backbones.cli import ArgumentParser, int_at_least, run_command
from vision_backbones.io import read_jsonl
from vision_backbones.search.spaces import SPACES, get_space
from vision_backbones.search.table import build_table, measure_table_latency, table_quality, table_task


def _setting(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--set {text!r}: expected key=value, e.g. epochs=3")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python benchmarks/search_table.py", description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nasbench_mb", choices=sorted(SPACES))
    parser.add_argument("--out", required=True, help="the JSON-lines table (resumed when it exists)")
    parser.add_argument("--workers", type=int_at_least(1), default=1, help="Ray workers (one CPU each)")
    parser.add_argument("--seeds", type=int_at_least(1), default=None, help="training seeds 0..N-1 per member")
    parser.add_argument("--sample", type=int_at_least(1), default=None, help="only N seeded random members (pilots)")
    parser.add_argument("--set", action="append", default=[], type=_setting, help="proxy task field=value (pilots)")
    parser.add_argument("--latency", action="store_true", help="measure the latency of members that lack it")
    parser.add_argument("--quality", action="store_true", help="print the table's quality figures as JSON")
    args = parser.parse_args(argv)
    space = get_space(args.space)
    if args.quality:
        print(json.dumps(table_quality(read_jsonl(args.out)), indent=1))
        return 0
    task = {**table_task(space.name), **dict(args.set)}
    if args.latency:
        rows = measure_table_latency(space, args.out, task=task)
    else:
        members = None
        if args.sample is not None:
            rng = random.Random(0)
            members = rng.sample(space.all_indices(), min(args.sample, space.size))
        seeds = range(args.seeds) if args.seeds is not None else None
        rows = build_table(space, args.out, task=task, seeds=seeds, members=members, workers=args.workers)
    print(f"{len(rows)} rows in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command("python benchmarks/search_table.py", lambda: main(sys.argv[1:])))
