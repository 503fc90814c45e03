"""``backbones pick --latency-ms 15``: the most accurate registered models that meet a latency budget here.

Measures the zoo on this machine and ranks it (:mod:`vision_backbones.budget.pick`: FLOPs pruning,
interleaved timing, the per-machine cache); prints the table, the Pareto front and, with ``--plot``
and ``--json``, writes the chart and every measured row.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from vision_backbones.budget.pick import (
    DEFAULT_CACHE,
    RUNTIMES,
    PickSettings,
    check_budget,
    check_cache,
    markdown,
    measure_zoo,
    memory_mb,
    rank,
    render,
    write_plot,
)
from vision_backbones.cli import ArgumentParser, int_at_least
from vision_backbones.io import check_output_file, write_json
from vision_backbones.measure.machine import cpu_model
from vision_backbones.measure.predictor import DEFAULT_CACHE as PREDICTOR_CACHE


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="backbones pick", description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, required=True, help="latency budget per call, milliseconds")
    parser.add_argument("--image-size", type=int_at_least(1), default=224)
    parser.add_argument("--batch", type=int_at_least(1), default=1)
    parser.add_argument(
        "--threads", type=int_at_least(1), default=torch.get_num_threads(), help="intra-op threads (default: PyTorch's)"
    )
    parser.add_argument("--runtime", choices=RUNTIMES, default="eager")
    parser.add_argument("--memory-mb", type=float, help="also require fp32 weights + peak activations <= this many MiB")
    parser.add_argument("--top", type=int_at_least(1), default=10, help="rows to print")
    parser.add_argument("--models", default="*", help="shell wildcard over model names (default: the whole zoo)")
    parser.add_argument("--rounds", type=int_at_least(1), default=5, help="interleaved timing rounds")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time (what `backbones profile` reports) or this process's CPU time (steadier on a busy machine, with --threads 1)",
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"results cache (default {DEFAULT_CACHE})")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument(
        "--measure-all",
        action="store_true",
        help="time every model (FLOPs-pruned) instead of predicting the zoo and timing the ones near the budget",
    )
    parser.add_argument(
        "--predictor-cache",
        type=Path,
        default=PREDICTOR_CACHE,
        help=f"the kernel latency predictor of this machine (default {PREDICTOR_CACHE}; built there when missing or stale)",
    )
    parser.add_argument("--refresh", action="store_true", help="measure again, replacing cached figures")
    parser.add_argument("--plot", type=Path, metavar="F.png", help="latency vs top-1 chart with the Pareto front")
    parser.add_argument("--json", type=Path, metavar="F", help="every measured row and the ranking")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    from vision_backbones.progress import progress_bar
    from vision_backbones.registry import list_models

    args = build_parser().parse_args(argv)
    check_budget(args.latency_ms, args.memory_mb)  # the API's own check: the same line from Python
    # every output path before anything is measured: a folder or a wrong suffix is one line, not [Errno 21]
    for flag, path, suffix in (("--plot", args.plot, ".png"), ("--json", args.json, ".json")):
        if path is not None:
            check_output_file(flag, path, (suffix,))
    if not args.no_cache:
        check_output_file("--cache", args.cache, (".json",))
    names = list_models(args.models)
    if not names:
        raise ValueError(f"--models {args.models!r} matches no registered model; see `backbones list`")
    settings = PickSettings(
        image_size=args.image_size,
        batch=args.batch,
        threads=args.threads,
        runtime=args.runtime,
        rounds=args.rounds,
        clock=args.clock,
    )
    progress = progress_bar()
    with progress:
        task = progress.add_task("pick", total=len(names))

        def report(text: str, done: int, total: int) -> None:
            progress.update(task, description=text, completed=done, total=total)

        predictor = None
        if not args.no_cache:
            check_cache(args.cache, settings)  # a corrupt cache: its one line now, not after building the predictor
        if not args.measure_all and args.runtime == "eager":
            from vision_backbones.measure.predictor_build import load_or_build

            check_output_file("--predictor-cache", args.predictor_cache, (".json",))
            predictor = load_or_build(
                args.predictor_cache,
                threads=args.threads,  # predicted in CPU time (steadier); candidates measured in --clock
                on_progress=lambda label, i, n: report(f"building the latency predictor: {label}", i, n),
            )
        measured = measure_zoo(
            names,
            args.latency_ms,
            settings,
            cache=None if args.no_cache else args.cache,
            refresh=args.refresh,
            on_progress=report,
            predictor=predictor,
        )
    ranking = rank(measured, args.latency_ms, args.memory_mb)
    load = measured["load_average"]
    statuses = [r["status"] for r in measured["models"].values()]
    print(
        f"{len(names)} models: {sum(s == 'measured' for s in statuses)} timed "
        f"({measured['timed_now']} now, the rest from the cache), {sum(s == 'predicted' for s in statuses)} predicted only, "
        f"{sum(s.startswith('pruned') for s in statuses)} pruned by FLOPs "
        f"(peak {measured['peak_gflops_per_second']:.0f} GFLOP/s here), {sum(s.startswith(('needs', 'cannot')) for s in statuses)} not runnable; "
        f"{measured['seconds']:.0f} s; load average {load['before'][0]:.1f} -> {load['after'][0]:.1f} on {os.cpu_count()} CPUs; {cpu_model()}"
    )
    written = []
    if args.json:
        names_only = {k: [r["name"] for r in v] if k != "front" else v for k, v in ranking.items()}
        written.append(
            write_json(args.json, {**measured, "budget_ms": args.latency_ms, "ranking": names_only}, indent=1)
        )
    if args.plot:
        written.append(write_plot(measured, ranking, args.latency_ms, args.plot))
    for path in written:
        print(f"wrote {path}")
    if not ranking["meeting"]:
        closest = ranking["closest"]
        if not closest:
            raise ValueError(
                f"no model meets --latency-ms {args.latency_ms:g} and none could be timed at these settings"
            )
        nearest = ", ".join(
            f"{r['name']} {r['latency_ms']:.2f} ms" + (f" / {memory_mb(r):.0f} MB" if args.memory_mb else "")
            for r in closest[:3]
        )
        limit = f" and --memory-mb {args.memory_mb:g}" if args.memory_mb else ""
        raise ValueError(f"no model meets --latency-ms {args.latency_ms:g}{limit} here; the closest: {nearest}")
    if args.markdown:
        print(markdown(measured, ranking, args.top))
    else:
        Console(width=200).print(render(measured, ranking, args.latency_ms, args.top))
    print(
        "Pareto front (latency vs top-1, every timed model): "
        + " -> ".join(
            f"{n} ({measured['models'][n]['latency_ms']:.1f} ms, {measured['models'][n]['top1']:.1f} %)"
            for n in ranking["front"]
        )
    )
    print(
        "top-1: the best published checkpoint converting to the model (its eval size in brackets; the latency is at "
        f"{args.image_size}px with the registered architecture)."
    )
    return 0
