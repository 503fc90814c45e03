#!/usr/bin/env python
"""Side-by-side speed: our models against torchvision/timm, same weights, same input (``make bench``).

For every registered reference (``vision_backbones.convert.list_references()``) the reference model
is built with random weights (batch-norm statistics randomized too), and ours is converted from its
state dict, so both hold the same weights (``vision_backbones.measure.references.build_pair``, the
builder the tests use); their logits are checked to agree. Both then run the same
input, dtype, thread count and memory format in interleaved A/B rounds (the order alternates each
round, so drifting machine load hits both alike); each round gives one ratio of times
ours/reference, and the table reports the median ratio and its spread. Eval forward and training
step (forward + backward + SGD step) are compared separately.

Deploy ratios, for the ResNet/MobileNet/EfficientNet/VoVNet/Darknet families: our fused model in
its measured best memory format (``deploy.optimize_for_inference``) and ONNX Runtime running our
exported model (``deploy.formats.onnx_bytes``), each against the eager reference.

Writes ``benchmarks/RESULTS.md`` (atomically), with the machine it ran on (CPU model, ISA flags,
PyTorch's CPU kernel level: ``vision_backbones.measure.machine``). Timings are wall-clock
(``vision_backbones.measure.timing``); with one thread the CPU time of each call is recorded too,
and its ratio is far less sensitive to other processes on the machine.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import gc
import json
import math
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vision_backbones.convert import Reference, list_references
from vision_backbones.io import atomic_write
from vision_backbones.measure.machine import describe, machine_info
from vision_backbones.measure.references import build_pair
from vision_backbones.measure.steps import autocast, training_step
from vision_backbones.measure.timing import interleaved_times, num_threads, ratio_summary
from vision_backbones.registry import get_entry, model_info

HERE = Path(__file__).resolve().parent
DEPLOY_FAMILIES = ("resnet", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3", "efficientnet", "vovnet", "darknet")
ORT_GOAL = 0.60
NOISE = 0.02  # a median ratio within 1 +- NOISE is "same"


@dataclass
class Settings:
    image_size: int = 160
    batch: int = 8
    rounds: int = 5
    warmup: int = 1
    threads: int = 1
    dtype: str = "fp32"
    channels_last: bool = False
    min_time: float = 0.05  # seconds per timed measurement; fast models repeat calls to reach it
    filter: str | None = None
    quick: bool = False
    max_gflops: float | None = None
    eager: bool = True
    train: bool = True
    deploy: bool = True

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


# ----------------------------------------------------------------------------------------- building


def our_drop_path(reference: Reference) -> float:
    """The stochastic-depth rate our model runs with for ``reference`` (0.0: none)."""
    from vision_backbones.registry import apply_overrides

    config = apply_overrides(reference.model, get_entry(reference.model).config, dict(reference.overrides))
    return float(getattr(config, "drop_path_rate", 0.0))  # the one name for stochastic depth in every family


def reference_kwargs(reference: Reference) -> dict[str, Any]:
    """Keyword arguments that give the reference our training-time regularization.

    timm builds models without stochastic depth unless asked; ours use the rate of the published
    recipe (torchvision's defaults). A training step with stochastic depth on one side only would
    compare different work, so timm gets ``drop_path_rate`` (same linear per-block rule as ours).
    """
    rate = our_drop_path(reference)
    return {"drop_path_rate": rate} if reference.library == "timm" and rate > 0 else {}


def reference_gflops(reference: Reference, image_size: int = 224) -> float:
    return model_info(reference.model, image_size=image_size, **reference.overrides)["flops"] / 1e9


# ----------------------------------------------------------------------------------------- comparing


def verdict(summary: dict[str, float] | None, *, noise: float = NOISE) -> str:
    """'slower' / 'faster' when the median is past ``1 +- noise`` and the rounds agree (all of them
    with fewer than 6 rounds, else three quarters); else 'same'."""
    if summary is None:
        return "-"
    low, high = _spread(summary)
    if summary["median"] > 1 + noise and low > 1.0:
        return "slower"
    if summary["median"] < 1 - noise and high < 1.0:
        return "faster"
    return "same"


def combined_verdict(result: dict[str, Any] | None, *, use_cpu: bool) -> str:
    """The wall-clock verdict, confirmed by the CPU-time one when ``use_cpu`` (single thread)."""
    if result is None:
        return "-"
    wall = verdict(result["ratio"])
    if not use_cpu or wall == "same":
        return wall
    return wall if verdict(result["cpu_ratio"]) == wall else "same"


def compare_times(times: dict[str, Any], key: str, baseline: str) -> dict[str, Any]:
    return {
        "ratio": ratio_summary(times["wall"][key], times["wall"][baseline]),
        "cpu_ratio": ratio_summary(times["cpu"][key], times["cpu"][baseline]),
        "ms": statistics.median(times["wall"][key]) * 1e3,
        "baseline_ms": statistics.median(times["wall"][baseline]) * 1e3,
        "inner": times["inner"],
    }


def _logits(output: Any) -> Tensor:
    return output if isinstance(output, Tensor) else output[0]


def compare_eval(ours: nn.Module, theirs: nn.Module, x: Tensor, settings: Settings) -> dict[str, Any]:
    ours.eval()
    theirs.eval()

    def forward(model: nn.Module) -> Callable[[], object]:
        def call() -> object:
            with torch.inference_mode(), autocast(settings.dtype):
                return model(x)

        return call

    got, expected = _logits(forward(ours)()).float(), _logits(forward(theirs)()).float()
    diff = float((got - expected).abs().max())
    times = interleaved_times(
        {"ours": forward(ours), "reference": forward(theirs)},
        rounds=settings.rounds,
        warmup=settings.warmup,
        min_time=settings.min_time,
    )
    return {
        **compare_times(times, "ours", "reference"),
        "max_abs_diff": diff,
        "max_rel_diff": diff / max(float(expected.abs().max()), 1e-12),
    }


def compare_train(ours: nn.Module, theirs: nn.Module, x: Tensor, target: Tensor, settings: Settings) -> dict[str, Any]:
    ours.train()
    theirs.train()
    steps = {
        "ours": training_step(ours, x, target, dtype=settings.dtype),
        "reference": training_step(theirs, x, target, dtype=settings.dtype),
    }
    times = interleaved_times(steps, rounds=settings.rounds, warmup=max(1, settings.warmup), min_time=settings.min_time)
    ours.eval()
    theirs.eval()
    return compare_times(times, "ours", "reference")


def ort_session(model: nn.Module, sample: Tensor, threads: int) -> Any:
    import onnxruntime

    from vision_backbones.deploy.formats import onnx_bytes

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(onnx_bytes(model, sample), options, providers=["CPUExecutionProvider"])


def compare_deploy(ours: nn.Module, theirs: nn.Module, x: Tensor, settings: Settings) -> dict[str, Any]:
    """Fused + best memory format, and ONNX Runtime, each against the eager reference (contiguous input)."""
    from vision_backbones.deploy import optimize_for_inference

    x = x.contiguous()
    ours.eval()
    theirs.eval()
    fused, memory_format = optimize_for_inference(ours, x)

    def eager(model: nn.Module, fmt: torch.memory_format) -> Callable[[], object]:
        def call() -> object:
            with torch.inference_mode(), autocast(settings.dtype):
                return model(x.contiguous(memory_format=fmt))  # the layout change is part of the cost

        return call

    functions: dict[str, Callable[[], object]] = {
        "reference": eager(theirs, torch.contiguous_format),
        "fused": eager(fused, memory_format),
    }
    result: dict[str, Any] = {
        "memory_format": "channels_last" if memory_format == torch.channels_last else "contiguous"
    }
    with torch.no_grad():
        expected = _logits(theirs(x))
        result["fused_max_abs_diff"] = float(
            (_logits(fused(x.contiguous(memory_format=memory_format))) - expected).abs().max()
        )
    if settings.dtype == "fp32":
        session = ort_session(ours, x[:1], settings.threads)
        name = session.get_inputs()[0].name
        array = x.numpy()
        functions["ort"] = lambda: session.run(None, {name: array})
        result["ort_max_abs_diff"] = float(
            (torch.from_numpy(session.run(None, {name: array})[0]) - expected).abs().max()
        )
        result["ort_max_rel_diff"] = result["ort_max_abs_diff"] / max(float(expected.abs().max()), 1e-12)
    times = interleaved_times(functions, rounds=settings.rounds, warmup=settings.warmup, min_time=settings.min_time)
    result["fused"] = compare_times(times, "fused", "reference")
    result["ort"] = compare_times(times, "ort", "reference") if "ort" in functions else None
    return result


def run_reference(reference: Reference, settings: Settings, *, deploy: bool) -> dict[str, Any]:
    """Every comparison for one reference; exceptions are caught into ``row['error']``."""
    row: dict[str, Any] = {
        "library": reference.library,
        "reference": reference.name,
        "model": reference.model,
        "family": get_entry(reference.model).family,
    }
    started = time.perf_counter()

    def attempt(key: str, function: Callable[[], Any]) -> None:
        try:
            row[key] = function()
        except Exception as error:  # one failing comparison must not lose the others' figures
            row.setdefault("errors", {})[key] = (
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            )
            row.setdefault("tracebacks", {})[key] = traceback.format_exc(limit=4)

    with num_threads(settings.threads):
        attempt(
            "pair", lambda: build_pair(reference.library, reference.name, reference_kwargs=reference_kwargs(reference))
        )
        if "pair" in row:
            ours, theirs = row.pop("pair")
            size = max(settings.image_size, getattr(ours, "min_input_size", 1))
            row["image_size"] = size
            row["reference_kwargs"] = reference_kwargs(reference)
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(settings.batch, 3, size, size, generator=generator)
            target = torch.randint(0, 1000, (settings.batch,), generator=generator)
            if deploy:  # first: contiguous models, untrained weights
                attempt("deploy", lambda: compare_deploy(ours, theirs, x, settings))
            if settings.eager:
                fmt = settings.memory_format
                ours, theirs, x = (
                    ours.to(memory_format=fmt),
                    theirs.to(memory_format=fmt),
                    x.contiguous(memory_format=fmt),
                )
                attempt("eval", lambda: compare_eval(ours, theirs, x, settings))
                if settings.train:  # last: it changes the weights
                    attempt("train", lambda: compare_train(ours, theirs, x, target, settings))
            del ours, theirs
    gc.collect()
    row["seconds"] = time.perf_counter() - started
    return row


# ----------------------------------------------------------------------------------------- selection


def select_references(settings: Settings) -> tuple[list[Reference], list[tuple[Reference, str]]]:
    """The references to run and the skipped ones with the reason."""
    chosen: list[Reference] = []
    skipped: list[tuple[Reference, str]] = []
    pattern = settings.filter
    for reference in list_references():
        if pattern:
            keys = (reference.name, reference.model, f"{reference.library}:{reference.name}")
            wildcard = any(c in pattern for c in "*?[")
            if not any(fnmatch.fnmatchcase(k, pattern) if wildcard else pattern in k for k in keys):
                continue
        chosen.append(reference)
    if settings.quick:  # the cheapest reference of each (library, family)
        cheapest: dict[tuple[str, str], tuple[float, Reference]] = {}
        for reference in chosen:
            key = (reference.library, get_entry(reference.model).family)
            cost = reference_gflops(reference)
            if key not in cheapest or cost < cheapest[key][0]:
                cheapest[key] = (cost, reference)
        keep = {id(r) for _, r in cheapest.values()}
        skipped += [(r, "quick mode: not the cheapest of its library and family") for r in chosen if id(r) not in keep]
        chosen = [r for r in chosen if id(r) in keep]
    if settings.max_gflops is not None:
        kept = []
        for reference in chosen:
            cost = reference_gflops(reference)
            if cost > settings.max_gflops:
                skipped.append((reference, f"{cost:.1f} GFLOPs at 224 px > --max-gflops {settings.max_gflops:g}"))
            else:
                kept.append(reference)
        chosen = kept
    return chosen, skipped


# ----------------------------------------------------------------------------------------- report


def _spread(summary: dict[str, float]) -> tuple[float, float]:
    """Quartiles with 6+ rounds, else min and max."""
    return (summary["q1"], summary["q3"]) if summary["n"] >= 6 else (summary["min"], summary["max"])


def _ratio(summary: dict[str, float] | None) -> str:
    if summary is None:
        return "-"
    low, high = _spread(summary)
    return f"{summary['median']:.2f} [{low:.2f}-{high:.2f}]"


def render_markdown(
    rows: Sequence[dict[str, Any]],
    skipped: Sequence[tuple[Reference, str]],
    settings: Settings,
    machine: dict[str, Any],
    *,
    wall_seconds: float,
    load_after: Any,
    analysis: Path | None = None,
    command: str | None = None,
    measured: str | None = None,
) -> str:
    cpu_column = settings.threads == 1
    s = settings
    lines = [
        "# Side-by-side benchmark: vision_backbones vs torchvision / timm",
        "",
        f"Generated by `benchmarks/compare.py` (`make bench`); measured {measured or _now()} in {wall_seconds / 60:.1f} min.",
        "",
        "## Machine and versions",
        "",
        f"- CPU: {describe(machine)}; {machine['platform']}",
        f"- Load average (1/5/15 min) at start: {_load(machine['load_average'])}; at end: {_load(load_after)}."
        + (
            " The machine was shared with other jobs; every figure is a ratio of interleaved rounds for that reason."
            if machine["load_average"] and machine["load_average"][0] > (machine["logical_cores"] or 1)
            else ""
        ),
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()),
        "- GPU: no GPU was lent to this task, so the GPU figures (training images/s at 176 px bf16 channels_last, model-FLOP utilisation) were not measured.",
        "",
        "## Settings",
        "",
        f"- Input {s.batch}x3x{s.image_size}x{s.image_size}, dtype {s.dtype}{' (CPU autocast)' if s.dtype == 'bf16' else ''}, memory format {'channels_last' if s.channels_last else 'contiguous'} for both models, **{s.threads} intra-op thread(s)** (`torch.set_num_threads`; ONNX Runtime `intra_op_num_threads`).",
        f"- {s.rounds} interleaved rounds per comparison after {max(1, s.warmup)} warm-up call(s) each; the order of the models rotates every round; a measurement repeats the call until it lasts about {s.min_time * 1e3:.0f} ms.",
        "- Ratio = time(ours) / time(reference) per round; the table shows the median and, in brackets, the spread over rounds "
        "(quartiles with 6+ rounds, else min-max). < 1.00: ours is faster.",
        f"- Verdict: *slower* / *faster* when the median is beyond 1 ± {NOISE:.2f} and the spread lies on that side of 1.00"
        + (", by wall clock and by CPU time both" if cpu_column else "")
        + "; else *same* (within noise).",
        "- Training step = forward in train mode + cross-entropy (summed over aux heads where the model has them) + backward + SGD (momentum 0.9) step.",
        "- Same weights: the reference is built with random weights and randomized batch-norm statistics, ours is converted from its state dict; `max rel Δ` is the largest logit difference in eval mode over the largest reference logit (random deep nets give logits up to 1e5, so absolute differences mislead).",
    ]
    if cpu_column:
        lines.append(
            "- *CPU ratio*: the same ratio from the process CPU time of each call (single-threaded, so this is the work done, largely immune to time slices lost to other processes)."
        )
    if s.quick:
        lines.append("- Quick mode: only the cheapest reference of each library and family.")
    if s.filter:
        lines.append(f"- Filter: `{s.filter}`.")
    lines.append("")

    errors = [(r, key, message) for r in rows for key, message in r.get("errors", {}).items()]
    configured = [r for r in rows if r.get("reference_kwargs")]
    if configured:
        lines.insert(
            -1,
            "- Reference built with our regularization where the library default differs (stochastic depth changes the training step's work): "
            + ", ".join(f"{r['library']}:{r['reference']} {r['reference_kwargs']}" for r in configured)
            + ".",
        )
    resized = [r for r in rows if r.get("image_size", s.image_size) != s.image_size]
    if resized:
        lines += [
            "- Models that need a larger input ran at their minimum size, both sides: "
            + ", ".join(f"{r['model']} {r['image_size']} px" for r in resized)
            + ".",
            "",
        ]
    if s.eager:
        lines += ["## Eager PyTorch: ours / reference", ""]
        header = [
            "library",
            "reference",
            "ours",
            "eval ratio",
            *(["eval CPU ratio"] if cpu_column else []),
            "train ratio",
            *(["train CPU ratio"] if cpu_column else []),
            "ref eval ms",
            "ref train ms",
            "max rel Δ",
            "verdict (eval / train)",
        ]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in rows:
            if "eval" not in r:
                continue
            ev, tr = r["eval"], r.get("train")
            cells = [r["library"], r["reference"], r["model"], _ratio(ev["ratio"])]
            if cpu_column:
                cells.append(_ratio(ev["cpu_ratio"]))
            cells.append(_ratio(tr["ratio"]) if tr else "-")
            if cpu_column:
                cells.append(_ratio(tr["cpu_ratio"]) if tr else "-")
            cells += [
                f"{ev['baseline_ms']:.1f}",
                f"{tr['baseline_ms']:.1f}" if tr else "-",
                f"{ev['max_rel_diff']:.1e}",
                f"{combined_verdict(ev, use_cpu=cpu_column)} / {combined_verdict(tr, use_cpu=cpu_column)}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        evals = [r["eval"]["ratio"]["median"] for r in rows if "eval" in r]
        trains = [r["train"]["ratio"]["median"] for r in rows if "train" in r]
        if evals:
            lines += [
                "",
                f"Geometric mean of the median ratios: eval {_geomean(evals):.2f} over {len(evals)} references"
                + (f", training step {_geomean(trains):.2f} over {len(trains)}." if trains else "."),
            ]
        slower = [
            (r, mode)
            for r in rows
            for mode in ("eval", "train")
            if combined_verdict(r.get(mode), use_cpu=cpu_column) == "slower"
        ]
        lines += [
            "",
            "Slower than the reference beyond noise: "
            + (
                ", ".join(
                    f"{r['model']} vs {r['library']}:{r['reference']} ({mode} {r[mode]['ratio']['median']:.2f}x"
                    + (f", CPU {r[mode]['cpu_ratio']['median']:.2f}x" if cpu_column else "")
                    + ")"
                    for r, mode in slower
                )
                or "none"
            )
            + ".",
        ]
        lines.append("")

    deploy_rows = [r for r in rows if "deploy" in r]
    if deploy_rows:
        lines += [
            "## Deploy path vs eager reference (eval forward)",
            "",
            "*fused*: `deploy.optimize_for_inference` (batch norm folded, memory format measured on this machine; the input's layout change is timed). "
            f"*ORT*: ONNX Runtime {machine['versions'].get('onnxruntime')} on our model exported by `deploy.formats.onnx_bytes` (graph optimizations on). "
            f"Goal: ORT <= {ORT_GOAL:.2f}x the eager reference.",
            "",
        ]
        header = [
            "library",
            "reference",
            "ours",
            "memory format",
            "fused / ref",
            *(["fused CPU"] if cpu_column else []),
            "ORT / ref",
            *(["ORT CPU"] if cpu_column else []),
            f"ORT <= {ORT_GOAL:.2f}x",
            "ref ms",
            "ORT max rel Δ",
        ]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in deploy_rows:
            d = r["deploy"]
            ort = d.get("ort")
            cells = [r["library"], r["reference"], r["model"], d["memory_format"], _ratio(d["fused"]["ratio"])]
            if cpu_column:
                cells.append(_ratio(d["fused"]["cpu_ratio"]))
            cells.append(_ratio(ort["ratio"]) if ort else "-")
            if cpu_column:
                cells.append(_ratio(ort["cpu_ratio"]) if ort else "-")
            cells += [
                "yes" if ort and ort["ratio"]["median"] <= ORT_GOAL else ("no" if ort else "-"),
                f"{d['fused']['baseline_ms']:.1f}",
                f"{d['ort_max_rel_diff']:.1e}" if "ort_max_rel_diff" in d else "-",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        orts = [r["deploy"]["ort"]["ratio"]["median"] for r in deploy_rows if r["deploy"].get("ort")]
        fused = [r["deploy"]["fused"]["ratio"]["median"] for r in deploy_rows]
        lines += [
            "",
            f"Geometric mean: fused {_geomean(fused):.2f}"
            + (
                f", ORT {_geomean(orts):.2f}; ORT meets the {ORT_GOAL:.2f}x goal on {sum(o <= ORT_GOAL for o in orts)} of {len(orts)}."
                if orts
                else "."
            ),
            "",
        ]

    if errors:
        lines += [
            "## Not measured (errors)",
            "",
            "| library | reference | ours | part | error |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['library']} | {r['reference']} | {r['model']} | {key} | {message.replace('|', '/')} |"
            for r, key, message in errors
        ]
        lines.append("")
    if skipped:
        lines += ["## Not run", "", "| library | reference | ours | why |", "|---|---|---|---|"]
        lines += [f"| {r.library} | {r.name} | {r.model} | {why} |" for r, why in skipped]
        lines.append("")
    if analysis is not None and analysis.is_file():
        lines += [
            f"## Analysis (from `{analysis.name}`, written by hand; not regenerated)",
            "",
            analysis.read_text().strip(),
            "",
        ]
    if command:
        lines += ["Reproduce: `.venv/bin/python " + command.strip() + "`", ""]
    return "\n".join(lines)


def _now() -> str:
    return f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"


def _load(load: Any) -> str:
    return "n/a" if not load else " / ".join(f"{v:.1f}" for v in load)


def _geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


# ----------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, help="input height and width (default 160; quick 96)")
    parser.add_argument("--batch", type=int, help="batch size (default 8; quick 2)")
    parser.add_argument("--rounds", type=int, help="interleaved A/B rounds (default 5; quick 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls of each model before the rounds")
    parser.add_argument(
        "--threads", type=int, default=None, help="intra-op threads for both (default: all usable cores)"
    )
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--channels-last", action="store_true", help="both models and the input in channels_last")
    parser.add_argument(
        "--min-time", type=float, default=0.05, help="seconds per measurement; fast models repeat calls to reach it"
    )
    parser.add_argument("--filter", help="substring or shell wildcard over reference name, our name or library:name")
    parser.add_argument(
        "--quick", action="store_true", help="cheapest reference of each library and family, 96 px, batch 2, 3 rounds"
    )
    parser.add_argument("--max-gflops", type=float, help="skip references above this many GFLOPs at 224 px")
    parser.add_argument("--no-train", action="store_true", help="eval forward only")
    parser.add_argument("--no-deploy", action="store_true", help="skip the fused / ONNX Runtime ratios")
    parser.add_argument("--no-eager", action="store_true", help="only the deploy ratios")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON")
    parser.add_argument(
        "--analysis",
        type=Path,
        default=HERE / "ANALYSIS.md",
        help="hand-written notes appended to the results (if the file exists)",
    )
    parser.add_argument(
        "--from-json", type=Path, help="no measuring: write --output again from an earlier run's --json"
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    quick = args.quick
    threads = (
        args.threads
        if args.threads is not None
        else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )
    settings = Settings(
        image_size=args.image_size or (96 if quick else 160),
        batch=args.batch or (2 if quick else 8),
        rounds=args.rounds or (3 if quick else 5),
        warmup=args.warmup,
        threads=threads,
        dtype=args.dtype,
        channels_last=args.channels_last,
        min_time=args.min_time,
        filter=args.filter,
        quick=quick,
        max_gflops=args.max_gflops,
        eager=not args.no_eager,
        train=not args.no_train,
        deploy=not args.no_deploy,
    )
    for label in ("image_size", "batch", "rounds", "threads"):
        if getattr(settings, label) < 1:
            raise ValueError(f"--{label.replace('_', '-')} must be >= 1, got {getattr(settings, label)}")
    return settings


def rerender(args: argparse.Namespace) -> int:
    """RESULTS.md again from a ``--json`` file of an earlier run (e.g. after editing ANALYSIS.md)."""
    payload = json.loads(args.from_json.read_text())
    settings = Settings(**payload["settings"])
    references = {(r.library, r.name): r for r in list_references()}
    skipped = [
        (references[(lib, name)], why) for lib, name, why in payload.get("skipped", []) if (lib, name) in references
    ]
    text = render_markdown(
        payload["rows"],
        skipped,
        settings,
        payload["machine"],
        wall_seconds=payload.get("wall_seconds", 0.0),
        load_after=payload.get("load_after"),
        analysis=args.analysis,
        command=payload.get("command"),
        measured=payload.get("measured"),
    )
    atomic_write(args.output, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {args.output} from {args.from_json}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.from_json:
        return rerender(args)
    try:
        settings = settings_from_args(args)
    except ValueError as error:
        print(f"compare.py: {error}", file=sys.stderr)
        return 2
    machine = machine_info()
    references, skipped = select_references(settings)
    if not references:
        print(f"compare.py: no reference matches {settings.filter!r}", file=sys.stderr)
        return 2
    print(
        f"{len(references)} references, {settings.batch}x3x{settings.image_size}x{settings.image_size} {settings.dtype}, "
        f"{settings.threads} thread(s), {settings.rounds} rounds",
        file=sys.stderr,
    )
    started = time.perf_counter()
    rows = []
    for index, reference in enumerate(references, 1):
        deploy = settings.deploy and get_entry(reference.model).family in DEPLOY_FAMILIES
        row = run_reference(reference, settings, deploy=deploy)
        rows.append(row)
        parts = [f"{mode} {row[mode]['ratio']['median']:.2f}" for mode in ("eval", "train") if mode in row]
        if "deploy" in row:
            parts.append(f"fused {row['deploy']['fused']['ratio']['median']:.2f}")
            if row["deploy"].get("ort"):
                parts.append(f"ORT {row['deploy']['ort']['ratio']['median']:.2f}")
        status = ", ".join(parts + [f"{key} failed: {message}" for key, message in row.get("errors", {}).items()])
        print(
            f"[{index}/{len(references)}] {reference.library}:{reference.name} -> {reference.model}: {status} ({row['seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    command = "benchmarks/compare.py " + " ".join(sys.argv[1:] if argv is None else argv)
    measured = _now()
    text = render_markdown(
        rows,
        skipped,
        settings,
        machine,
        wall_seconds=elapsed,
        load_after=load_after,
        analysis=args.analysis,
        command=command,
        measured=measured,
    )
    atomic_write(args.output, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {args.output}", file=sys.stderr)
    if args.json:
        payload = {
            "settings": asdict(settings),
            "machine": machine,
            "wall_seconds": elapsed,
            "load_after": load_after,
            "command": command,
            "measured": measured,
            "skipped": [(r.library, r.name, why) for r, why in skipped],
            "rows": [{k: v for k, v in r.items() if k != "tracebacks"} for r in rows],
        }
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1, default=str) + "\n"))
    for row in rows:
        for key, trace in row.get("tracebacks", {}).items():
            print(f"--- {row['library']}:{row['reference']} ({key}) ---\n{trace}", file=sys.stderr)
    # A reference that cannot be built or run at all fails the run; a skipped part (say, a training
    # step the input is too small for) is reported in RESULTS.md only.
    return 1 if any(key in ("pair", "eval") for row in rows for key in row.get("errors", {})) else 0


if __name__ == "__main__":
    sys.exit(main())
