"""The most accurate registered models that meet a latency budget here (``backbones pick``, :mod:`vision_backbones.cli.pick`).

FLOPs do not predict speed on a given machine (ShuffleNet V2's point), so the picker measures:

1. FLOPs on meta tensors prune the models that could only meet the budget above this machine's
   peak: a dense 3x3 convolution is timed once and a model whose FLOPs would need more than
   ``PEAK_MARGIN`` times that rate to meet the budget is not built.
2. Each remaining model is built exactly as ``backbones profile`` builds it (``create_model(name,
   num_classes=1000)``, seed 0, eval, ``inference_mode``, the same threads) and called once; one
   that takes more than ``ONE_CALL_MARGIN`` times the budget is left out of the rounds.
3. The rest are timed in interleaved rounds (``measure.timing.interleaved_times``), in groups of
   models of similar speed so that the models whose order matters share the same machine load;
   the figure is the median over rounds. With a kernel-level predictor, the few models measured are
   timed the way the predictor's own timings were (:func:`ruled_latency`): pinned, malloc thresholds
   fixed, each ruled by the predictor's reference, so the measured and predicted figures the picker
   ranks together share one scale (interleaved raw rounds read mobilenet_v1_0_75 at 19.4 ms where
   ``backbones profile`` reads 13.5 and the predictor 12.9).

Results are cached per machine and settings (CPU model, ISA flags, torch version, runtime, size,
batch, threads) in one JSON file written atomically after every group, so a second run (or one
that was interrupted) measures only what is missing. The published top-1 comes from
:mod:`vision_backbones.budget.published_top1`.
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

from vision_backbones.io import atomic_write, check_output_file
from vision_backbones.measure.machine import cpu_model, isa_flags
from vision_backbones.measure.timing import interleaved_times, num_threads, summarize
from vision_backbones.plots import pyplot, save_figure
from vision_backbones.validate import check_choice, check_int

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

    def __post_init__(self) -> None:  # "tflite" was once timed as eager and reported as measured
        check_int("image_size", self.image_size, min=1)
        check_int("batch", self.batch, min=1)
        check_int("threads", self.threads, min=1)
        check_choice("runtime", self.runtime, RUNTIMES)
        check_int("rounds", self.rounds, min=1)
        check_choice("clock", self.clock, ("wall", "cpu"))

    def key(self) -> str:
        import onnxruntime  # its version matters only for that runtime

        runtime = self.runtime if self.runtime == "eager" else f"onnxruntime {onnxruntime.__version__}"
        return (
            f"{cpu_model()} [{' '.join(isa_flags())}] | torch {torch.__version__} | {runtime} | "
            f"{self.image_size}px batch {self.batch} threads {self.threads} rounds {self.rounds} clock {self.clock}"
        )


# ------------------------------------------------------------------------------------ measuring


def peak_gflops_per_second(threads: int) -> float:
    """GFLOP/s (2 x MACs) of a dense 256->256 3x3 conv on a 28x28 map: this machine's best case."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).eval()
    x = torch.randn(1, 256, 28, 28)
    flops = 2 * 256 * 256 * 9 * 28 * 28
    with num_threads(threads), torch.inference_mode():
        times = interleaved_times({"conv": lambda: conv(x)}, rounds=5, warmup=2)["wall"]["conv"]
    return flops / min(times) / 1e9


def model_flops(name: str, image_size: int, model: torch.nn.Module | None = None) -> tuple[int, int]:
    """``(FLOPs, parameters)`` of the whole network (head included), on meta tensors (``model``: that
    network already built on meta)."""
    from vision_backbones.flops import count_flops
    from vision_backbones.registry import build_on_meta

    model = model if model is not None else build_on_meta(name, num_classes=1000)
    x = torch.empty(1, int(getattr(model, "in_channels", 3)), image_size, image_size, device="meta")
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

    from vision_backbones.deploy.formats import onnx_bytes

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes(model, x), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return (lambda: session.run(None, feed)), tracker.peak


