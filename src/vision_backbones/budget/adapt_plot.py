"""The NetAdapt path as a chart: proxy accuracy against measured latency, step by step."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision_backbones.plots import pyplot, save_figure


def write_plot(
    steps: Sequence[dict[str, Any]],
    target_ms: float,
    baseline: dict[str, Any] | None,
    path: Path,
    title: str,
    final: tuple[float, float] | None = None,
) -> Path:
    """``path`` (PNG): the path's validation top-1 per step (the steps whose whole network was measured
    marked), the target, the final fine-tune and the uniform-width baseline of the same latency when given."""
    fig, ax = pyplot().subplots(figsize=(9, 6), dpi=110)
    ax.plot(
        [s["latency_ms"] for s in steps],
        [s["val_acc1"] for s in steps],
        "-o",
        color="tab:blue",
        label="NetAdapt path (val, after each step's fine-tune)",
    )
    confirmed = [s for s in steps if s.get("measured_ms") is not None]
    if confirmed:
        ax.scatter(
            [s["measured_ms"] for s in confirmed],
            [s["val_acc1"] for s in confirmed],
            marker="D",
            s=36,
            color="tab:green",
            zorder=3,
            label="whole network measured (between: calibrated prediction)",
        )
    for s in steps[1:]:
        ax.annotate(s["stage"], (s["latency_ms"], s["val_acc1"]), xytext=(4, 4), textcoords="offset points", fontsize=7)
    if final is not None:
        ax.scatter(
            [final[0]],
            [final[1]],
            marker="*",
            s=160,
            color="tab:blue",
            label="NetAdapt after the final fine-tune (val)",
        )
    ax.axvline(target_ms, color="tab:red", lw=1, label=f"target {target_ms:.1f} ms")
    if baseline is not None:
        ax.scatter(
            [baseline["latency_ms"]],
            [baseline["val_acc1"]],
            marker="s",
            s=80,
            color="tab:orange",
            label=f"uniform width x{baseline['width']:.3g} (val)",
        )
    ax.invert_xaxis()
    ax.set_xlabel("measured latency, ms (batch 1, 3-channel input, 1000 classes)")
    ax.set_ylabel("proxy validation top-1, %")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
