"""``backbones profile NAME [NAME...]``: parameters, FLOPs, activation memory and speed of models.

What is measured and how: :mod:`vision_backbones.measure.profile`. ``--csv``/``--json`` keep every
figure; ``--plot F.png`` draws latency against FLOPs (and against published ImageNet top-1 where the
model carries that figure) with the Pareto front marked.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision_backbones.cli import ArgumentParser
from vision_backbones.io import write_json
from vision_backbones.measure.profile import profile_model, write_csv
from vision_backbones.measure.profile_plot import write_plot
from vision_backbones.measure.steps import DTYPES


def _fmt_stat(row: dict[str, Any], prefix: str, unit: str, precision: int) -> str:
    median = row.get(f"{prefix}_{unit}")
    if median is None:
        return "-"
    q1, q3 = row[f"{prefix}_q1_{unit}"], row[f"{prefix}_q3_{unit}"]
    return f"{median:.{precision}f} ±{(q3 - q1) / 2:.{precision}f}"


def render_table(results: Sequence[dict[str, Any]]) -> Any:
    from rich.table import Table

    first = results[0]
    title = (
        f"backbones profile at {first['image_size']}px, {first['dtype']}, {first['threads']} thread(s)"
        f"{', channels_last' if first['channels_last'] else ''}: latency at batch {first['batch_size']}, "
        f"throughput at batch {first['throughput_batch']}; {first.get('cpu', 'unknown CPU')}"
        f" ({' '.join(first.get('isa') or []) or 'no ISA flags read'})"
    )
    table = Table(title=title)
    columns = [
        ("model", "left"),
        ("params (M)", "right"),
        ("GFLOPs", "right"),
        ("2xMACs (G)", "right"),
        ("GFLOPs per level", "left"),
        (f"act. eval (MB, b{first['batch_size']})", "right"),
        (f"act. train (MB, b{first['batch_size']})", "right"),
        ("eval ms (±IQR/2)", "right"),
        ("eval img/s", "right"),
        ("train step ms", "right"),
        ("train img/s", "right"),
    ]
    for column, justify in columns:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in results:
        train_mb = "-" if r["train_saved_bytes"] is None else f"{r['train_saved_bytes'] / 2**20:.1f}"
        table.add_row(
            r["name"],
            f"{r['params'] / 1e6:.2f}",
            f"{r['flops'] / 1e9:.2f}",
            f"{r['flops_2x_macs'] / 1e9:.2f}",
            " ".join(f"{f / 1e9:.2f}" for f in r["level_flops"]),
            f"{r['eval_activation_bytes'] / 2**20:.1f}",
            train_mb,
            _fmt_stat(r, "eval_latency", "ms", 1),
            _fmt_stat(r, "eval_throughput", "ips", 1),
            _fmt_stat(r, "train_latency", "ms", 1),
            _fmt_stat(r, "train_throughput", "ips", 1),
        )
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="backbones profile", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", metavar="NAME", help="registered model names (see `backbones list`)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=1, help="batch for latency and activation memory (default 1)")
    parser.add_argument("--throughput-batch", type=int, default=16, help="batch for images/s (default 16)")
    parser.add_argument("--dtype", choices=DTYPES, default="fp32", help="bf16: CPU autocast to bfloat16")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: PyTorch's)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before each measurement")
    parser.add_argument("--no-speed", action="store_true", help="only parameters, FLOPs and memory")
    parser.add_argument("--csv", type=Path, metavar="F")
    parser.add_argument("--json", type=Path, metavar="F")
    parser.add_argument("--plot", type=Path, metavar="F.png", help="latency vs FLOPs (and vs published top-1) chart")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    from vision_backbones.progress import progress_bar
    from vision_backbones.registry import build_on_meta, get_entry

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        for name in args.names:  # every name and size checked before minutes of measuring
            get_entry(name)
            smallest = build_on_meta(name, features_only=True).min_input_size
            if args.image_size < smallest:
                raise ValueError(
                    f"{name} takes inputs of at least {smallest}x{smallest}, got --image-size {args.image_size}"
                )
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        results: list[dict[str, Any]] = []
        progress = progress_bar()
        with progress:
            task = progress.add_task("profiling", total=len(args.names))
            for name in args.names:

                def phase(step: str, name: str = name) -> None:
                    progress.update(task, description=f"{name}: {step}")

                results.append(
                    profile_model(
                        name,
                        image_size=args.image_size,
                        batch_size=args.batch_size,
                        throughput_batch=args.throughput_batch,
                        dtype=args.dtype,
                        channels_last=args.channels_last,
                        threads=args.threads,
                        repeats=args.repeats,
                        warmup=args.warmup,
                        speed=not args.no_speed,
                        on_phase=phase,
                    )
                )
                progress.advance(task)
    except ValueError as error:
        print(f"backbones profile: {error}", file=sys.stderr)
        return 2
    Console(width=200).print(render_table(results))
    for r in results:
        if r.get("train_error"):
            print(f"{r['name']}: no training step: {r['train_error']}")
    print(
        "GFLOPs: seed convention, per image, backbone only. Memory: eval = peak activation bytes alive in a forward; "
        "train = bytes saved for backward."
    )
    written = []
    if args.csv:
        written.append(write_csv(results, args.csv))
    if args.json:
        written.append(write_json(args.json, list(results)))
    if args.plot:
        try:
            written.append(write_plot(results, args.plot))
        except ImportError:
            print("backbones profile: --plot needs matplotlib: pip install matplotlib", file=sys.stderr)
            return 2
        except ValueError as error:
            print(f"backbones profile: {error}", file=sys.stderr)
            return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