def check_budget(budget_ms: Any, memory_limit_mb: Any = None) -> None:
    """The budget every entry point takes (``rank``, ``measure_zoo``, ``backbones pick``): a finite
    number of milliseconds > 0, and a memory limit > 0 MiB when given."""

    def positive(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0

    if not positive(budget_ms):
        raise ValueError(f"--latency-ms (budget_ms) must be a positive number of milliseconds, got {budget_ms!r}")
    if memory_limit_mb is not None and not positive(memory_limit_mb):
        raise ValueError(f"--memory-mb (memory_limit_mb) must be a positive number of MiB, got {memory_limit_mb!r}")


# what a cached row holds; anything else is a cache this command did not write
_ROW_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "status": (str,),
    "flops": (int,),
    "params": (int,),
    "latency_ms": (int, float, type(None)),
    "activation_bytes": (int, type(None)),
    "top1": (int, float, type(None)),
}


def _cache_problem(stored: Any, key: str) -> str | None:
    """What is wrong with a cache file's content, or None."""
    if not isinstance(stored, dict):
        return f"holds a JSON {type(stored).__name__}, not an object of settings"
    entry = stored.get(key, {})
    if not isinstance(entry, dict):
        return f"the entry for these settings is a {type(entry).__name__}, not an object of models"
    for name, row in entry.items():
        if not isinstance(row, dict):
            return f"the row of {name!r} is a {type(row).__name__}, not an object"
        for field, types in _ROW_TYPES.items():
            value = row.get(field)
            if field in row and (not isinstance(value, types) or isinstance(value, bool)):
                return f"{name!r} has {field}={value!r}"
            if isinstance(value, float) and not math.isfinite(value):
                return f"{name!r} has {field}={value!r}"
        if row.get("name", name) != name:
            return f"the row under {name!r} names {row.get('name')!r}"
    return None


def _load_cache(path: Path | None, key: str) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    fix = "delete it or pass --refresh (or --no-cache)"
    if path.is_dir():
        raise ValueError(f"pick cache {str(path)!r} is a folder; expected a .json file path")
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "not text"
        raise ValueError(f"pick cache {str(path)!r} is not valid JSON ({reason}); {fix}") from None
    problem = _cache_problem(stored, key)
    if problem is not None:
        raise ValueError(f"pick cache {str(path)!r} is not a cache this command wrote: {problem}; {fix}")
    return dict(stored.get(key, {}))


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


def check_cache(path: Path, settings: PickSettings) -> None:
    """Read the results cache once, so that a corrupt one is its one-line error before anything is built."""
    _load_cache(path, settings.key())


