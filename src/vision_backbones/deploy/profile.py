"""Parameters, FLOPs, activation memory and speed of models: ``backbones profile NAME [NAME...]``.

Every model is measured the same way: FLOPs on meta tensors (the seed's convention and 2 x MACs,
per feature level and in total), activation memory of an eval forward (peak bytes alive beyond the
weights and the input) and of a training step (bytes saved for backward), then timings with
warm-up and several repetitions, reported as median and spread (quartiles, min/max):

* latency of one eval forward and of one training step (forward + backward + SGD step) at
  ``batch_size`` (1 by default);
* throughput (images/s) of both at ``throughput_batch``.

``--plot F.png`` draws latency against FLOPs (and against published ImageNet top-1 where the
model carries that figure) with the Pareto front marked.
"""

from __future__ import annotations

import argparse
import copy
import csv
import functools
import io
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from vision_backbones.io import atomic_write
from vision_backbones.measure.machine import cpu_model, isa_flags
from vision_backbones.measure.memory import LiveActivationMemory, SavedForBackward
from vision_backbones.measure.steps import DTYPES, autocast, training_step
from vision_backbones.measure.timing import num_threads, summarize, time_calls


# --------------------------------------------------------------------------------------------- FLOPs


def level_flops(name: str, *, image_size: int) -> dict[str, Any]:
    """FLOPs of the features backbone at batch 1: the seed's convention and 2 x MACs, per level."""
    return copy.deepcopy(_level_flops(name, image_size))


@functools.lru_cache(maxsize=64)
def _level_flops(name: str, image_size: int) -> dict[str, Any]:
    from vision_backbones.flops import count_flops
    from vision_backbones.registry import build_on_meta

    model = build_on_meta(name, features_only=True)
    x = torch.empty(1, model.in_channels, image_size, image_size, device="meta")
    counted = count_flops(model, x)
    plain = FlopCounterMode(display=False, depth=None)
    with plain, torch.no_grad():
        model.eval()(x)
    plain_per_module = {key: sum(ops.values()) for key, ops in plain.get_flop_counts().items()}
    root = type(model).__name__
    # A head conv that belongs to the last level (the default) counts in that level's FLOPs.
    last = len(model.stages) - 1
    with_head = model.head_conv is not None and model.head_conv_level

    def per_level(counts: dict[str, int]) -> list[int]:
        levels = [counts.get(f"{root}.stages.{i}", 0) for i in range(last + 1)]
        levels[last] += counts.get(f"{root}.head_conv", 0) if with_head else 0
        return levels

    return {
        "params": sum(p.numel() for p in model.parameters()),
        "flops": counted.total,
        "flops_2x_macs": 2 * counted.macs,
        "stem_flops": counted.per_module.get(f"{root}.stem", 0),
        "level_flops": per_level(counted.per_module),
        "level_flops_2x_macs": per_level(plain_per_module),
        "level_strides": list(model.level_strides),
    }


# --------------------------------------------------------------------------------------------- profile


def _prefixed(prefix: str, stats: dict[str, float] | None, unit: str) -> dict[str, float | None]:
    keys = ("median", "q1", "q3", "min", "max")
    if stats is None:
        return {f"{prefix}_{unit}": None, **{f"{prefix}_{k}_{unit}": None for k in keys[1:]}}
    return {f"{prefix}_{unit}": stats["median"], **{f"{prefix}_{k}_{unit}": stats[k] for k in keys[1:]}}


