"""The chart of ``backbones profile --plot``: latency against compute, and against published top-1.

Both panels mark the Pareto front (:func:`vision_backbones.pareto.pareto_front`): on the left the
models no other beats with at least as much compute in no more time, on the right the best
accuracy for the latency.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vision_backbones.pareto import pareto_front
from vision_backbones.plots import pyplot, save_figure


def _label_points(ax: Any, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str]) -> None:
    for x, y, label in zip(xs, ys, labels):
        ax.annotate(label, (x, y), xytext=(6, 4), textcoords="offset points", fontsize=9)


def write_plot(results: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Latency vs GFLOPs (Pareto front: most compute per ms) and, where two or more models carry a
    published top-1, top-1 vs latency (front: best accuracy for the latency); else throughput bars."""
    plt = pyplot()
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
    names = [
        r["name"] + (f" ({r['published_top1']:.1f}% top-1)" if r.get("published_top1") is not None else "")
        for r in timed
    ]
    params_m = [r["params"] / 1e6 for r in timed]
    sizes = [30 + 6 * p for p in params_m]
    left.scatter(
        gflops, latency, s=sizes, alpha=0.6, color="tab:blue", edgecolor="black", label="model (area ~ params)"
    )
    for r, x in zip(timed, gflops):
        if r.get("eval_latency_q1_ms") is not None:
            left.plot([x, x], [r["eval_latency_q1_ms"], r["eval_latency_q3_ms"]], color="tab:blue", lw=2)
    # For latency vs compute the front is "no other model does at least as much compute in less time".
    front = pareto_front(list(zip(gflops, latency)), maximize_x=True, maximize_y=False)
    if len(front) > 1:
        left.plot(
            [gflops[i] for i in front],
            [latency[i] for i in front],
            "--",
            color="tab:red",
            label="Pareto front: most GFLOPs per ms",
        )
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
        front = pareto_front(list(zip(xs, ys)))
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

    return save_figure(fig, path)