def measure_zoo(
    names: Sequence[str],
    budget_ms: float,
    settings: PickSettings,
    *,
    cache: Path | None = None,
    refresh: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
    predictor: Any = None,
) -> dict[str, Any]:
    """Measure ``names`` (pruned as the module docstring says); ``{"models": {name: row}, ...}``.

    With a kernel ``predictor`` (:class:`vision_backbones.measure.predictor.KernelPredictor`) every model
    is first *predicted* (``predicted_ms``, no model built), and only the ones that matter are measured:
    those predicted within ``NEAR`` of the budget and those on the predicted Pareto front under it. The
    rest keep their prediction as their latency (``status`` "predicted")."""
    from vision_backbones.budget.published_top1 import published_top1
    from vision_backbones.flops import flop_counter, read_counter
    from vision_backbones.measure.kernels import trace_ops
    from vision_backbones.registry import build_on_meta

    check_budget(budget_ms)
    if not isinstance(settings, PickSettings):
        raise ValueError(f"settings must be a PickSettings, got {settings!r}")
    if isinstance(names, str) or not names:
        raise ValueError(f"names must be a non-empty list of model names, got {names!r}")
    if cache is not None:
        check_output_file("cache", cache, (".json",))
    progress = on_progress or (lambda *_: None)
    key = settings.key()
    results: dict[str, Any] = {} if refresh else _load_cache(cache, key)
    started = time.perf_counter()
    load_before = os.getloadavg()
    peak = peak_gflops_per_second(settings.threads)
    rows: dict[str, dict[str, Any]] = {}
    to_time: list[str] = []
    traces: dict[str, list[Any]] = {}
    for index, name in enumerate(names):
        progress(f"{name}: FLOPs", index, len(names))
        row: dict[str, Any] = {"name": name, "status": "measured"}
        found = published_top1(name)
        row.update(
            {
                "top1": found.top1,
                "checkpoint": found.checkpoint,
                "top1_source": found.source,
                "top1_image_size": found.image_size,
                "checkpoint_overrides": found.overrides,
            }
            if found
            else {"top1": None}
        )
        try:
            meta = build_on_meta(name, num_classes=1000)
            smallest = meta.min_input_size
            if settings.image_size < smallest:
                rows[name] = {**row, "status": f"needs inputs >= {smallest}px"}
                continue
            if predictor is not None:  # one meta forward gives the kernels and the FLOPs
                shape = (settings.batch, meta.in_channels, settings.image_size, settings.image_size)
                counter = flop_counter()
                with counter:
                    traces[name] = trace_ops(meta, shape)  # predicted below, every model's kernels in one pass
                flops = read_counter(counter).total // settings.batch
                params = sum(p.numel() for p in meta.parameters())
            else:
                flops, params = model_flops(name, settings.image_size, meta)
        except (RuntimeError, ValueError) as error:
            rows[name] = {**row, "status": f"cannot build: {str(error).splitlines()[0]}"}
            continue
        row.update(
            flops=flops * settings.batch, params=params, lower_bound_ms=1e3 * flops * settings.batch / (peak * 1e9)
        )
        rows[name] = row
        if predictor is not None:
            continue
        cached = results.get(name)
        if cached and cached.get("flops") == row["flops"]:
            rows[name] = {
                **row,
                **{k: v for k, v in cached.items() if k not in row or k in ("status",)},
                "cached": True,
            }
        elif row["lower_bound_ms"] > PEAK_MARGIN * budget_ms:
            row["status"] = f"pruned by FLOPs (>= {row['lower_bound_ms']:.1f} ms at {peak:.0f} GFLOP/s)"
        else:
            to_time.append(name)

    if predictor is not None:
        for name, predicted in zip(traces, predictor.predict_many(list(traces.values()))):
            rows[name]["predicted_ms"] = predicted
        to_time = _worth_measuring(rows, budget_ms)
        for name, row in rows.items():
            if name not in to_time and "predicted_ms" in row:
                row.update(status="predicted", latency_ms=row["predicted_ms"])
    if len(to_time) < MIN_TIMED:  # a budget below every model: time the cheapest few, to show the closest
        pruned = sorted(
            (r for r in rows.values() if r["status"].startswith("pruned")), key=lambda r: r["lower_bound_ms"]
        )
        for row in pruned[: MIN_TIMED - len(to_time)]:
            row["status"] = "measured"
            to_time.append(row["name"])
    ruled = getattr(predictor, "ruler_ms", None) is not None  # measured on the predictor's scale
    if ruled:
        from vision_backbones.measure.allocator import fix_thresholds

        fix_thresholds()  # before the models are built: their forwards then take no page faults
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
    if ruled:
        ruler = predictor_ruler(predictor)
        by_speed = sorted(runners, key=estimates.__getitem__)
        for index, name in enumerate(by_speed):
            progress(f"timing {name} (ruled)", index, len(by_speed))
            rows[name].update(ruled_latency(runners.pop(name), settings, predictor, ruler), status="measured")
            # not cached: the cache holds raw timings in the settings' clock, which its key names
    ordered = sorted(runners, key=estimates.__getitem__)
    groups = [ordered[i : i + GROUP_SIZE] for i in range(0, len(ordered), GROUP_SIZE)]
    for index, group in enumerate(groups):
        progress(f"timing {', '.join(group[:3])}{'...' if len(group) > 3 else ''}", index, len(groups))
        with num_threads(settings.threads):
            timed = interleaved_times({n: runners[n] for n in group}, rounds=settings.rounds, warmup=1, min_time=0.05)
        for name in group:
            stats = summarize([1e3 * t for t in timed[settings.clock][name]])
            other = "cpu" if settings.clock == "wall" else "wall"
            rows[name].update(
                latency_ms=stats["median"],
                latency_q1_ms=stats["q1"],
                latency_q3_ms=stats["q3"],
                status="measured",
                **{f"latency_{other}_ms": summarize([1e3 * t for t in timed[other][name]])["median"]},
            )
            results[name] = rows[name]
            del runners[name]
        _save_cache(cache, key, results)
    _save_cache(cache, key, results)
    return {
        "settings": asdict(settings),
        "key": key,
        "peak_gflops_per_second": peak,
        "models": rows,
        "seconds": time.perf_counter() - started,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "timed_now": sum(1 for n in to_time if rows[n].get("latency_ms") is not None),
    }