def profile_model(
    name: str,
    *,
    image_size: int = 224,
    batch_size: int = 1,
    throughput_batch: int = 16,
    dtype: str = "fp32",
    channels_last: bool = False,
    threads: int | None = None,
    repeats: int = 5,
    warmup: int = 2,
    num_classes: int = 1000,
    speed: bool = True,
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure one registered model; a flat dict (per-level FLOPs as lists).

    Params and FLOPs are the backbone's (no classifier head, like ``model_info``), per image.
    ``eval_activation_bytes``: peak bytes alive during an eval forward at ``batch_size`` beyond the
    weights and the input; ``train_saved_bytes``: bytes autograd keeps for backward in a training
    forward at ``batch_size`` (with bf16 autocast this includes the bf16 weight copies it saves). Latencies are milliseconds per call at ``batch_size``; throughputs are
    images/s at ``throughput_batch``. ``speed=False`` skips the timings (they are then ``None``).
    A training step that cannot run (e.g. batch norm on a 1x1 map at batch 1) gives ``None`` and
    the reason in ``train_error``. ``cpu``, ``isa`` and ``torch_cpu_capability`` record the machine
    (:mod:`vision_backbones.measure.machine`).
    """
    from vision_backbones.published import PUBLISHED
    from vision_backbones.registry import create_model, get_entry

    phase = on_phase or (lambda _: None)
    entry = get_entry(name)  # unknown names raise ValueError with suggestions
    autocast(dtype)  # validates dtype
    for label, value in (("image_size", image_size), ("batch_size", batch_size), ("throughput_batch", throughput_batch), ("repeats", repeats)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    phase("FLOPs")
    result: dict[str, Any] = {
        "name": name,
        "family": entry.family,
        "image_size": image_size,
        "batch_size": batch_size,
        "throughput_batch": throughput_batch,
        "dtype": dtype,
        "channels_last": channels_last,
        "threads": threads if threads is not None else torch.get_num_threads(),
        "cpu": cpu_model(),
        "isa": isa_flags(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **level_flops(name, image_size=image_size),
    }
    published = PUBLISHED.get(name)
    result["published_top1"] = published.top1 if published is not None else None

    with num_threads(threads):
        torch.manual_seed(0)
        model = create_model(name, num_classes=num_classes).to(memory_format=memory_format)
        result["params_with_head"] = sum(p.numel() for p in model.parameters())
        in_channels = model.in_channels
        model.eval().check_input(torch.empty(1, in_channels, image_size, image_size, device="meta"))  # size only: a training step that cannot run is reported in train_error

        def batch(size: int) -> tuple[Tensor, Tensor]:
            x = torch.randn(size, in_channels, image_size, image_size).contiguous(memory_format=memory_format)
            return x, torch.randint(0, num_classes, (size,))

        weights = [*model.parameters(), *model.buffers()]
        x, target = batch(batch_size)

        phase("memory")
        model.eval()
        tracker = LiveActivationMemory(ignore=[*weights, x])
        with torch.no_grad(), autocast(dtype), tracker:
            model(x)
        result["eval_activation_bytes"] = tracker.peak
        model.train()
        saved = SavedForBackward(ignore=[*weights, x])
        result["train_error"] = None
        try:
            with saved, autocast(dtype):
                output = model(x)
            result["train_saved_bytes"] = saved.bytes
            del output
        except (RuntimeError, ValueError) as error:  # e.g. batch norm on one value per channel
            result["train_saved_bytes"] = None
            result["train_error"] = str(error).splitlines()[0]

        timings: dict[str, dict[str, float] | None] = {"eval_latency": None, "eval_throughput": None, "train_latency": None, "train_throughput": None}
        if speed:
            big_x, big_target = batch(throughput_batch)
            model.eval()
            with torch.inference_mode(), autocast(dtype):
                phase("eval latency")
                timings["eval_latency"] = summarize([t * 1e3 for t in time_calls(lambda: model(x), repeats=repeats, warmup=warmup)])
                phase("eval throughput")
                times = time_calls(lambda: model(big_x), repeats=repeats, warmup=warmup)
                timings["eval_throughput"] = summarize([throughput_batch / t for t in times])
            if result["train_error"] is None:
                model.train()
                try:
                    phase("train latency")
                    step = training_step(model, x, target, dtype=dtype)
                    timings["train_latency"] = summarize([t * 1e3 for t in time_calls(step, repeats=repeats, warmup=max(1, warmup))])
                    phase("train throughput")
                    step = training_step(model, big_x, big_target, dtype=dtype)
                    times = time_calls(step, repeats=repeats, warmup=max(1, warmup))
                    timings["train_throughput"] = summarize([throughput_batch / t for t in times])
                except (RuntimeError, ValueError) as error:
                    result["train_error"] = str(error).splitlines()[0]
        result.update(_prefixed("eval_latency", timings["eval_latency"], "ms"))
        result.update(_prefixed("eval_throughput", timings["eval_throughput"], "ips"))
        result.update(_prefixed("train_latency", timings["train_latency"], "ms"))
        result.update(_prefixed("train_throughput", timings["train_throughput"], "ips"))
    return result


# --------------------------------------------------------------------------------------------- output


def _csv_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return "" if value is None else value


def write_csv(results: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    columns: list[str] = []
    for row in results:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in results:
        writer.writerow({key: _csv_value(row.get(key)) for key in columns})
    return atomic_write(path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))


def write_json(results: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    text = json.dumps(list(results), indent=2) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def pareto_front(points: Sequence[tuple[float, float]], *, maximize_y: bool) -> list[int]:
    """Indices of the points no other point beats: lower x and better y (or equal in one of them).

    Sorted by x. ``maximize_y``: higher y is better (accuracy); else lower y is better.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1] if maximize_y else points[i][1]))
    front: list[int] = []
    best = -math.inf if maximize_y else math.inf
    for i in order:
        y = points[i][1]
        if (y > best) if maximize_y else (y < best):
            front.append(i)
            best = y
    return front


