"""``backbones pick --latency-ms 15``: the most accurate registered models that meet a latency budget here.

FLOPs do not predict speed on a given machine (ShuffleNet V2's point), so the picker measures:

1. FLOPs on meta tensors prune the models that could only meet the budget above this machine's
   peak: a dense 3x3 convolution is timed once and a model whose FLOPs would need more than
   ``PEAK_MARGIN`` times that rate to meet the budget is not built.
2. Each remaining model is built exactly as ``backbones profile`` builds it (``create_model(name,
   num_classes=1000)``, seed 0, eval, ``inference_mode``, the same threads) and called once; one
   that takes more than ``ONE_CALL_MARGIN`` times the budget is left out of the rounds.
3. The rest are timed in interleaved rounds (``measure.timing.interleaved_times``), in groups of
   models of similar speed so that the models whose order matters share the same machine load;
   the figure is the median over rounds.

Results are cached per machine and settings (CPU model, ISA flags, torch version, runtime, size,
batch, threads) in one JSON file written atomically after every group, so a second run (or one
that was interrupted) measures only what is missing. The published top-1 comes from
:mod:`vision_backbones.budget.accuracy`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from vision_backbones.cli import ArgumentParser, int_at_least
from vision_backbones.io import atomic_write
from vision_backbones.measure.machine import cpu_model, isa_flags
from vision_backbones.measure.timing import interleaved_times, num_threads, summarize

RUNTIMES = ("eager", "onnxruntime")
PEAK_MARGIN = 2.0  # no model runs at more than twice the rate of a dense 3x3 conv here
ONE_CALL_MARGIN = 3.0  # one warm call above 3x the budget: it will not meet it
GROUP_SIZE = 8
MIN_TIMED = 3  # models timed even when the FLOPs prune every one (so "the closest" is measured)
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vision_backbones" / "pick.json"


@dataclass(frozen=True)
class PickSettings:
    """What a latency figure depends on besides the model; the cache key."""

    image_size: int = 224
    batch: int = 1
    threads: int = 1
    runtime: str = "eager"
    rounds: int = 5
    clock: str = "wall"  # or "cpu": this process's CPU time, steadier on a shared machine with 1 thread

    def key(self) -> str:
        import onnxruntime  # noqa: F401  (its version matters only for that runtime)

        runtime = self.runtime if self.runtime == "eager" else f"onnxruntime {onnxruntime.__version__}"
        return (f"{cpu_model()} [{' '.join(isa_flags())}] | torch {torch.__version__} | {runtime} | "
                f"{self.image_size}px batch {self.batch} threads {self.threads} rounds {self.rounds} clock {self.clock}")


# ------------------------------------------------------------------------------------ measuring


def peak_gflops_per_second(threads: int) -> float:
    """GFLOP/s (2 x MACs) of a dense 256->256 3x3 conv on a 28x28 map: this machine's best case."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).eval()
    x = torch.randn(1, 256, 28, 28)
    flops = 2 * 256 * 256 * 9 * 28 * 28
    with num_threads(threads), torch.inference_mode():
        times = interleaved_times({"conv": lambda: conv(x)}, rounds=5, warmup=2)["wall"]["conv"]
    return flops / min(times) / 1e9


def model_flops(name: str, image_size: int) -> tuple[int, int]:
    """``(FLOPs, parameters)`` of the whole network (head included), on meta tensors."""
    from vision_backbones.flops import count_flops
    from vision_backbones.registry import build_on_meta

    model = build_on_meta(name, num_classes=1000)
    x = torch.empty(1, model.in_channels, image_size, image_size, device="meta")
    return count_flops(model, x).total, sum(p.numel() for p in model.parameters())


