#!/usr/bin/env python
"""Eager parity: our models against torchvision/timm, same weights, each pair in a fresh process.

``make bench-parity``. Every (pair, input, threads, mode) runs in its own subprocess: a process that
built and ran other models first has a grown glibc mmap threshold, which hides a forward that keeps
too many maps alive (the page faults it causes vanish). Inside the subprocess the two models hold the
same weights (``measure.references.build_pair``: ours converted from the reference's state dict) and
run in interleaved rounds (the order alternates); each round gives one ratio ours/reference and the
table shows the median over rounds, with the minor page faults per call of each model beside it.
Writes ``benchmarks/parity.json`` and ``benchmarks/PARITY.md`` (atomically), with the CPU (model name,
ISA flags) and the load average before and after. ``--quick``: three models, 160 px batch 2, one
thread, printed only unless ``--json`` / ``--markdown`` are given.

Two allocator protocols (``--allocator``): ``glibc``, the process as a user gets it, where glibc's
dynamic mmap/trim thresholds make the page faults (and up to 20 % of the time) depend on what the
process allocated before; ``fixed``, the same pair after ``measure.allocator.fix_thresholds()``, which
takes the allocator's history out and leaves the architectures' own speed. The warm-up runs ours,
reference, reference, ours, so neither model is always the first to grow the heap.

Rounds inside one process are not independent: where the process's allocations land (pages, cache
sets) biases every round of it alike, so a p-value over one process's rounds can flag a 1 % gap that
another process reverses. ``--processes K`` runs every setting in K fresh processes (interleaved over
the settings, so a slow spell of the host touches all of them) and tests across processes: the row's
ratio is the median of the K per-process medians and p is a one-sided Wilcoxon over their logs.
``--control`` adds an A/A row per setting: the reference against a second copy of itself, constructed
after it and loaded with its state dict as ours is, which measures what that placement noise alone
gives (a ratio of 1 expected).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# (library, reference name); ours is the registered model the converter maps it to.
PAIRS = (
    ("torchvision", "resnet18"),
    ("torchvision", "resnet50"),
    ("timm", "resnet50"),
    ("torchvision", "mobilenet_v3_large"),
    ("torchvision", "efficientnet_b0"),
    ("torchvision", "shufflenet_v2_x1_0"),
    ("torchvision", "densenet121"),
    ("torchvision", "vgg11_bn"),
    ("torchvision", "mnasnet0_5"),
)
QUICK = ("resnet18", "resnet50", "mobilenet_v3_large")
INPUTS = ((160, 2), (224, 8))  # (pixels, batch)
THREADS = (1, 2)
MODES = ("eval", "train")


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """One pair in this (fresh) process: interleaved rounds of ours and the reference."""
    import torch

    from vision_backbones.measure.references import build_pair, build_reference
    from vision_backbones.measure.steps import training_step

    if job.get("allocator") == "fixed":
        from vision_backbones.measure.allocator import fix_thresholds

        if not fix_thresholds():
            raise SystemExit("the fixed allocator protocol needs glibc's mallopt")
    torch.set_num_threads(job["threads"])
    ours, theirs = build_pair(job["library"], job["name"])
    if job.get("control"):  # A/A: a second reference, built after the first and loaded as ours is
        ours = build_reference(job["library"], job["name"], seed=1)
        ours.load_state_dict(theirs.state_dict())
    x = torch.randn(job["batch"], 3, job["size"], job["size"])
    calls = {}
    for key, model in (("ours", ours), ("ref", theirs)):
        if job["mode"] == "train":
            calls[key] = training_step(model.train(), x, torch.randint(0, 1000, (job["batch"],)))
        else:
            calls[key] = lambda model=model: model(x)
    grad = torch.enable_grad() if job["mode"] == "train" else torch.no_grad()
    with grad:
        start = time.perf_counter()
        for key in ("ours", "ref", "ref", "ours"):  # warm-up, neither model always first
            calls[key]()
        per_call = (time.perf_counter() - start) / 4
        inner = max(1, min(20, math.ceil(job["min_time"] / per_call)))
        times: dict[str, list[float]] = {k: [] for k in calls}
        faults: dict[str, list[float]] = {k: [] for k in calls}
        keys = list(calls)
        for r in range(job["rounds"]):
            for key in keys[r % 2 :] + keys[: r % 2]:
                before, start = _faults(), time.perf_counter()
                for _ in range(inner):
                    calls[key]()
                times[key].append((time.perf_counter() - start) / inner * 1e3)
                faults[key].append((_faults() - before) / inner)
    ratios = [a / b for a, b in zip(times["ours"], times["ref"])]
    return {
        **job,
        "inner": inner,
        "ours_ms": statistics.median(times["ours"]),
        "ref_ms": statistics.median(times["ref"]),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratios": ratios,
        "p_slower": _p_slower(ratios),
        "ours_faults": statistics.median(faults["ours"]),
        "ref_faults": statistics.median(faults["ref"]),
    }


def _p_slower(ratios: list[float]) -> float | None:
    """One-sided Wilcoxon signed-rank p-value that ours is slower (log ratios above 0); ``None`` below 5 rounds."""
    if len(ratios) < 5:
        return None
    from scipy.stats import wilcoxon

    return float(wilcoxon([math.log(r) for r in ratios], alternative="greater").pvalue)


def run_fresh(job: dict[str, Any]) -> dict[str, Any]:
    """``measure(job)`` in a new Python process (its last stdout line is the result)."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {**job, "error": (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def pooled(replicates: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from the same setting measured in several fresh processes: medians over processes, and
    p tested across processes (each process one observation)."""
    done = [r for r in replicates if "error" not in r]
    if not done:
        return replicates[0]
    ratios = [r["ratio"] for r in done]
    return {
        **{k: v for k, v in done[0].items() if k not in ("ratios", "replicate")},
        "ours_ms": statistics.median(r["ours_ms"] for r in done),
        "ref_ms": statistics.median(r["ref_ms"] for r in done),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "process_ratios": ratios,
        "processes": len(done),
        "p_slower": _p_slower(ratios),
        "ours_faults": statistics.median(r["ours_faults"] for r in done),
        "ref_faults": statistics.median(r["ref_faults"] for r in done),
    }


def _name(row: dict[str, Any]) -> str:
    return f"{row['name']} (A/A)" if row.get("control") else row["name"]


def _rounds_text(row: dict[str, Any]) -> str:
    return f"{row['rounds']} x {row['processes']} proc" if row.get("processes") else str(row["rounds"])


def _p_text(p: float | None) -> str:
    return "-" if p is None else (f"**{p:.3f}**" if p < 0.05 else f"{p:.3f}")


def markdown(rows: list[dict[str, Any]], machine: dict[str, Any], loads: list[Any]) -> str:
    from vision_backbones.measure.machine import describe

    lines = [
        "# Eager parity: ours / reference, same weights, each pair in a fresh process",
        "",
        f"Generated by `python benchmarks/parity.py` (`make bench-parity`). Machine: {describe(machine)}.",
        f"Load average (1, 5, 15 min) before: {loads[0]}, after: {loads[1]}. Median of interleaved rounds;",
        "ratio < 1: ours is faster. p: one-sided Wilcoxon signed-rank test that ours is slower, over the rounds' log",
        "ratios, or over the per-process median ratios where a row ran in several processes ('7 x 8 proc': its ratio",
        "is then the median over processes and min-max their range); bold below 0.05. (A/A): the reference against",
        "a second copy of itself loaded as ours is, the noise floor. Faults: minor page faults per call.",
        "",
        "| model | reference | allocator | input | threads | mode | ours ms | ref ms | ratio (min-max) | p ours slower | rounds | ours faults | ref faults |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        setting = (
            f"| {_name(r)} | {r['library']} | {r.get('allocator', 'glibc')} | {r['size']} px x {r['batch']} "
            f"| {r['threads']} | {r['mode']} |"
        )
        if "error" in r:
            lines.append(f"{setting} error: {r['error']} | | | | |")
            continue
        lines.append(
            f"{setting} {r['ours_ms']:.1f} | {r['ref_ms']:.1f} | {r['ratio']:.3f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) "
            f"| {_p_text(r.get('p_slower'))} | {_rounds_text(r)} | {r['ours_faults']:.0f} | {r['ref_faults']:.0f} |"
        )
    lines += [
        "",
        "| allocator | input | threads | mode | geomean ratio | worst | faults per call, ours / ref (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        if "error" not in r and not r.get("control"):
            key = (r.get("allocator", "glibc"), r["size"], r["batch"], r["threads"], r["mode"])
            groups.setdefault(key, []).append(r)
    for (allocator, size, batch, threads, mode), group in sorted(groups.items(), key=lambda kv: kv[0]):
        ratios = [r["ratio"] for r in group]
        geomean = math.exp(sum(map(math.log, ratios)) / len(ratios))
        worst = max(group, key=lambda r: r["ratio"])
        faults = f"{statistics.median(r['ours_faults'] for r in group):.0f} / {statistics.median(r['ref_faults'] for r in group):.0f}"
        lines.append(
            f"| {allocator} | {size} px x {batch} | {threads} | {mode} | {geomean:.3f} "
            f"| {worst['ratio']:.3f} ({worst['name']}) | {faults} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)} at 160 px batch 2, 1 thread")
    parser.add_argument("--models", nargs="+", help="only these reference names (e.g. resnet18)")
    parser.add_argument("--libraries", nargs="+", choices=("torchvision", "timm"), default=["torchvision", "timm"])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="eval, train or both (default)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per pair (default 9, quick 5)")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per timed measurement")
    parser.add_argument("--json", type=Path, default=None, help="default benchmarks/parity.json (not with --quick)")
    parser.add_argument("--markdown", type=Path, default=None, help="default benchmarks/PARITY.md (not with --quick)")
    parser.add_argument(
        "--allocator",
        choices=("glibc", "fixed", "both"),
        default="both",
        help="glibc's dynamic thresholds, fixed thresholds (measure.allocator), or both (default; quick: glibc)",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="merge these rows into the existing --json (same pair and setting replaced) and redraw the table",
    )
    parser.add_argument("--processes", type=int, default=1, help="fresh processes per setting, p across them")
    parser.add_argument("--control", action="store_true", help="add an A/A row per setting (reference vs itself)")
    parser.add_argument(
        "--inputs", nargs="+", help="only these inputs as PIXELSxBATCH (default 160x2 224x8)", default=None
    )
    parser.add_argument("--threads", nargs="+", type=int, choices=THREADS, default=list(THREADS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0

    from vision_backbones.io import atomic_write
    from vision_backbones.measure.machine import machine_info

    names = set(args.models or (QUICK if args.quick else [n for _, n in PAIRS]))
    unknown = names - {n for _, n in PAIRS}
    if unknown:
        raise SystemExit(f"unknown models {sorted(unknown)}; expected some of {sorted({n for _, n in PAIRS})}")
    rounds = args.rounds or (5 if args.quick else 9)
    if args.processes < 1:
        raise SystemExit(f"--processes {args.processes}: expected at least 1")
    inputs: list[tuple[int, int]] = list(INPUTS[:1] if args.quick else INPUTS)
    if args.inputs:
        try:
            inputs = [(int(text.split("x")[0]), int(text.split("x")[1])) for text in args.inputs]
        except (ValueError, IndexError):
            raise SystemExit(f"--inputs {args.inputs}: expected PIXELSxBATCH, e.g. 160x2") from None
    settings = [
        (s, b, t, m) for s, b in inputs for t in (THREADS[:1] if args.quick else args.threads) for m in args.modes
    ]
    allocators = ("glibc", "fixed") if args.allocator == "both" else (args.allocator,)
    if args.quick and args.allocator == "both":
        allocators = ("glibc",)
    jobs = [
        {
            "allocator": allocator,
            "library": lib,
            "name": name,
            "size": s,
            "batch": b,
            "threads": t,
            "mode": m,
            "rounds": rounds,
            "min_time": args.min_time,
            "control": control,
        }
        for lib, name in PAIRS
        if name in names and lib in args.libraries
        for s, b, t, m in settings
        for allocator in allocators
        for control in ((False, True) if args.control else (False,))
    ]
    machine, loads = machine_info(), [os.getloadavg()]
    replicates: list[list[dict[str, Any]]] = [[] for _ in jobs]
    for replicate in range(args.processes):  # every setting once, then again: host spells spread evenly
        for index, job in enumerate(jobs):
            replicates[index].append(run_fresh({**job, "replicate": replicate}))
            r = replicates[index][-1]
            print(
                f"{_name(r):>26} {r['library']:>11} {r['allocator']:>5} {r['size']}x{r['batch']} {r['threads']}t {r['mode']:>5}"
                f" #{replicate}: "
                + (
                    f"ratio {r['ratio']:.3f}, faults {r['ours_faults']:.0f} vs {r['ref_faults']:.0f}"
                    if "error" not in r
                    else r["error"]
                ),
                flush=True,
            )
    rows = [pooled(group) if args.processes > 1 else group[0] for group in replicates]
    loads.append(os.getloadavg())
    json_path = args.json or (None if args.quick else HERE / "parity.json")
    markdown_path = args.markdown or (None if args.quick else HERE / "PARITY.md")
    if args.update and json_path is not None and json_path.exists():
        from vision_backbones.io import read_json

        def key(row: dict[str, Any]) -> tuple[Any, ...]:
            fields = ("library", "name", "allocator", "size", "batch", "threads", "mode")
            return (*(row.get(k, "glibc") for k in fields), bool(row.get("control")))

        fresh = {key(r): r for r in rows}
        earlier = read_json(json_path)["rows"]
        rows = [fresh.pop(key(r), r) for r in earlier] + list(fresh.values())
    text = markdown(rows, machine, [tuple(round(v, 2) for v in load) for load in loads])
    print(text)
    if json_path is not None:
        payload = {"machine": machine, "load_average": {"before": loads[0], "after": loads[1]}, "rows": rows}
        atomic_write(json_path, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1) + "\n"))
    if markdown_path is not None:
        atomic_write(markdown_path, lambda tmp: Path(tmp).write_text(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