def _label_points(ax: Any, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str]) -> None:
    for x, y, label in zip(xs, ys, labels):
        ax.annotate(label, (x, y), xytext=(6, 4), textcoords="offset points", fontsize=9)


def write_plot(results: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Latency vs GFLOPs (Pareto front: most compute per ms) and, where two or more models carry a
    published top-1, top-1 vs latency (front: best accuracy for the latency); else throughput bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in results if r.get("eval_latency_ms") is not None]
    if not timed:
        raise ValueError("nothing to plot: no model has an eval latency")
    with_top1 = [r for r in timed if r.get("published_top1") is not None]
    if len(with_top1) < 2:  # one point makes no accuracy chart; its top-1 goes in its label instead
        with_top1 = []
    first = timed[0]
    setting = f"{first['image_size']}px, batch {first['batch_size']}, {first['dtype']}, {first['threads']} thread(s){', channels_last' if first['channels_last'] else ''}"

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), dpi=110)
    gflops = [r["flops"] / 1e9 for r in timed]
    latency = [r["eval_latency_ms"] for r in timed]
    names = [r["name"] + (f" ({r['published_top1']:.1f}% top-1)" if r.get("published_top1") is not None else "") for r in timed]
    params_m = [r["params"] / 1e6 for r in timed]
    sizes = [30 + 6 * p for p in params_m]
    left.scatter(gflops, latency, s=sizes, alpha=0.6, color="tab:blue", edgecolor="black", label="model (area ~ params)")
    for r, x, y in zip(timed, gflops, latency):
        if r.get("eval_latency_q1_ms") is not None:
            left.plot([x, x], [r["eval_latency_q1_ms"], r["eval_latency_q3_ms"]], color="tab:blue", lw=2)
    # For latency vs compute the front is "no other model does at least as much compute in less time".
    front = _compute_front(gflops, latency)
    if len(front) > 1:
        left.plot([gflops[i] for i in front], [latency[i] for i in front], "--", color="tab:red", label="Pareto front: most GFLOPs per ms")
    _label_points(left, gflops, latency, names)
    if max(gflops) / max(min(gflops), 1e-9) > 20:
        left.set_xscale("log")
    else:
        left.set_xlim(0, max(gflops) * 1.25)
    if max(latency) / max(min(latency), 1e-9) > 20:
        left.set_yscale("log")
    else:  # from zero, and scaled to the medians: one noisy IQR bar must not squash the chart
        left.set_ylim(0, max(latency) * 1.3)
    left.set_xlabel(f"GFLOPs per image at {first['image_size']}px (seed convention)")
    left.set_ylabel(f"eval latency, ms (median, bar = IQR), batch {first['batch_size']}")
    left.set_title("Latency vs compute")
    left.grid(True, alpha=0.3)
    left.legend(loc="upper left", fontsize=8)

    if with_top1:
        xs = [r["eval_latency_ms"] for r in with_top1]
        ys = [r["published_top1"] for r in with_top1]
        right.scatter(xs, ys, s=60, color="tab:green", edgecolor="black")
        front = pareto_front(list(zip(xs, ys)), maximize_y=True)
        if len(front) > 1:
            right.plot([xs[i] for i in front], [ys[i] for i in front], "--", color="tab:red", label="Pareto front")
            right.legend(loc="lower right", fontsize=8)
        _label_points(right, xs, ys, [r["name"] for r in with_top1])
        right.set_xlabel(f"eval latency, ms, batch {first['batch_size']}")
        right.set_ylabel("published ImageNet top-1, %")
        missing = [r["name"] for r in timed if r.get("published_top1") is None]
        note = f"\n(no published top-1: {', '.join(missing)})" if missing else ""
        right.set_title("Accuracy vs latency" + note, fontsize=10)
        right.set_xlim(0, max(xs) * 1.3)  # latency from zero: small differences stay small
        spread = max(ys) - min(ys)
        right.set_ylim(min(ys) - max(1.0, 0.3 * spread), max(ys) + max(1.0, 0.3 * spread))
    else:
        import numpy as np

        rows = np.arange(len(timed))
        height = 0.4
        evals = [r.get("eval_throughput_ips") or 0.0 for r in timed]
        trains = [r.get("train_throughput_ips") or 0.0 for r in timed]
        right.barh(rows - height / 2, evals, height, label="eval forward", color="tab:blue")
        right.barh(rows + height / 2, trains, height, label="training step", color="tab:orange")
        right.set_yticks(rows, [r["name"] for r in timed])
        right.invert_yaxis()
        right.set_xlabel(f"images/s at batch {first['throughput_batch']} (median)")
        right.set_title("Throughput (an accuracy chart needs 2+ models with a published top-1)", fontsize=10)
        right.legend(loc="lower right", fontsize=8)
    right.grid(True, alpha=0.3)
    fig.suptitle(f"backbones profile: {setting}; {first.get('cpu', 'unknown CPU')}; torch {torch.__version__}")
    fig.tight_layout()

    def save(tmp: str) -> None:
        fig.savefig(tmp, format="png")

    try:
        return atomic_write(path, save)
    finally:
        plt.close(fig)