def build_runner(name: str, settings: PickSettings) -> tuple[Callable[[], object], int]:
    """The call ``backbones profile`` times (eager) or its ONNX Runtime twin, and the activation bytes."""
    from vision_backbones.measure.memory import LiveActivationMemory
    from vision_backbones.registry import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=1000).eval()
    x = torch.randn(settings.batch, model.in_channels, settings.image_size, settings.image_size)
    tracker = LiveActivationMemory(ignore=[*model.parameters(), *model.buffers(), x])
    with torch.no_grad(), tracker:
        model(x)
    if settings.runtime == "eager":
        def run() -> object:
            with torch.inference_mode():
                return model(x)

        return run, tracker.peak
    import onnxruntime as ort

    from vision_backbones.deploy.export import onnx_bytes

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes(model, x), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return (lambda: session.run(None, feed)), tracker.peak


def _load_cache(path: Path | None, key: str) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text()).get(key, {}))
    except (json.JSONDecodeError, AttributeError):
        raise ValueError(f"pick cache {str(path)!r} is not a JSON file this command wrote; delete it or pass --refresh") from None


def _save_cache(path: Path | None, key: str, results: dict[str, Any]) -> None:
    if path is None:
        return
    stored: dict[str, Any] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError:
            stored = {}
    stored[key] = results
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(stored, indent=1) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def measure_zoo(
    names: Sequence[str], budget_ms: float, settings: PickSettings, *, cache: Path | None = None, refresh: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Measure ``names`` (pruned as the module docstring says); ``{"models": {name: row}, ...}``."""
    from vision_backbones.budget.accuracy import published_top1
    from vision_backbones.registry import build_on_meta

    progress = on_progress or (lambda *_: None)
    key = settings.key()
    results: dict[str, Any] = {} if refresh else _load_cache(cache, key)
    started = time.perf_counter()
    load_before = os.getloadavg()
    peak = peak_gflops_per_second(settings.threads)
    rows: dict[str, dict[str, Any]] = {}
    to_time: list[str] = []
    for index, name in enumerate(names):
        progress(f"{name}: FLOPs", index, len(names))
        row: dict[str, Any] = {"name": name, "status": "measured"}
        found = published_top1(name)
        row.update({"top1": found.top1, "checkpoint": found.checkpoint, "top1_source": found.source, "top1_image_size": found.image_size,
                    "checkpoint_overrides": found.overrides} if found else {"top1": None})
        try:
            smallest = build_on_meta(name, features_only=True).min_input_size
            if settings.image_size < smallest:
                rows[name] = {**row, "status": f"needs inputs >= {smallest}px"}
                continue
            flops, params = model_flops(name, settings.image_size)
        except (RuntimeError, ValueError) as error:
            rows[name] = {**row, "status": f"cannot build: {str(error).splitlines()[0]}"}
            continue
        row.update(flops=flops * settings.batch, params=params, lower_bound_ms=1e3 * flops * settings.batch / (peak * 1e9))
        rows[name] = row
        cached = results.get(name)
        if cached and cached.get("flops") == row["flops"]:
            rows[name] = {**row, **{k: v for k, v in cached.items() if k not in row or k in ("status",)}, "cached": True}
        elif row["lower_bound_ms"] > PEAK_MARGIN * budget_ms:
            row["status"] = f"pruned by FLOPs (>= {row['lower_bound_ms']:.1f} ms at {peak:.0f} GFLOP/s)"
        else:
            to_time.append(name)

    if len(to_time) < MIN_TIMED:  # a budget below every model: time the cheapest few, to show the closest
        pruned = sorted((r for r in rows.values() if r["status"].startswith("pruned")), key=lambda r: r["lower_bound_ms"])
        for row in pruned[: MIN_TIMED - len(to_time)]:
            row["status"] = "measured"
            to_time.append(row["name"])
    estimates: dict[str, float] = {}
    runners: dict[str, Callable[[], object]] = {}
    for index, name in enumerate(to_time):  # one warm call each: the estimate that forms the groups
        progress(f"{name}: first call", index, len(to_time))
        try:
            run, activation = build_runner(name, settings)
            with num_threads(settings.threads):
                run()
                start = time.perf_counter()
                run()
                estimates[name] = 1e3 * (time.perf_counter() - start)
        except (RuntimeError, ValueError) as error:
            rows[name]["status"] = f"cannot run: {str(error).splitlines()[0]}"
            continue
        rows[name]["activation_bytes"] = activation
        if estimates[name] > ONE_CALL_MARGIN * budget_ms:
            rows[name].update(status="one call only (far over budget)", latency_ms=estimates[name])
            results[name] = rows[name]
        else:
            runners[name] = run
    ordered = sorted(runners, key=estimates.__getitem__)
    groups = [ordered[i : i + GROUP_SIZE] for i in range(0, len(ordered), GROUP_SIZE)]
    for index, group in enumerate(groups):
        progress(f"timing {', '.join(group[:3])}{'...' if len(group) > 3 else ''}", index, len(groups))
        with num_threads(settings.threads):
            timed = interleaved_times({n: runners[n] for n in group}, rounds=settings.rounds, warmup=1, min_time=0.05)
        for name in group:
            stats = summarize([1e3 * t for t in timed[settings.clock][name]])
            other = "cpu" if settings.clock == "wall" else "wall"
            rows[name].update(latency_ms=stats["median"], latency_q1_ms=stats["q1"], latency_q3_ms=stats["q3"], status="measured",
                              **{f"latency_{other}_ms": summarize([1e3 * t for t in timed[other][name]])["median"]})
            results[name] = rows[name]
            del runners[name]
        _save_cache(cache, key, results)
    _save_cache(cache, key, results)
    return {
        "settings": asdict(settings), "key": key, "peak_gflops_per_second": peak, "models": rows,
        "seconds": time.perf_counter() - started, "load_average": {"before": load_before, "after": os.getloadavg()},
        "timed_now": sum(1 for n in to_time if n in results and not rows[n].get("cached")),
    }


# ------------------------------------------------------------------------------------ ranking


def memory_mb(row: dict[str, Any]) -> float | None:
    """Weights (fp32) plus the peak activation bytes of one forward, in MiB."""
    if row.get("activation_bytes") is None or row.get("params") is None:
        return None
    return (4 * row["params"] + row["activation_bytes"]) / 2**20


def rank(measured: dict[str, Any], budget_ms: float, memory_limit_mb: float | None = None) -> dict[str, Any]:
    """Models meeting the budget ranked by published top-1 (unknown top-1 last, by latency), the
    Pareto front (latency vs top-1) over every timed model, and the closest ones over budget."""
    from vision_backbones.deploy.profile import pareto_front

    timed = [r for r in measured["models"].values() if r.get("latency_ms") is not None]

    def fits_memory(row: dict[str, Any]) -> bool:
        return memory_limit_mb is None or (memory_mb(row) is not None and memory_mb(row) <= memory_limit_mb)

    meeting = [r for r in timed if r["latency_ms"] <= budget_ms and fits_memory(r)]
    meeting.sort(key=lambda r: (r["top1"] is None, -(r["top1"] or 0), r["latency_ms"]))
    with_top1 = [r for r in timed if r["top1"] is not None]
    front_indices = pareto_front([(r["latency_ms"], r["top1"]) for r in with_top1], maximize_y=True)
    front = [with_top1[i]["name"] for i in front_indices]
    over = sorted((r for r in timed if r not in meeting), key=lambda r: r["latency_ms"])
    return {"meeting": meeting, "front": front, "closest": over[:5]}


def render(measured: dict[str, Any], ranking: dict[str, Any], budget_ms: float, top: int) -> Any:
    from rich.table import Table

    s = measured["settings"]
    table = Table(title=f"models within {budget_ms:g} ms ({s['runtime']}, {s['image_size']}px, batch {s['batch']}, "
                        f"{s['threads']} thread(s)), by published top-1; * = on the Pareto front")
    for column in ("#", "model", "top-1 %", "checkpoint (eval px)", "latency ms (IQR)", "GFLOPs", "params M", "memory MB"):
        table.add_column(column, justify="left" if column in ("model", "checkpoint (eval px)") else "right")
    for index, row in enumerate(ranking["meeting"][:top], 1):
        table.add_row(*_cells(index, row, ranking["front"]))
    return table


def _cells(index: int, row: dict[str, Any], front: Sequence[str]) -> list[str]:
    iqr = f" ({row['latency_q1_ms']:.1f}-{row['latency_q3_ms']:.1f})" if row.get("latency_q1_ms") is not None else " (1 call)"
    memory = memory_mb(row)
    return [
        str(index), row["name"] + (" *" if row["name"] in front else ""), "-" if row["top1"] is None else f"{row['top1']:.2f}",
        "-" if row["top1"] is None else f"{row['checkpoint']} ({row.get('top1_image_size') or '?'})",
        f"{row['latency_ms']:.2f}{iqr}", f"{row['flops'] / 1e9:.2f}", f"{row['params'] / 1e6:.2f}", "-" if memory is None else f"{memory:.0f}",
    ]


def markdown(measured: dict[str, Any], ranking: dict[str, Any], top: int) -> str:
    header = "| # | model | top-1 % | checkpoint (eval px) | latency ms (IQR) | GFLOPs | params M | memory MB |"
    lines = [header, "|" + "---|" * 8]
    lines += ["| " + " | ".join(_cells(i, row, ranking["front"])) + " |" for i, row in enumerate(ranking["meeting"][:top], 1)]
    return "\n".join(lines)


def write_plot(measured: dict[str, Any], ranking: dict[str, Any], budget_ms: float, path: Path) -> Path:
    """Latency (log) vs published top-1 of every timed model, the Pareto front and the budget line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in measured["models"].values() if r.get("latency_ms") is not None and r["top1"] is not None]
    if not rows:
        raise ValueError("nothing to plot: no timed model has a published top-1")
    s = measured["settings"]
    fig, ax = plt.subplots(figsize=(11, 7), dpi=110)
    meeting = {r["name"] for r in ranking["meeting"]}
    for row in rows:
        color = "tab:green" if row["name"] in meeting else "tab:gray"
        ax.scatter(row["latency_ms"], row["top1"], s=20 + 3 * row["params"] / 1e6, color=color, alpha=0.7, edgecolor="black")
    front = [measured["models"][n] for n in ranking["front"]]
    ax.plot([r["latency_ms"] for r in front], [r["top1"] for r in front], "--o", color="tab:red", label="Pareto front")
    for row in rows:
        if row["name"] in ranking["front"] or row["name"] in meeting:
            ax.annotate(row["name"], (row["latency_ms"], row["top1"]), xytext=(5, 3), textcoords="offset points", fontsize=8)
    ax.axvline(budget_ms, color="tab:blue", lw=1.5, label=f"budget {budget_ms:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel(f"latency, ms ({s['clock']} clock, median of {s['rounds']} interleaved rounds; {s['runtime']}, {s['image_size']}px, batch {s['batch']}, {s['threads']} thread(s))")
    ax.set_ylabel("published ImageNet-1k top-1, % (best converting checkpoint)")
    ax.set_title(f"backbones pick on {cpu_model()}: green = within budget, area ~ params")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return out


# ------------------------------------------------------------------------------------ command


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="backbones pick", description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, required=True, help="latency budget per call, milliseconds")
    parser.add_argument("--image-size", type=int_at_least(1), default=224)
    parser.add_argument("--batch", type=int_at_least(1), default=1)
    parser.add_argument("--threads", type=int_at_least(1), default=torch.get_num_threads(), help="intra-op threads (default: PyTorch's)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="eager")
    parser.add_argument("--memory-mb", type=float, help="also require fp32 weights + peak activations <= this many MiB")
    parser.add_argument("--top", type=int_at_least(1), default=10, help="rows to print")
    parser.add_argument("--models", default="*", help="shell wildcard over model names (default: the whole zoo)")
    parser.add_argument("--rounds", type=int_at_least(1), default=5, help="interleaved timing rounds")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (what `backbones profile` reports) or this process's CPU time (steadier on a busy machine, with --threads 1)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"results cache (default {DEFAULT_CACHE})")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("--refresh", action="store_true", help="measure again, replacing cached figures")
    parser.add_argument("--plot", type=Path, metavar="F.png", help="latency vs top-1 chart with the Pareto front")
    parser.add_argument("--json", type=Path, metavar="F", help="every measured row and the ranking")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vision_backbones.registry import list_models

    args = build_parser().parse_args(argv)
    if not (args.latency_ms > 0 and math.isfinite(args.latency_ms)):
        raise ValueError(f"--latency-ms must be a positive number of milliseconds, got {args.latency_ms}")
    if args.memory_mb is not None and not args.memory_mb > 0:
        raise ValueError(f"--memory-mb must be a positive number of MiB, got {args.memory_mb}")
    names = list_models(args.models)
    if not names:
        raise ValueError(f"--models {args.models!r} matches no registered model; see `backbones list`")
    settings = PickSettings(image_size=args.image_size, batch=args.batch, threads=args.threads, runtime=args.runtime, rounds=args.rounds, clock=args.clock)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)
    with progress:
        task = progress.add_task("pick", total=len(names))

        def report(text: str, done: int, total: int) -> None:
            progress.update(task, description=text, completed=done, total=total)

        measured = measure_zoo(names, args.latency_ms, settings, cache=None if args.no_cache else args.cache, refresh=args.refresh, on_progress=report)
    ranking = rank(measured, args.latency_ms, args.memory_mb)
    load = measured["load_average"]
    statuses = [r["status"] for r in measured["models"].values()]
    print(f"{len(names)} models: {sum(r.get('latency_ms') is not None for r in measured['models'].values())} timed "
          f"({measured['timed_now']} now, the rest from the cache), {sum(s.startswith('pruned') for s in statuses)} pruned by FLOPs "
          f"(peak {measured['peak_gflops_per_second']:.0f} GFLOP/s here), {sum(s.startswith(('needs', 'cannot')) for s in statuses)} not runnable; "
          f"{measured['seconds']:.0f} s; load average {load['before'][0]:.1f} -> {load['after'][0]:.1f} on {os.cpu_count()} CPUs; {cpu_model()}")
    written = []
    if args.json:
        text = json.dumps({**measured, "budget_ms": args.latency_ms, "ranking": {k: [r["name"] for r in v] if k != "front" else v for k, v in ranking.items()}}, indent=1) + "\n"
        written.append(atomic_write(args.json, lambda tmp: Path(tmp).write_text(text)))
    if args.plot:
        written.append(write_plot(measured, ranking, args.latency_ms, args.plot))
    for path in written:
        print(f"wrote {path}")
    if not ranking["meeting"]:
        closest = ranking["closest"]
        if not closest:
            raise ValueError(f"no model meets --latency-ms {args.latency_ms:g} and none could be timed at these settings")
        nearest = ", ".join(f"{r['name']} {r['latency_ms']:.2f} ms" + (f" / {memory_mb(r):.0f} MB" if args.memory_mb else "") for r in closest[:3])
        limit = f" and --memory-mb {args.memory_mb:g}" if args.memory_mb else ""
        raise ValueError(f"no model meets --latency-ms {args.latency_ms:g}{limit} here; the closest: {nearest}")
    if args.markdown:
        print(markdown(measured, ranking, args.top))
    else:
        Console(width=200).print(render(measured, ranking, args.latency_ms, args.top))
    print("Pareto front (latency vs top-1, every timed model): " + " -> ".join(
        f"{n} ({measured['models'][n]['latency_ms']:.1f} ms, {measured['models'][n]['top1']:.1f} %)" for n in ranking["front"]))
    print("top-1: the best published checkpoint converting to the model (its eval size in brackets; the latency is at "
          f"{args.image_size}px with the registered architecture).")
    return 0
