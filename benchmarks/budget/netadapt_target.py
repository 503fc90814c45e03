#!/usr/bin/env python
"""Does NetAdapt end within ±5 % of its latency target, now that its measurements are ruled?

    python benchmarks/budget/netadapt_target.py [--models mobilenet_v2 resnet18] [--fractions 0.75 0.5]
        [--seeds 0] [--out FOLDER] [--predictor-cache kernels_cpu.json]

Each run: ``budget.netadapt.adapt`` at ``--fraction`` of the measured starting latency (224 px, batch 1,
1 thread, CPU time, ruled, the kernel predictor of ``benchmarks/latency_predictor/kernels_cpu.json``
choosing between measurements every 3 steps), with a short training budget (accuracy is not what is
checked here: 1 pretrain epoch, 300 images per proposal, no long fine-tune). Then, in this process, the
start and the final network are timed again together (``measure.ruler.ruled_ms``, 15 rounds), and the
target is checked against that re-timing as well as against NetAdapt's own last measurement. Since
NetAdapt measures through the ruler's quiet gate, takes a step that lands under the target's band once
more, and measures its start again beside its end (``AdaptResult.closing_*``), the runs also say how
many steps were taken again and the closing start / end. Writes ``netadapt_target.json`` and ``.md`` in
``--out`` (default ``benchmarks/budget``); runs already in the JSON are kept (resumable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent / "latency_predictor" / "kernels_cpu.json"


def run(name: str, fraction: float, seed: int, cache: Path) -> dict[str, Any]:
    import torch

    from vision_backbones.budget.netadapt import adapt
    from vision_backbones.measure.allocator import fix_thresholds
    from vision_backbones.measure.machine import machine_info
    from vision_backbones.measure.predictor import pinned
    from vision_backbones.measure.predictor_build import load_or_build
    from vision_backbones.measure.ruler import Ruler, ruled_ms
    from vision_backbones.registry import create_model

    fix_thresholds()
    torch.set_num_threads(1)
    predictor = load_or_build(cache, threads=1, clock="cpu")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vb-netadapt-") as folder:
        result = adapt(
            name, float("inf"), target_fraction=fraction, data="mnist", image_size=224, threads=1,
            step_fraction=0.05, pretrain_epochs=1, proposal_images=300, final_epochs=0, seed=seed, clock="cpu",
            confirm_every=3, predictor=predictor, out=Path(folder),
        )  # fmt: skip
    seconds = time.perf_counter() - start
    example = torch.randn(1, 3, 224, 224)
    with pinned(1), torch.no_grad():
        ruler = Ruler.network(clock="cpu", reference_ms=predictor.ruler_ms)
        before = create_model(name).eval()
        after = create_model(name, **result.overrides).eval()
        again = {}
        for label, model in (("start", before), ("final", after), ("start2", before), ("final2", after)):
            again[label] = ruled_ms(lambda model=model: model(example), ruler, repeats=15, warmup=2).ms
    start_ms = (again["start"] + again["start2"]) / 2
    final_ms = (again["final"] + again["final2"]) / 2
    return {
        "name": name,
        "fraction": fraction,
        "seed": seed,
        "steps": len(result.steps) - 1,
        "in_run_start_ms": result.start_latency_ms,
        "in_run_target_ms": result.target_ms,
        "in_run_final_ms": result.latency_ms,
        "in_run_ratio": result.latency_ms / result.target_ms,
        "retimed_start_ms": start_ms,
        "retimed_final_ms": final_ms,
        "retimed_fraction": final_ms / start_ms,
        "retimed_ratio": final_ms / start_ms / fraction,
        "closing_start_ms": result.closing_start_ms,
        "closing_ms": result.closing_ms,
        "redone": sum(bool(step.get("redone")) for step in result.steps),
        "cpu": machine_info()["cpu"],
        "seconds": seconds,
        "load": os.getloadavg()[0],
        "overrides": result.overrides,
    }


def main() -> int:
    from vision_backbones.io import atomic_write_bytes
    from vision_backbones.measure.machine import describe, machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2", "resnet18"])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.75, 0.5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--out", type=Path, default=HERE, help="this machine's folder (resumes from its JSON)")
    parser.add_argument(
        "--predictor-cache", type=Path, default=CACHE, help="the kernel predictor built on this machine"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "netadapt_target.json"
    stored = json.loads(path.read_text()) if path.exists() else {"machine": {}, "runs": []}
    done = stored["runs"]
    here = machine_info()["cpu"]
    if any(r.get("cpu", stored["machine"].get("cpu", here)) != here for r in done):
        raise SystemExit(f"{path} holds runs of another CPU; this is {here!r}: expected another --out")
    for name in args.models:
        for fraction in args.fractions:
            for seed in args.seeds:
                if any(r["name"] == name and r["fraction"] == fraction and r["seed"] == seed for r in done):
                    continue
                done.append(run(name, fraction, seed, args.predictor_cache))
                payload = {"machine": machine_info(), "runs": done}
                atomic_write_bytes(path, (json.dumps(payload, indent=1) + "\n").encode())
                print(json.dumps({k: v for k, v in done[-1].items() if k != "overrides"}), flush=True)
    lines = [
        "# NetAdapt against its own latency target (ruled measurements)",
        "",
        f"`python benchmarks/budget/netadapt_target.py` on {describe(machine_info())}. 224 px, batch 1, 1 thread, CPU",
        "time, every timing ruled; short training (accuracy not checked here). In-run: NetAdapt's last whole-network",
        "measurement over its target. Re-timed: start and final network timed again together in one process",
        "(15 ruled rounds each, twice), final / start over the asked fraction.",
        "",
        "Closing: NetAdapt's own start and end measured again together after its last step, end / start over",
        "the asked fraction. Taken again: steps whose confirmed network landed under the target's band.",
        "",
        "| model | fraction | seed | steps | taken again | start ms | target ms | final ms (in run) | in-run / target "
        "| closing / asked | re-timed final / start | re-timed / asked | min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in done:
        closing = f"{r['closing_ms'] / r['closing_start_ms'] / r['fraction']:.3f}" if "closing_ms" in r else "-"
        lines.append(
            f"| {r['name']} | {r['fraction']:g} | {r['seed']} | {r['steps']} | {r.get('redone', '-')} "
            f"| {r['in_run_start_ms']:.2f} | {r['in_run_target_ms']:.2f} | {r['in_run_final_ms']:.2f} "
            f"| {r['in_run_ratio']:.3f} | {closing} | {r['retimed_fraction']:.3f} | {r['retimed_ratio']:.3f} "
            f"| {r['seconds'] / 60:.1f} |"
        )
    inside = [r for r in done if abs(r["in_run_ratio"] - 1) <= 0.05]
    retimed = [r for r in done if abs(r["retimed_ratio"] - 1) <= 0.05]
    lines += [
        "",
        f"Within ±5 % of the target: {len(inside)} of {len(done)} in-run, {len(retimed)} of {len(done)} re-timed.",
    ]
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(args.out / "netadapt_target.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
