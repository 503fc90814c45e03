#!/usr/bin/env python
"""The kernel-level latency predictor against measured latency, reported as nn-Meter reports it.

    python benchmarks/latency_predictor.py [--per-space 200] [--clock cpu] [--spaces mnasnet resnet ...]
    python benchmarks/latency_predictor.py --runtime onnxruntime [--per-space 200]

Eager PyTorch, batch 1, 224 px, one thread pinned to one CPU, malloc thresholds fixed, every network
*ruled* (``measure.ruler``: a fixed network timed in the same rounds; each round scaled to the ruler's
reference speed stored with the predictor), so the 30-50 % swings of this shared machine cancel
(``benchmarks/latency_noise.py`` measures how far). Three predictors, all in this run:

- **kernels**: ``measure.predictor`` (per-kernel-type random forests on kernels timed inside their
  networks; built here, or read from ``--cache`` when it was built on this machine);
- **FLOPs-linear**: ``ms = a * FLOPs + b``, least squares on the networks the kernel predictor was built on;
- **per-block table**: ``search.latency.LatencyTable`` (each distinct block timed alone, summed), the
  predictor the search and NetAdapt used until now.

Two test sets: (a) ``--per-space`` random full-size members of each search space, drawn with another
seed than the build's; (b) every registered model, each predicted by a kernel predictor and a FLOPs line
fitted *without its family* (its registered variants, their width-scaled copies and the members of the
spaces built on it never seen). Every network is measured whole (median of ``--repeats`` after a
warm-up). Per-network rows go to ``runs.jsonl`` as they finish, so the command resumes.
Writes ``benchmarks/latency_predictor/report_<clock>_ruled.md``, ``results_<clock>_ruled.json``,
``predicted_vs_measured_<clock>_ruled.png`` (``*_cpu.*`` without ``_ruled``: the first run, raw timings).
The per-block table's entries come from its cache, timed raw (unruled) when it was filled.

The quiet gate (``--max-slowdown``, default 0.10): a row is kept only when the ruler ran within 10 % of
its quiet speed in this process (``Ruler.quiet_ms``) in the row's rounds, else measured again after a pause
(``--tries`` in all; the quietest try is kept and marked). Gated rows go to ``runs_<clock>_ruled_quiet.jsonl`` and the outputs
carry ``_quiet``; ``--no-gate`` reproduces the ungated ``*_ruled`` files. The ruler runs in the predictor's
runtime (``Ruler.of``): ONNX Runtime rows are ruled by an ONNX Runtime session of the ruler, since the eager
ruler slows as a process exports networks while ONNX Runtime's sessions age far less (``ruler_drift.md``).
Each row is measured in a fork of a young copy of this process made before the predictor is built or fitted
(``measure.isolated.young_copy``), as the predictor's profiles are, so that every row runs in the same young
process however many came before and however many forests were fitted.

``--passes N``: every network is measured N times, one pass over all of them after another (the even passes
in reverse order, into ``runs_<...>_pass<k>.jsonl``), and its latency is the geometric mean of its passes. A
slow patch of a shared machine that the ruler does not follow (it runs convolutions; depthwise networks can
slow more than it does) then meets each network at most once, and the report says how often two passes of
the same network agree. On the Intel Xeon in stop 35, eight NAS-Bench MobileNet members re-measured in a later
session than stop 34's benchmark read a median 5 % faster than it had, mnasnet and Zoph & Le members within 1 %.

``--runtime onnxruntime``: the same for the deploy runtime (every graph optimization, one intra-op
thread): each network is exported to ONNX, timed whole in a session (each timed call right after an
untimed one, as the build times it: ``Ruler.warm``), and its kernels are the nodes of
the session's optimized graph (``measure.onnx_kernels``), predicted as the rows are measured (an export
per network is the slow part, so the trace is not kept). The per-block table is eager PyTorch's and is
not a baseline there. Outputs carry ``onnxruntime_`` in their names.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

from vision_backbones.io import append_jsonl, atomic_write_bytes, read_jsonl

OUT = Path(__file__).resolve().parent / "latency_predictor"
METHODS = ("kernels", "flops_linear", "block_table")
HELD_OUT = "registered models, family held out"  # the test set of registered models


def _flops(base: str, overrides: dict[str, Any], image_size: int) -> float:
    from vision_backbones.budget.pick import model_flops
    from vision_backbones.registry import build_on_meta

    return float(model_flops(base, image_size, build_on_meta(base, **overrides))[0])


def _flops_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    import numpy as np

    x = np.array([[f, 1.0] for f, _ in points])
    y = np.array([ms for _, ms in points])
    (a, b), *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(a), float(b)


def benchmark_groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The benchmark's test sets, each a list of rows: the registered models (each predicted with its family held
    out), each search space's members, and all space members together."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(HELD_OUT if row["origin"] == "zoo" else row["origin"], []).append(row)
    every_space = [row for row in rows if row["origin"] != "zoo"]
    if every_space:
        groups["all space members"] = every_space
    return groups


def scores(predicted: list[float], measured: list[float]) -> dict[str, float]:
    errors = [p / m - 1 for p, m in zip(predicted, measured)]
    if not errors:  # the per-block table cannot split some families (NASNet cells, Zoph & Le's plain nets)
        return {"n": 0}
    return {
        "n": len(errors),
        "within_10": 100 * sum(abs(e) <= 0.10 for e in errors) / len(errors),
        "within_5": 100 * sum(abs(e) <= 0.05 for e in errors) / len(errors),
        "rmse_ms": math.sqrt(statistics.fmean((p - m) ** 2 for p, m in zip(predicted, measured))),
        "rmspe": 100 * math.sqrt(statistics.fmean(e * e for e in errors)),
        "median_error": 100 * statistics.median(errors),
    }


def main() -> int:
    from vision_backbones.measure.allocator import fix_thresholds
    from vision_backbones.measure.isolated import young_copy
    from vision_backbones.measure.kernels import trace_ops
    from vision_backbones.measure.machine import describe, machine_info
    from vision_backbones.measure.predictor import pinned
    from vision_backbones.measure.predictor_build import (
        SPACES_FOR_PREDICTOR,
        load_or_build,
        space_plan,
        zoo_plan,
    )
    from vision_backbones.progress import progress_bar
    from vision_backbones.registry import list_models
    from vision_backbones.search.latency import LatencySettings, LatencyTable

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-space", type=int, default=200)
    parser.add_argument("--build-per-space", type=int, default=25)
    parser.add_argument("--spaces", nargs="+", default=list(SPACES_FOR_PREDICTOR))
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget-s", type=float, default=1500.0, help="the predictor's build budget")
    parser.add_argument(
        "--out", type=Path, default=OUT, help="the folder of this machine's runs and reports (resumes from it)"
    )
    parser.add_argument("--cache", type=Path, default=None, help="the predictor cache (default: in --out)")
    parser.add_argument("--models", default="*", help="shell pattern over the registered models (default: all)")
    parser.add_argument("--skip-zoo", action="store_true")
    parser.add_argument("--runtime", choices=("eager", "onnxruntime"), default="eager")
    parser.add_argument("--max-slowdown", type=float, default=0.10, help="the quiet gate (share above the reference)")
    parser.add_argument("--tries", type=int, default=6, help="measurements of a row at most, under the quiet gate")
    parser.add_argument("--no-gate", action="store_true", help="keep every first measurement (the *_ruled files)")
    parser.add_argument(
        "--passes",
        type=int,
        default=1,
        help="measure every network this many times, each pass over all of them (even passes in reverse order); "
        "a network's latency is the geometric mean of its passes",
    )
    args = parser.parse_args()
    if args.passes < 1:
        parser.error(f"--passes must be at least 1, got {args.passes}")
    gate: dict[str, Any] = (
        {} if args.no_gate else {"max_slowdown": args.max_slowdown, "tries": args.tries, "pause_s": 3.0}
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    zoo_names = list_models(args.models)
    onnx = args.runtime == "onnxruntime"
    runtime_tag = "onnxruntime_" if onnx else ""
    cache = args.cache or out / f"kernels_{runtime_tag}{args.clock}.json"
    suffix = f"{runtime_tag}{args.clock}_ruled" + ("" if args.no_gate else "_quiet")
    runs_path = out / f"runs_{suffix}.jsonl"
    # ONNX Runtime's kernel lists need an export to recover, so they are kept beside the rows (not committed)
    kernel_lists = out / f"kernels_{suffix}_rows"
    ungated_lists = None if args.no_gate else out / f"kernels_{runtime_tag}{args.clock}_ruled_rows"
    fix_thresholds()
    with pinned(1):  # made before the build fits or exports anything: every row is measured in a fork of it
        young = young_copy()
    load_before = os.getloadavg()
    with progress_bar(remaining=True) as bar:
        task = bar.add_task("build", total=None)
        predictor = load_or_build(
            cache,
            runtime=args.runtime,
            clock=args.clock,
            per_space=args.build_per_space,
            budget_s=args.budget_s,
            models=zoo_names,
            on_progress=lambda label, i, n: bar.update(task, description=f"build: {label}", completed=i, total=n),
        )
    print(f"predictor: {len(predictor.samples)} networks, built in {predictor.build_seconds:.0f} s", flush=True)
    settings = LatencySettings(image_size=224, threads=1, repeats=5, warmup=2, clock=args.clock)
    table = LatencyTable.load(out / f"block_table_{args.clock}.json", settings)
    here = machine_info()["cpu"]
    # pass 1 is runs_<suffix>.jsonl (with the predictions made as it was measured); later passes only time
    later_passes = {k: out / f"runs_{suffix}_pass{k}.jsonl" for k in range(2, args.passes + 1)}
    measured: dict[int, dict[str, dict[str, Any]]] = {}
    for k, path in {1: runs_path, **later_passes}.items():
        measured[k] = {row["label"]: row for row in read_jsonl(path)}
        elsewhere = sorted({row["cpu"] for row in measured[k].values() if row.get("cpu", here) != here})
        if elsewhere:
            raise SystemExit(f"{path} holds rows measured on {elsewhere}; this is {here!r}: expected another --out")
    done = measured[1]
    again = {k: measured[k] for k in later_passes}

    # FLOPs line: the networks the kernel predictor was built on
    plan = {p.label: p for p in zoo_plan(zoo_names) + space_plan(args.build_per_space, 0)}
    build_points: list[tuple[str, float, float]] = []
    for sample in predictor.samples:
        planned = plan.get(sample.label)
        if planned is not None:
            build_points.append((sample.family, _flops(planned.base, planned.overrides, 224), sample.network_ms))

    tests = [] if args.skip_zoo else zoo_plan(zoo_names)
    tests += space_plan(args.per_space, 1, list(args.spaces))
    held_out_fits: dict[str, Any] = {}

    def fits_for(planned: Any) -> tuple[Any, tuple[float, float]]:
        """The kernel predictor and FLOPs line that may see ``planned``: its family left out for a registered model."""
        if planned.origin != "zoo":
            return predictor, _flops_line([(f, ms) for _, f, ms in build_points])
        if planned.family not in held_out_fits:
            from copy import copy

            fitted = copy(predictor).fit(exclude_families=[planned.family])
            line = _flops_line([(f, ms) for fam, f, ms in build_points if fam != planned.family])
            held_out_fits[planned.family] = (fitted, line)
        return held_out_fits[planned.family]

    stamp = f"{predictor.fingerprint}:{predictor.build_seconds}"

    def measured_row(planned: Any, first: bool) -> dict[str, Any]:
        """One network measured in a fork of the young copy; ONNX Runtime's ``first`` pass also predicts it from
        its kernels (kept from an earlier run, or read) and keeps them."""
        extra: dict[str, Any] = {}
        block: float | None = None
        if onnx:
            listed = [f / f"{planned.label}.json" for f in (kernel_lists, ungated_lists) if f]
            listed = [f for f in listed if f.exists()]
            # the session's kernels depend on the graph only: kept from an earlier run
            known = [(kind, row) for kind, row in json.loads(listed[0].read_text())] if listed else None
            ruled, kernels = young.run(partial(_onnx_row, planned, args.repeats, gate, known))
            if first:
                fitted, _ = fits_for(planned)
                extra = {"kernels": fitted.predict_kernel_lists([kernels])[0], "predictor": stamp}
                kernel_lists.mkdir(exist_ok=True)
                atomic_write_bytes(kernel_lists / f"{planned.label}.json", json.dumps(kernels).encode())
        else:
            ruled, block = young.run(partial(_eager_row, planned, table, args.repeats, gate))
        return {
            "label": planned.label,
            "family": planned.family,
            "origin": planned.origin,
            "measured_ms": ruled.ms,
            "raw_ms": ruled.raw_ms,
            "ruler_ms": ruled.ruler_ms,
            "reference_ms": predictor.ruler_ms,  # the units of measured_ms (see at_reference)
            "tries": ruled.tries,
            "quiet": ruled.quiet,
            "block_table": block,
            "flops": _flops(planned.base, planned.overrides, 224),
            "load": os.getloadavg()[0],
            "cpu": here,
            **extra,
        }

    with pinned(1), progress_bar(remaining=True) as bar:
        young.setup(partial(_predictors_ruler, predictor.fingerprint, predictor.ruler_ms))
        for k in range(1, args.passes + 1):
            task = bar.add_task(f"pass {k}", total=len(tests))
            for planned in tests if k % 2 else tests[::-1]:
                bar.update(task, description=f"pass {k}: {planned.label}")
                # a row whose kernel list is kept is predicted again by this build; one without it keeps the
                # prediction made when it was measured, which must then be this build's
                if (
                    k == 1
                    and onnx
                    and planned.label in done
                    and done[planned.label].get("predictor") != stamp
                    and not (kernel_lists / f"{planned.label}.json").exists()
                ):
                    raise SystemExit(
                        f"{runs_path} holds predictions of another predictor build and no kernel list for "
                        f"{planned.label}; expected the rows deleted before a new build"
                    )
                if k == 1 and planned.label not in done:
                    row = measured_row(planned, first=True)
                    append_jsonl(runs_path, row)
                    done[planned.label] = row
                elif k > 1 and planned.label not in again[k]:
                    row = measured_row(planned, first=False)
                    row = {
                        key: row[key]
                        for key in (
                            "label",
                            "measured_ms",
                            "raw_ms",
                            "ruler_ms",
                            "reference_ms",
                            "tries",
                            "quiet",
                            "load",
                            "cpu",
                        )
                    }
                    append_jsonl(later_passes[k], row)
                    again[k][planned.label] = row
                bar.advance(task)
    young.close()
    load_after = os.getloadavg()

    # predictions (cheap: meta traces and forests)
    from vision_backbones.registry import build_on_meta

    def at_reference(row: dict[str, Any]) -> float:
        """A row's milliseconds at this predictor's ruler reference: a ruled time is the ratio to the ruler times
        the reference it was measured with (``reference_ms``), and a rebuilt predictor calibrates another one
        (eager rows are kept across builds); a row without one was measured at this predictor's."""
        measured_at = row.get("reference_ms") or predictor.ruler_ms
        return float(row["measured_ms"]) * (predictor.ruler_ms / measured_at if predictor.ruler_ms else 1.0)

    start = time.perf_counter()
    reused = 0
    results: dict[str, dict[str, Any]] = {}
    for planned in tests:
        row = dict(done[planned.label])
        # a network's latency: the geometric mean of its passes (each pass kept beside it)
        row["measured_passes"] = [at_reference(row)] + [at_reference(again[k][planned.label]) for k in again]
        row["measured_ms"] = math.exp(statistics.fmean(math.log(ms) for ms in row["measured_passes"]))
        fitted, line = fits_for(planned)
        if not onnx:
            row["kernels"] = fitted.predict_ops(
                trace_ops(build_on_meta(planned.base, **planned.overrides), (1, 3, 224, 224))
            )
        elif (kernel_lists / f"{planned.label}.json").exists():  # else as predicted when it was measured
            reused += 1
            kernels = json.loads((kernel_lists / f"{planned.label}.json").read_text())
            row["kernels"] = fitted.predict_kernel_lists([[(kind, features) for kind, features in kernels]])[0]
        row["flops_linear"] = line[0] * row["flops"] + line[1]
        results[planned.label] = row
    predict_seconds = time.perf_counter() - start

    groups = benchmark_groups(list(results.values()))
    methods = METHODS[:2] if onnx else METHODS
    table_rows = {
        group: {
            m: scores([r[m] for r in rows if r[m] is not None], [r["measured_ms"] for r in rows if r[m] is not None])
            for m in methods
        }
        for group, rows in groups.items()
    }
    # with several passes: how often two passes agree, and the kernel predictor against each pass alone
    by_pass = (
        {
            group: {
                "agreement": [
                    scores([r["measured_passes"][k] for r in rows], [r["measured_passes"][0] for r in rows])
                    for k in range(1, args.passes)
                ],
                "kernels": [
                    scores([r["kernels"] for r in rows], [r["measured_passes"][k] for r in rows])
                    for k in range(args.passes)
                ],
            }
            for group, rows in groups.items()
        }
        if args.passes > 1
        else {}
    )
    # the noise ceiling: each registered model was measured whole twice, in the build and here
    twice = [(s.network_ms, results[s.label]["measured_ms"]) for s in predictor.samples if s.label in results]
    ceiling = scores([a for a, _ in twice], [b for _, b in twice]) if twice else {"n": 0}
    summary = {
        "noise_ceiling": ceiling,
        "machine": machine_info(),
        "clock": args.clock,
        "runtime": args.runtime,
        "fingerprint": predictor.fingerprint,
        "ruler_reference_ms": predictor.ruler_ms,
        "build_seconds": predictor.build_seconds,
        "build_networks": len(predictor.samples),
        "fusion": predictor.fusion,
        "overhead_ms": predictor.overhead_ms,
        "fit_choice": None if predictor.fit_choice is None else predictor.fit_choice.to_json(),
        "predict_seconds": predict_seconds,
        "load_before": load_before,
        "load_after": load_after,
        "scores": table_rows,
        "passes": args.passes,
        "by_pass": by_pass,
        "rows": results,
    }
    atomic_write_bytes(out / f"results_{suffix}.json", (json.dumps(summary, indent=1) + "\n").encode())
    _plot(results, out / f"predicted_vs_measured_{suffix}.png", methods)
    runtime_text = (
        f"ONNX Runtime {predictor.fingerprint.get('onnxruntime')} (every graph optimization, CPU provider)"
        if onnx
        else f"Eager PyTorch {torch.__version__}"
    )
    command = (
        f"`python benchmarks/latency_predictor.py{' --runtime onnxruntime' if onnx else ''} --clock {args.clock} "
        f"--per-space {args.per_space}{f' --passes {args.passes}' if args.passes > 1 else ''}`"
    )
    fusion_text = _onnx_fusion_text(predictor.fusion) if onnx else _fusion_text(predictor.fusion)
    row_load = statistics.median(float(r.get("load", float("nan"))) for r in results.values())
    lines = [
        f"# Latency predictors against measured latency ({runtime_text.split(' (')[0]}, {args.clock} clock, ruled)",
        "",
        f"{command} on {describe(summary['machine'])}.",
        f"{runtime_text}, batch 1, 224 px, 1 thread pinned to one CPU, malloc thresholds fixed; "
        f"every timing ruled (ruler reference {predictor.ruler_ms:.2f} ms); load average while the rows were "
        f"measured (1 min, median over rows; they resume from `runs_{suffix}.jsonl`) {row_load:.2f}, "
        f"{load_before[0]:.2f} / {load_after[0]:.2f} before / after this run."
        + ("" if onnx else " The per-block table's entries are raw timings from its cache.")
        + _gate_text(results.values(), args),
        f"Kernel predictor: built from {len(predictor.samples)} profiled networks in {predictor.build_seconds / 60:.1f} min"
        f"{_build_gate_text(predictor.samples)}; "
        f"fusion: {fusion_text}; {_fit_text(predictor.fit_choice)}; predicting all {len(results)} networks took "
        f"{predict_seconds:.1f} s"
        + (
            " (ONNX Runtime: each network's kernels were read after an export while it was measured, and kept in "
            f"`{kernel_lists.name}/`, not committed; {reused} of {len(results)} predicted from them by this run's "
            "predictor, the rest as predicted when measured)."
            if onnx
            else "."
        ),
        "",
        "| test set | n | predictor | within ±10 % | within ±5 % | RMSE ms | RMSPE % | median error % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {"kernels": "**kernels**", "flops_linear": "FLOPs-linear", "block_table": "per-block table"}
    for group, by_method in table_rows.items():
        for method, s in by_method.items():
            if not s["n"]:
                lines.append(f"| {group} | 0 | {names[method]} | cannot split these networks into blocks | | | | |")
                continue
            lines.append(
                f"| {group} | {s['n']} | {names[method]} | {s['within_10']:.1f} | {s['within_5']:.1f} | "
                f"{s['rmse_ms']:.2f} | {s['rmspe']:.1f} | {s['median_error']:+.1f} |"
            )
    if ceiling["n"]:
        lines += [
            "",
            f"Noise ceiling: the {ceiling['n']} registered models were each measured whole twice, by the build and by this "
            f"run, in two processes on the same quiet machine: the two agree within ±10 % for {ceiling['within_10']:.1f} % "
            f"of them and within ±5 % for {ceiling['within_5']:.1f} % (RMSPE {ceiling['rmspe']:.1f} %). No predictor can "
            "agree with a measurement more often than the measurement agrees with itself.",
        ]
    if by_pass:
        lines += [
            "",
            f"Passes: every network was measured {args.passes} times, each pass over all {len(results)} networks (the "
            "even passes in reverse order, so a slow patch of the machine meets other networks), in forks of the "
            "same young copy; the table's latency is the geometric mean of a network's passes. Pass k against "
            "pass 1 (how often the measurement agrees with itself), and the kernel predictor against each pass alone:",
            "",
            "| test set | passes agree ±10 % | ±5 % | kernels ±10 % against each pass |",
            "|---|---|---|---|",
        ]
        for group, found in by_pass.items():
            agree = found["agreement"]
            shares = [" / ".join(f"{a[key]:.1f}" for a in agree) for key in ("within_10", "within_5")] + [
                " / ".join(f"{k['within_10']:.1f}" for k in found["kernels"])
            ]
            lines.append(f"| {group} | " + " | ".join(shares) + " |")
    atomic_write_bytes(out / f"report_{suffix}.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


def _predictors_ruler(fingerprint: dict[str, Any], ruler_ms: float | None, state: dict[str, Any]) -> None:
    """The predictor's ruler (``Ruler.of``: its runtime, threads, clock and reference), made in the young copy
    as ``state["ruler"]`` (the predictor itself, with its samples, is not sent there)."""
    from types import SimpleNamespace

    from vision_backbones.measure.ruler import Ruler

    state["ruler"] = Ruler.of(SimpleNamespace(fingerprint=fingerprint, ruler_ms=ruler_ms))


def _onnx_row(
    planned: Any,
    repeats: int,
    gate: dict[str, Any],
    known: list[tuple[str, list[float]]] | None,
    state: dict[str, Any],
) -> tuple[Any, list[tuple[str, list[float]]]]:
    """One ONNX Runtime row, taken in a fork of this process's young copy (``measure.isolated``): the
    network exported, timed whole in a session against ``state["ruler"]``, and its kernels (``known``,
    kept from an earlier run, or read from one profiled call)."""
    from vision_backbones.measure import onnx_kernels
    from vision_backbones.measure.ruler import ruled_ms
    from vision_backbones.registry import create_model

    torch.manual_seed(0)
    model = create_model(planned.base, **planned.overrides).eval()
    example = torch.randn(1, 3, 224, 224)
    data = onnx_kernels.export(model, (1, 3, 224, 224))
    plain = onnx_kernels.session(data, 1)
    feed = {plain.get_inputs()[0].name: example.numpy()}
    ruled = ruled_ms(lambda: plain.run(None, feed), state["ruler"], repeats=repeats, warmup=2, **gate)
    return ruled, known if known is not None else onnx_kernels.profile(data, (1, 3, 224, 224), repeats=0).kernels


def _eager_row(
    planned: Any, table: Any, repeats: int, gate: dict[str, Any], state: dict[str, Any]
) -> tuple[Any, float | None]:
    """One eager row, taken in a fork of this process's young copy (``measure.isolated``: every row then
    runs in the same young process, as the predictor's profiles did): the network built, timed against
    ``state["ruler"]``, and predicted by the per-block table (``None`` for blocks it cannot split, NASNet's
    cells)."""
    from vision_backbones.measure.ruler import ruled_ms
    from vision_backbones.registry import create_model

    torch.manual_seed(0)
    model = create_model(planned.base, **planned.overrides).eval()
    example = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ruled = ruled_ms(lambda: model(example), state["ruler"], repeats=repeats, warmup=2, **gate)
    try:
        block = table.predict_ms(model)
    except (AttributeError, ValueError, RuntimeError):
        block = None
    return ruled, block


def _fit_text(choice: Any) -> str:
    """The fit options the build chose (``measure.predictor_fit``) and what each candidate scored."""
    if choice is None:
        return "fit options not chosen (a predictor made before builds chose them)"
    scored = ", ".join(f"{name} {share:.1f}" for name, share in choice.shares.items())
    return (
        f"fit chosen by the build's cross-validation on its own networks (rule {choice.rule}: registered families "
        f"held out, search-space members by fold; {choice.seconds / 60:.1f} min): **{choice.name}** (mean share "
        f"within ±10 %: {scored})"
    )


def _build_gate_text(samples: Any) -> str:
    """How the build's profiles met the library's quiet gate (none recorded: an ungated build)."""
    from vision_backbones.measure.ruler import QUIET_GATE

    gated = [s for s in samples if s.ruler_slowdown is not None]
    if not gated:
        return " (ungated)"
    met = sum(s.ruler_slowdown <= QUIET_GATE for s in gated)
    again = sum(s.tries > 1 for s in gated)
    return (
        f" (each profile gated at {100 * QUIET_GATE:.0f} %: {met} of {len(gated)} met it, {again} profiled more "
        "than once)"
    )


def _gate_text(rows: Any, args: argparse.Namespace) -> str:
    rows = list(rows)
    if args.no_gate:
        return ""
    met = sum(bool(r.get("quiet")) for r in rows)
    again = sum(int(r.get("tries", 1)) > 1 for r in rows)
    ruler_median = statistics.median(r["ruler_ms"] for r in rows)
    return (
        f" Quiet gate: a row is kept when its ruler ran within {100 * args.max_slowdown:.0f} % of its quiet speed "
        "in this process (`Ruler.quiet_ms`; rows measured before that change: of the reference), "
        f"else measured again (up to {args.tries} times); {met} of {len(rows)} rows met it, {again} were measured "
        f"more than once; ruler median over the rows {ruler_median:.2f} ms."
    )


def _fusion_text(fusion: dict[str, dict[str, float]]) -> str:
    if not fusion:
        return "not run"
    return ", ".join(
        f"{pair} {'fused' if v['fused'] else 'not fused'} ({v['share_of_second']:.2f} of the second op)"
        for pair, v in sorted(fusion.items())
    )


def _onnx_fusion_text(fusion: dict[str, dict[str, float]]) -> str:
    fused = [f"{op} {100 * v['fused']:.0f} %" for op, v in sorted(fusion.items()) if v["fused"] > 0]
    return "exported ops that ONNX Runtime fused into other kernels: " + (", ".join(fused) or "none")


def _plot(results: dict[str, dict[str, Any]], path: Path, methods: tuple[str, ...] = METHODS) -> None:
    from vision_backbones.plots import pyplot, save_figure

    plt = pyplot()
    figure, axes = plt.subplots(1, len(methods), figsize=(4.4 * len(methods), 4.3), sharex=True, sharey=True)
    for ax, method in zip(axes, methods):
        for origin, marker in (("zoo", "s"), ("space", ".")):
            rows = [
                r for r in results.values() if (r["origin"] == "zoo") == (origin == "zoo") and r[method] is not None
            ]
            ax.scatter(
                [r["measured_ms"] for r in rows],
                [r[method] for r in rows],
                marker=marker,
                s=12,
                alpha=0.6,
                label=origin,
            )
        top = max(r["measured_ms"] for r in results.values())
        ax.plot([0.5, top], [0.5, top], "k-", lw=0.8)
        ax.fill_between([0.5, top], [0.45, 0.9 * top], [0.55, 1.1 * top], color="grey", alpha=0.2, label="±10 %")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(method)
        ax.set_xlabel("measured ms")
    axes[0].set_ylabel("predicted ms")
    axes[0].legend()
    save_figure(figure, path)


if __name__ == "__main__":
    sys.exit(main())
