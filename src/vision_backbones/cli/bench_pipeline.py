"""The training input pipeline benchmark (:mod:`vision_backbones.train.bench_pipeline`) from the command line.

python -m vision_backbones.cli.bench_pipeline [--workers 0 2] [--rounds 5] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from vision_backbones.train.bench_pipeline import (
    ALL_STEPS,
    REFERENCE,
    REFERENCE_NEAREST,
    measure_epoch,
    prepare_data,
    report,
    run_rounds,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vision_backbones.cli.bench_pipeline",
        description="Images/s of the training input pipeline vs a plain torchvision ImageFolder + transforms.v2 pipeline.",
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[0, 2], help="loader processes (0: decode in the main process)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument(
        "--steps",
        nargs="+",
        default=[REFERENCE, REFERENCE_NEAREST, *ALL_STEPS],
        choices=[REFERENCE, REFERENCE_NEAREST, *ALL_STEPS],
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vision_backbones_pipeline_bench",
        help="benchmark images (made once)",
    )
    parser.add_argument(
        "--results", type=Path, default=None, help="JSON of the rounds so far (default: DATA/results.json); resumed"
    )
    parser.add_argument(
        "--write",
        type=Path,
        default=None,
        help="Markdown file whose 'pipeline' section gets the table (benchmarks/RESULTS.md)",
    )
    parser.add_argument(
        "--measure", default=None, help=argparse.SUPPRESS
    )  # one epoch of one step in this process, as JSON (for profiling)
    args = parser.parse_args(argv)
    if args.measure is not None:
        print(json.dumps(measure_epoch(args.measure, args.data, args.workers[0])))
        return 0
    prepare_data(args.data, classes=args.classes, per_class=args.per_class)
    import torchvision.datasets  # noqa: F401  (imported once here, not in every forked measurement)

    import vision_backbones.train.datamodule  # noqa: F401

    results_path = args.results or args.data / "results.json"
    results = run_rounds(args.data, results_path, workers=args.workers, rounds=args.rounds, names=args.steps)
    text = report(results, args.data)
    print(text)
    if args.write is not None:
        from vision_backbones.measure.report import replace_section

        replace_section(args.write, "pipeline", text)
        print(f"wrote the 'pipeline' section of {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
