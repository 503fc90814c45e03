#!/usr/bin/env python
"""The alpha/beta/gamma grid on the proxy (``vision_backbones.budget.grid``): resumable; writes ``OUT/grid.json`` and ``OUT/grid.md``.

``python benchmarks/budget/grid.py --base mnasnet0_5 --out benchmarks/budget/grid``

With ``--compare 2 4`` it then trains EfficientNet's, dWr's and uniform scaling of the base at 2x and
4x FLOPs on the same proxy and seeds (``OUT/compare.json``), and ``--latency`` times those networks
at their deploy sizes against the base, interleaved (run it alone), into ``OUT/compare.md``.
The plateaued grid: ``--seeds 0 1 2 --epochs 20 --train-images 2000 --workers 2 --compare 2 4``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision_backbones.budget.grid import (
    check_grid_arguments,
    compare_markdown,
    markdown,
    measure_rule_latencies,
    run_comparison,
    run_grid,
)
from vision_backbones.io import atomic_write, read_json
from vision_backbones.search.data import DATA_HELP


def _trained(rows: list[dict[str, Any]]) -> str:
    """How much of the grid has trained, and for how long (summed over the trials, one core each)."""
    trials = [t for r in rows for t in r.get("trials", {}).values()]
    finished = sum("val_acc1" in r for r in rows)
    return f"{finished} of {len(rows)} rows finished, {len(trials)} trials, {sum(t['seconds'] for t in trials) / 60:.0f} core-minutes of training"


def main(argv: Sequence[str] | None = None) -> int:
    from vision_backbones.measure.machine import describe, machine_info

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", default="mnasnet0_5")
    parser.add_argument(
        "--data",
        default="mnist",
        help=DATA_HELP,
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/budget/grid"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument(
        "--tolerance", type=float, default=0.04, help="keep candidates with |a b^2 g^2 - 2| <= 2 x this"
    )
    parser.add_argument("--workers", type=int, default=1, help="trials at a time (Ray, one core each)")
    parser.add_argument(
        "--compare", type=float, nargs="*", default=[], help="FLOPs factors for the scaling-rule comparison"
    )
    parser.add_argument("--latency", action="store_true", help="time the compared networks (alone on the machine)")
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing: write the reports from the trials already saved"
    )
    args = parser.parse_args(argv)
    settings = {"seeds": args.seeds, "epochs": args.epochs, "train_images": args.train_images, "data": args.data}
    # before the folder exists: a refused grid leaves nothing
    check_grid_arguments(args.base, args.out, tolerance=args.tolerance, **settings)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        rows = list(read_json(args.out / "grid.json").values())
    else:
        rows = run_grid(args.base, args.out, tolerance=args.tolerance, workers=args.workers, **settings)
    written = f"Written on {describe(machine_info())}" + (
        " from trials saved earlier (--report-only: they may have trained on another machine; latency, when "
        "asked, is measured here)"
        if args.report_only
        else ""
    )
    header = (
        f"# alpha / beta / gamma grid on {args.base} (proxy: {'MNIST-5k' if args.data == 'mnist' else args.data}, {args.train_images} training images, {args.epochs} epochs, seeds {args.seeds})\n\n"
        f"{written}; {_trained(rows)}. Ranked by validation top-1, mean ± std over the seeds."
    )
    text = markdown(args.base, rows, header)
    atomic_write(args.out / "grid.md", lambda tmp: Path(tmp).write_text(text))
    print(text)
    if args.compare:
        if args.report_only:
            rows = [r for r in read_json(args.out / "compare.json").values() if r["factor"] in args.compare]
        else:
            rows = run_comparison(args.base, args.out, factors=args.compare, workers=args.workers, **settings)
        latencies = None
        if args.latency:
            import os

            load = os.getloadavg()[0]
            latencies = measure_rule_latencies(args.base, [r for r in rows if "val_acc1" in r])
            print(f"latency measured at load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
        header = (
            f"# Scaling rules on {args.base} at {', '.join(f'{f:g}x' for f in args.compare)} FLOPs (proxy as the grid: "
            f"{args.train_images} images, {args.epochs} epochs, seeds {args.seeds})\n\n{written}. "
            "FLOPs targets at 224 px (measured, bisection on phi); the proxy trains at 32 px x the rule's resolution. "
            "Latency: eager, batch 1, 1 thread, at the deploy size, median of interleaved rounds, ratio to the base at 224 px. "
            f"{_trained(rows)}."
        )
        text = compare_markdown(args.base, rows, latencies, header)
        atomic_write(args.out / "compare.md", lambda tmp: Path(tmp).write_text(text))
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