def predictor_ruler(predictor: Any) -> Any:
    """The library's ruler as the predictor's timings were ruled (its runtime, threads, clock, reference)."""
    from vision_backbones.measure.ruler import Ruler

    return Ruler.of(predictor)


def ruled_latency(
    run: Callable[[], object], settings: PickSettings, predictor: Any, ruler: Any = None
) -> dict[str, Any]:
    """``run`` timed as the predictor's timings were: pinned to ``settings.threads`` CPUs, alternating
    with the library's ruler (``ruler``, or :func:`predictor_ruler`'s), scaled to the predictor's reference,
    through the ruler's quiet gate."""
    from vision_backbones.measure.predictor import pinned
    from vision_backbones.measure.ruler import gated_ms

    ruler = ruler or predictor_ruler(predictor)
    with pinned(settings.threads):
        timed = gated_ms(run, ruler, repeats=max(settings.rounds, 5), warmup=2)
    return {"latency_ms": timed.ms, "latency_raw_ms": timed.raw_ms, "latency_clock": f"{ruler.clock}, ruled"}


NEAR = (0.6, 1.5)  # with a predictor: models predicted within these multiples of the budget are measured


def _worth_measuring(rows: dict[str, dict[str, Any]], budget_ms: float) -> list[str]:
    """Models predicted near the budget, plus the predicted Pareto front (latency vs top-1) under it."""
    from vision_backbones.pareto import pareto_front

    predicted = [r for r in rows.values() if "predicted_ms" in r]
    near = [r["name"] for r in predicted if NEAR[0] * budget_ms <= r["predicted_ms"] <= NEAR[1] * budget_ms]
    with_top1 = [r for r in predicted if r["top1"] is not None and r["predicted_ms"] <= NEAR[1] * budget_ms]
    front = [with_top1[i]["name"] for i in pareto_front([(r["predicted_ms"], r["top1"]) for r in with_top1])]
    return list(dict.fromkeys(near + front))


# ------------------------------------------------------------------------------------ ranking


def memory_mb(row: dict[str, Any]) -> float | None:
    """Weights (fp32) plus the peak activation bytes of one forward, in MiB."""
    if row.get("activation_bytes") is None or row.get("params") is None:
        return None
    return (4 * row["params"] + row["activation_bytes"]) / 2**20


