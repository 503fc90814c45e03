#!/usr/bin/env python
"""How far one network's measured latency moves between two processes, raw and ruled, with glibc's
dynamic malloc thresholds and with fixed ones: the noise ceiling of every latency figure on this machine.

    python benchmarks/latency_noise.py [--zoo 30] [--per-space 5] [--repeats 7]

The networks: the ``--zoo`` cheapest registered models (by FLOPs) and ``--per-space`` random members of
each search space the predictor is tested on. Each protocol (``glibc``, ``fixed``) runs in two fresh
processes one after the other; each process measures every network once, eager, batch 1, 224 px, one
thread pinned to one CPU, CPU clock: *raw* (median of ``--repeats`` calls after a warm-up) and *ruled*
(``measure.ruler.ruled_ms``, the same calls alternated with the ruler, scaled to one reference that the
first process calibrates and the others reuse). The agreement of the two processes of a protocol
(share within ±10 % and ±5 %, RMSPE) is the best any predictor can score against such measurements.
Writes ``benchmarks/latency_predictor/noise.json`` and ``noise.md`` (atomically).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "latency_predictor"


def plan(zoo: int, per_space: int) -> list[dict[str, Any]]:
    from vision_backbones.budget.pick import model_flops
    from vision_backbones.measure.predictor_build import space_plan, zoo_plan
    from vision_backbones.registry import build_on_meta

    registered = zoo_plan()
    flops = {p.label: float(model_flops(p.base, 224, build_on_meta(p.base))[0]) for p in registered}
    cheapest = sorted(registered, key=lambda p: flops[p.label])[:zoo]
    return [{"label": p.label, "base": p.base, "overrides": p.overrides} for p in cheapest + space_plan(per_space, 7)]


def worker(job: dict[str, Any]) -> list[dict[str, Any]]:
    import torch

    from vision_backbones.measure.allocator import fix_thresholds
    from vision_backbones.measure.predictor import pinned
    from vision_backbones.measure.ruler import Ruler, ruled_ms
    from vision_backbones.registry import create_model

    if job["allocator"] == "fixed" and not fix_thresholds():
        raise SystemExit("the fixed protocol needs glibc's mallopt")
    rows = []
    with pinned(1):
        ruler = Ruler.network(reference_ms=job["reference_ms"])
        reference = ruler.reference(calls=31)
        for network in job["networks"]:
            torch.manual_seed(0)
            model = create_model(network["base"], **network["overrides"]).eval()
            example = torch.randn(1, 3, 224, 224)

            def forward(model: Any = model, example: Any = example) -> object:
                with torch.no_grad():
                    return model(example)

            ruled = ruled_ms(forward, ruler, repeats=job["repeats"], warmup=2)
            rows.append({"label": network["label"], "raw_ms": ruled.raw_ms, "ruled_ms": ruled.ms})
    return [{"reference_ms": reference}, *rows]


def agreement(first: list[float], second: list[float]) -> dict[str, float]:
    errors = [a / b - 1 for a, b in zip(first, second)]
    return {
        "n": len(errors),
        "within_10": 100 * sum(abs(e) <= 0.10 for e in errors) / len(errors),
        "within_5": 100 * sum(abs(e) <= 0.05 for e in errors) / len(errors),
        "rmspe": 100 * math.sqrt(statistics.fmean(e * e for e in errors)),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=int, default=30)
    parser.add_argument("--per-space", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(Path(args.worker).read_text()))))
        return 0

    import tempfile

    from vision_backbones.io import atomic_write
    from vision_backbones.measure.machine import describe, machine_info

    networks = plan(args.zoo, args.per_space)
    loads = [os.getloadavg()]
    runs: dict[str, list[list[dict[str, Any]]]] = {"glibc": [], "fixed": []}
    reference = None
    with tempfile.TemporaryDirectory() as scratch:
        for allocator in ("glibc", "fixed"):
            for process in range(2):
                job_path = Path(scratch) / "job.json"
                job = {"allocator": allocator, "networks": networks, "repeats": args.repeats, "reference_ms": reference}
                job_path.write_text(json.dumps(job))
                done = subprocess.run(
                    [sys.executable, __file__, "--worker", str(job_path)], capture_output=True, text=True, check=True
                )
                head, *rows = json.loads(done.stdout.strip().splitlines()[-1])
                reference = head["reference_ms"]
                runs[allocator].append(rows)
                print(f"{allocator} process {process + 1}: {len(rows)} networks", flush=True)
    loads.append(os.getloadavg())
    scores = {
        f"{allocator} {kind}": agreement(
            [r[f"{kind}_ms"] for r in runs[allocator][0]], [r[f"{kind}_ms"] for r in runs[allocator][1]]
        )
        for allocator in runs
        for kind in ("raw", "ruled")
    }
    machine = machine_info()
    lines = [
        "# Measurement noise: one network measured in two processes",
        "",
        f"`python benchmarks/latency_noise.py --zoo {args.zoo} --per-space {args.per_space} --repeats {args.repeats}` "
        f"on {describe(machine)}; load average {loads[0][0]:.2f} before, {loads[1][0]:.2f} after.",
        f"{len(networks)} networks ({args.zoo} cheapest registered models, {args.per_space} members of each search "
        "space), eager, batch 1, 224 px, 1 thread pinned, CPU clock; ruler reference "
        f"{reference:.2f} ms. Agreement of process 1 with process 2:",
        "",
        "| malloc thresholds | timing | within ±10 % | within ±5 % | RMSPE % |",
        "|---|---|---|---|---|",
    ]
    for key, s in scores.items():
        allocator, kind = key.split()
        lines.append(f"| {allocator} | {kind} | {s['within_10']:.1f} | {s['within_5']:.1f} | {s['rmspe']:.1f} |")
    text = "\n".join(lines) + "\n"
    payload = {"machine": machine, "loads": loads, "reference_ms": reference, "scores": scores, "runs": runs}
    OUT.mkdir(exist_ok=True)
    atomic_write(OUT / "noise.json", lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1) + "\n"))
    atomic_write(OUT / "noise.md", lambda tmp: Path(tmp).write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
