#!/usr/bin/env python
"""Build (or resume) the NAS-Bench-style table of a small space: every member trained once on the proxy task.

    python benchmarks/search_table.py --out benchmarks/nasbench/nasbench_resnet.jsonl

The table is ``vision_backbones.search.table``'s: one JSON line per member, rewritten atomically
after each, so a killed build resumes where it stopped.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from vision_backbones.cli import ArgumentParser, int_at_least, run_command
from vision_backbones.search.spaces import get_space
from vision_backbones.search.table import build_table


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python benchmarks/search_table.py", description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nasbench_resnet")
    parser.add_argument("--out", required=True, help="the JSON-lines table (resumed when it exists)")
    parser.add_argument("--limit", type=int_at_least(1), default=None, help="evaluate at most this many new members")
    args = parser.parse_args(argv)
    rows = build_table(get_space(args.space), args.out, limit=args.limit)
    print(f"{len(rows)} rows in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command("python benchmarks/search_table.py", lambda: main(sys.argv[1:])))