def rank(measured: dict[str, Any], budget_ms: float, memory_limit_mb: float | None = None) -> dict[str, Any]:
    """Models meeting the budget ranked by published top-1 (unknown top-1 last, by latency), the
    Pareto front (latency vs top-1) over every timed model, and the closest ones over budget."""
    from vision_backbones.pareto import pareto_front

    check_budget(budget_ms, memory_limit_mb)
    timed = [r for r in measured["models"].values() if r.get("latency_ms") is not None]

    def fits_memory(row: dict[str, Any]) -> bool:
        needed = memory_mb(row)
        return memory_limit_mb is None or (needed is not None and needed <= memory_limit_mb)

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
    table = Table(
        title=f"models within {budget_ms:g} ms ({s['runtime']}, {s['image_size']}px, batch {s['batch']}, "
        f"{s['threads']} thread(s)), by published top-1; * = on the Pareto front"
    )
    for column in (
        "#",
        "model",
        "top-1 %",
        "checkpoint (eval px)",
        "latency ms (IQR)",
        "predicted ms",
        "GFLOPs",
        "params M",
        "memory MB",
    ):
        table.add_column(column, justify="left" if column in ("model", "checkpoint (eval px)") else "right")
    for index, row in enumerate(ranking["meeting"][:top], 1):
        table.add_row(*_cells(index, row, ranking["front"]))
    return table


def _cells(index: int, row: dict[str, Any], front: Sequence[str]) -> list[str]:
    if row.get("status") == "predicted":
        iqr = " (predicted)"
    elif row.get("latency_q1_ms") is not None:
        iqr = f" ({row['latency_q1_ms']:.1f}-{row['latency_q3_ms']:.1f})"
    else:
        iqr = " (1 call)"
    memory = memory_mb(row)
    return [
        str(index),
        row["name"] + (" *" if row["name"] in front else ""),
        "-" if row["top1"] is None else f"{row['top1']:.2f}",
        "-" if row["top1"] is None else f"{row['checkpoint']} ({row.get('top1_image_size') or '?'})",
        f"{row['latency_ms']:.2f}{iqr}",
        "-" if row.get("predicted_ms") is None else f"{row['predicted_ms']:.2f}",
        f"{row['flops'] / 1e9:.2f}",
        f"{row['params'] / 1e6:.2f}",
        "-" if memory is None else f"{memory:.0f}",
    ]


def markdown(measured: dict[str, Any], ranking: dict[str, Any], top: int) -> str:
    header = "| # | model | top-1 % | checkpoint (eval px) | latency ms (IQR) | predicted ms | GFLOPs | params M | memory MB |"
    lines = [header, "|" + "---|" * 9]
    lines += [
        "| " + " | ".join(_cells(i, row, ranking["front"])) + " |" for i, row in enumerate(ranking["meeting"][:top], 1)
    ]
    return "\n".join(lines)


def write_plot(measured: dict[str, Any], ranking: dict[str, Any], budget_ms: float, path: Path) -> Path:
    """Latency (log) vs published top-1 of every timed model, the Pareto front and the budget line."""
    rows = [r for r in measured["models"].values() if r.get("latency_ms") is not None and r["top1"] is not None]
    if not rows:
        raise ValueError("nothing to plot: no timed model has a published top-1")
    s = measured["settings"]
    fig, ax = pyplot().subplots(figsize=(11, 7), dpi=110)
    meeting = {r["name"] for r in ranking["meeting"]}
    for row in rows:
        color = "tab:green" if row["name"] in meeting else "tab:gray"
        ax.scatter(
            row["latency_ms"], row["top1"], s=20 + 3 * row["params"] / 1e6, color=color, alpha=0.7, edgecolor="black"
        )
    front = [measured["models"][n] for n in ranking["front"]]
    ax.plot([r["latency_ms"] for r in front], [r["top1"] for r in front], "--o", color="tab:red", label="Pareto front")
    for row in rows:
        if row["name"] in ranking["front"] or row["name"] in meeting:
            ax.annotate(
                row["name"], (row["latency_ms"], row["top1"]), xytext=(5, 3), textcoords="offset points", fontsize=8
            )
    ax.axvline(budget_ms, color="tab:blue", lw=1.5, label=f"budget {budget_ms:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel(
        f"latency, ms ({s['clock']} clock, median of {s['rounds']} interleaved rounds; {s['runtime']}, {s['image_size']}px, batch {s['batch']}, {s['threads']} thread(s))"
    )
    ax.set_ylabel("published ImageNet-1k top-1, % (best converting checkpoint)")
    ax.set_title(f"backbones pick on {cpu_model()}: green = within budget, area ~ params")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)