def _compute_front(gflops: Sequence[float], latency: Sequence[float]) -> list[int]:
    """Models no other beats with at least as much compute in no more time, sorted by GFLOPs."""
    front = [i for i in range(len(gflops)) if not any(
        j != i and gflops[j] >= gflops[i] and latency[j] <= latency[i] and (gflops[j], latency[j]) != (gflops[i], latency[i])
        for j in range(len(gflops)))]
    return sorted(front, key=lambda i: gflops[i])


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
        ("model", "left"), ("params (M)", "right"), ("GFLOPs", "right"), ("2xMACs (G)", "right"),
        ("GFLOPs per level", "left"), (f"act. eval (MB, b{first['batch_size']})", "right"),
        (f"act. train (MB, b{first['batch_size']})", "right"), ("eval ms (±IQR/2)", "right"),
        ("eval img/s", "right"), ("train step ms", "right"), ("train img/s", "right"),
    ]
    for column, justify in columns:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in results:
        train_mb = "-" if r["train_saved_bytes"] is None else f"{r['train_saved_bytes'] / 2**20:.1f}"
        table.add_row(
            r["name"], f"{r['params'] / 1e6:.2f}", f"{r['flops'] / 1e9:.2f}", f"{r['flops_2x_macs'] / 1e9:.2f}",
            " ".join(f"{f / 1e9:.2f}" for f in r["level_flops"]), f"{r['eval_activation_bytes'] / 2**20:.1f}", train_mb,
            _fmt_stat(r, "eval_latency", "ms", 1), _fmt_stat(r, "eval_throughput", "ips", 1),
            _fmt_stat(r, "train_latency", "ms", 1), _fmt_stat(r, "train_throughput", "ips", 1),
        )
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backbones profile", description=__doc__.splitlines()[0])
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vision_backbones.registry import build_on_meta, get_entry

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        for name in args.names:  # every name and size checked before minutes of measuring
            get_entry(name)
            smallest = build_on_meta(name, features_only=True).min_input_size
            if args.image_size < smallest:
                raise ValueError(f"{name} takes inputs of at least {smallest}x{smallest}, got --image-size {args.image_size}")
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        results: list[dict[str, Any]] = []
        progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True,
        )
        with progress:
            task = progress.add_task("profiling", total=len(args.names))
            for name in args.names:
                def phase(step: str, name: str = name) -> None:
                    progress.update(task, description=f"{name}: {step}")

                results.append(profile_model(
                    name, image_size=args.image_size, batch_size=args.batch_size, throughput_batch=args.throughput_batch,
                    dtype=args.dtype, channels_last=args.channels_last, threads=args.threads, repeats=args.repeats,
                    warmup=args.warmup, speed=not args.no_speed, on_phase=phase,
                ))
                progress.advance(task)
    except ValueError as error:
        print(f"backbones profile: {error}", file=sys.stderr)
        return 2
    Console(width=200).print(render_table(results))
    for r in results:
        if r.get("train_error"):
            print(f"{r['name']}: no training step: {r['train_error']}")
    print("GFLOPs: seed convention, per image, backbone only. Memory: eval = peak activation bytes alive in a forward; "
          "train = bytes saved for backward.")
    written = []
    if args.csv:
        written.append(write_csv(results, args.csv))
    if args.json:
        written.append(write_json(results, args.json))
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
