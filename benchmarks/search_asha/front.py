#!/usr/bin/env python
"""The ASHA search's Pareto front beside the registered zoo's front, on the same axes, with hypervolumes.

    python benchmarks/search_asha/front.py [--workers 2] [--max-ms 30]

Axes: test top-1 on the search's proxy task (MNIST, 3 epochs, seed 0, one thread: what every trial got)
and latency of the deployed network (3 x 224 x 224, 1000 classes, batch 1, one thread, median of 15,
wall clock) measured here, in this process, interleaved over three rounds, with nothing else running.

1. Every registered model is screened with one timed forward; those under ``--max-ms`` (the hypervolume's
   reference latency, 2 x the search's 15 ms target) join the measured set.
2. The search's full-fidelity trials (the ones ASHA let reach epoch 3) are rebuilt and measured with them.
3. Each zoo model is trained on the proxy task (``evaluate_architecture(name, {}, task, seed=0)``),
   ``--workers`` processes at a time; runs are cached in ``front_runs/`` so the command resumes.

Writes ``front.md``, ``front.json`` and ``front.png``. Hypervolume reference point: (top-1 50 %,
``--max-ms``); the volume is in points x ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RUNS = HERE / "front_runs"
REFERENCE_ACC = 50.0


def _train(name: str, task_fields: dict[str, Any]) -> dict[str, Any]:
    import torch

    from vision_backbones.io import atomic_write_bytes
    from vision_backbones.search.evaluate import ProxyTask, evaluate_architecture

    torch.set_num_threads(1)
    path = RUNS / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = evaluate_architecture(name, {}, ProxyTask(**task_fields), seed=0, latency=False)
    atomic_write_bytes(path, (json.dumps(result, indent=1) + "\n").encode())
    return result


def _screen(max_ms: float) -> list[str]:
    import time

    import torch

    from vision_backbones.registry import create_model, list_models

    kept = []
    for name in list_models():
        model = create_model(name).eval()
        x = torch.randn(1, 3, 224, 224)
        with torch.inference_mode():
            model(x)
            start = time.perf_counter()
            model(x)
            ms = (time.perf_counter() - start) * 1e3
        if ms < 1.5 * max_ms:  # one noisy forward: keep a margin, the precise rounds decide
            kept.append(name)
        print(f"screen {name}: {ms:.1f} ms", flush=True)
    return kept


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import torch

    from vision_backbones.io import atomic_write_bytes
    from vision_backbones.measure.machine import describe, machine_info
    from vision_backbones.pareto import hypervolume, pareto_front
    from vision_backbones.plots import save_figure
    from vision_backbones.registry import create_model
    from vision_backbones.search.latency import measure_latency_ms
    from vision_backbones.search.spaces import from_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-ms", type=float, default=30.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    search = json.loads((HERE / "search.json").read_text())
    base = search["space_definition"]["base"]
    trials = [json.loads(line) for line in (HERE / "trials.jsonl").read_text().splitlines() if line.strip()]
    full = [
        t for t in trials if not t["result"].get("pruned") and t["result"]["epochs_trained"] == search["task"]["epochs"]
    ]
    load_before = os.getloadavg()
    zoo = _screen(args.max_ms)
    networks: dict[str, torch.nn.Module] = {name: create_model(name).eval() for name in zoo}
    for t in full:
        networks[f"trial #{t['number']}"] = create_model(base, **from_json(t["architecture"])).eval()
    latency: dict[str, list[float]] = {name: [] for name in networks}
    for _ in range(3):
        for name, model in networks.items():
            latency[name].append(measure_latency_ms(model, image_size=224))
    load_after = os.getloadavg()
    del networks
    medians = {name: statistics.median(values) for name, values in latency.items()}
    zoo = [name for name in zoo if medians[name] < args.max_ms]
    RUNS.mkdir(exist_ok=True)
    with ProcessPoolExecutor(args.workers) as pool:
        accuracy = dict(zip(zoo, pool.map(_train, zoo, [search["task"]] * len(zoo)), strict=True))
    points = {
        "search": {f"trial #{t['number']}": (t["result"]["test_acc1"], medians[f"trial #{t['number']}"]) for t in full},
        "zoo": {name: (accuracy[name]["test_acc1"], medians[name]) for name in zoo},
    }
    reference = (REFERENCE_ACC, args.max_ms)
    summary: dict[str, Any] = {"reference": reference, "load_before": load_before, "load_after": load_after}
    for side, named in points.items():
        names = list(named)
        front = pareto_front([(named[n][1], named[n][0]) for n in names])
        summary[side] = {
            "points": named,
            "front": [names[i] for i in front],
            "hypervolume": hypervolume(list(named.values()), reference),
        }
    both = points["search"] | points["zoo"]
    summary["joint_front"] = [list(both)[i] for i in pareto_front([(lat, acc) for acc, lat in both.values()])]
    atomic_write_bytes(HERE / "front.json", (json.dumps(summary, indent=1) + "\n").encode())

    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for side, marker in (("zoo", "s"), ("search", "o")):
        named = summary[side]["points"]
        axes.scatter([lat for _, lat in named.values()], [acc for acc, _ in named.values()], marker=marker, alpha=0.35)
        front = summary[side]["front"]
        axes.step(
            [named[n][1] for n in front],
            [named[n][0] for n in front],
            where="post",
            marker=marker,
            label=f"{side} front (hypervolume {summary[side]['hypervolume']:.0f})",
        )
    for name in summary["zoo"]["front"]:
        acc, lat = summary["zoo"]["points"][name]
        axes.annotate(name, (lat, acc), fontsize=7)
    axes.set_xlabel("latency ms (224 px, batch 1, 1 thread)")
    axes.set_ylabel("proxy test top-1 % (MNIST, 3 epochs)")
    axes.set_ylim(REFERENCE_ACC, 100)
    axes.set_xlim(0, args.max_ms)
    axes.legend()
    save_figure(figure, HERE / "front.png")

    lines = [
        "# The ASHA search's front beside the registered zoo's",
        "",
        f"`python benchmarks/search_asha/front.py --max-ms {args.max_ms:g}` on {describe(machine_info())}.",
        f"Load average before / after timing: {load_before[0]:.2f} / {load_after[0]:.2f}.",
        f"Hypervolume reference: top-1 {REFERENCE_ACC:g} %, latency {args.max_ms:g} ms (points x ms).",
        "",
        "| side | networks | on its front | hypervolume |",
        "|---|---|---|---|",
    ]
    for side in ("search", "zoo"):
        lines.append(
            f"| {side} | {len(summary[side]['points'])} | {len(summary[side]['front'])} | {summary[side]['hypervolume']:.1f} |"
        )
    lines += [
        "",
        "Joint front: " + ", ".join(summary["joint_front"]),
        "",
        "| network | side | test top-1 | latency ms |",
        "|---|---|---|---|",
    ]
    for side in ("search", "zoo"):
        for name in summary[side]["front"]:
            acc, lat = summary[side]["points"][name]
            lines.append(f"| {name} | {side} | {acc:.2f} | {lat:.2f} |")
    atomic_write_bytes(HERE / "front.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
