#!/usr/bin/env python
"""The alpha/beta/gamma grid on the proxy (``vision_backbones.budget.grid``): resumable; writes ``OUT/grid.json`` and ``OUT/grid.md``.

``python benchmarks/budget/grid.py --base mnasnet0_5 --out benchmarks/budget/grid``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from vision_backbones.budget.grid import check_grid_arguments, markdown, run_grid
from vision_backbones.io import atomic_write
from vision_backbones.search.data import DATA_HELP


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
    args = parser.parse_args(argv)
    check_grid_arguments(
        args.base,
        args.out,
        seeds=args.seeds,
        epochs=args.epochs,
        train_images=args.train_images,
        tolerance=args.tolerance,
        data=args.data,
    )  # before the folder exists: a refused grid leaves nothing
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = run_grid(
        args.base,
        args.out,
        seeds=args.seeds,
        epochs=args.epochs,
        train_images=args.train_images,
        tolerance=args.tolerance,
        data=args.data,
    )
    header = (
        f"# alpha / beta / gamma grid on {args.base} (proxy: {'MNIST-5k' if args.data == 'mnist' else args.data}, {args.train_images} training images, {args.epochs} epochs, seeds {args.seeds})\n\n"
        f"{describe(machine_info())}; {time.perf_counter() - start:.0f} s this run. One seed per candidate: differences under ~1 % are noise."
    )
    text = markdown(args.base, rows, header)
    atomic_write(args.out / "grid.md", lambda tmp: Path(tmp).write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
