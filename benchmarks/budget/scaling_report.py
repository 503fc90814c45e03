"""ResNet-50, VoVNet-39, Darknet-53 and EfficientNet-B0 scaled to 2x/4x/8x FLOPs under each strategy.

For every (base, strategy, multiple): ``scale_model(..., target_gflops=multiple x base)``, then the
measured FLOPs against the target, parameters, activations (Dollár's count: the elements of every
conv output, on meta tensors; and the peak bytes alive in an eval forward, ``measure.memory``) and
the eval latency at batch 1 and the scaled resolution, the strategies of one (base, multiple)
timed in interleaved rounds. Then the growth exponent of activations against FLOPs, fitted by least
squares on log-log over 1x/2x/4x/8x (Dollár: dWr ~ s^0.5-0.6, uniform ~ s^0.83).

Resumable: rows are appended to ``scaling.jsonl`` as they are measured; ``--markdown`` writes
``scaling.md`` from it. Run: ``python benchmarks/budget/scaling_report.py [--rounds 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from vision_backbones.io import atomic_write
from vision_backbones.measure.machine import describe, machine_info
from vision_backbones.measure.memory import LiveActivationMemory
from vision_backbones.measure.timing import interleaved_times, num_threads, summarize
from vision_backbones.registry import build_on_meta, model_info
from vision_backbones.scaling import UNIFORM_EXPONENTS, ScaledModel, activation_exponent, scale_model

HERE = Path(__file__).parent
BASES = ("resnet50", "vovnet39", "darknet53", "efficientnet_b0")
STRATEGIES = {  # label: scale_model keywords
    "efficientnet": {"strategy": "efficientnet"},
    "dWr (0.1/0.8/0.1)": {"strategy": "dWr"},
    "uniform dwr (1/3 each)": {"strategy": "dWr", "exponents": UNIFORM_EXPONENTS},
}
MULTIPLES = (2, 4, 8)


def conv_activations(scaled: ScaledModel) -> int:
    """Elements of every conv output in one forward at batch 1 (Dollár's "activations"), on meta."""
    model = build_on_meta(scaled.base, features_only=True, **scaled.overrides)
    total = 0

    def count(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.empty(1, 3, scaled.image_size, scaled.image_size, device="meta"))
    for hook in hooks:
        hook.remove()
    return total


def latency_size(image_size: int, latency_scale: float) -> int:
    """The input the latency is timed at: the scaled resolution times ``latency_scale`` (cheaper)."""
    return max(32, round(image_size * latency_scale / 8) * 8)


def measure_group(scaled: dict[str, ScaledModel], rounds: int, threads: int, latency_scale: float) -> dict[str, dict]:
    rows, runners = {}, {}
    for label, item in scaled.items():
        torch.manual_seed(0)
        model = item.create(num_classes=1000).eval()
        x = torch.randn(
            1, 3, latency_size(item.image_size, latency_scale), latency_size(item.image_size, latency_scale)
        )
        tracker = LiveActivationMemory(ignore=[*model.parameters(), *model.buffers(), x])
        with torch.no_grad(), tracker:
            model(x)
        info = item.info()
        rows[label] = {
            "flops": info["flops"],
            "params": info["params"],
            "peak_activation_bytes_at_latency_size": tracker.peak,
            "latency_image_size": x.shape[-1],
            "conv_activations": conv_activations(item),
            "image_size": item.image_size,
            "overrides": item.to_json()["overrides"],
            "phi": item.phi,
            "multipliers": item.to_json()["multipliers"],
        }
        runners[label] = lambda m=model, x=x: m(x)
    with num_threads(threads), torch.inference_mode():
        timed = interleaved_times(runners, rounds=rounds, warmup=1, min_time=0.0)
    for label in rows:
        rows[label]["latency_ms"] = summarize([1e3 * t for t in timed["wall"][label]])["median"]
        rows[label]["latency_cpu_ms"] = summarize([1e3 * t for t in timed["cpu"][label]])["median"]
    return rows


def run(path: Path, rounds: int, threads: int, latency_scale: float) -> None:
    done = (
        {(r["base"], r["strategy"], r["multiple"]) for r in map(json.loads, path.read_text().splitlines())}
        if path.exists()
        else set()
    )
    for base in BASES:
        base_gflops = model_info(base)["flops"] / 1e9
        for multiple in (1, *MULTIPLES):
            todo = {label: kw for label, kw in STRATEGIES.items() if (base, label, multiple) not in done}
            if multiple == 1:
                todo = {"base": {}} if (base, "base", 1) not in done else {}
            if not todo:
                continue
            start = time.perf_counter()
            scaled = {
                label: (
                    scale_model(base, strategy="explicit")
                    if multiple == 1
                    else scale_model(base, target_gflops=base_gflops * multiple, **kw)
                )
                for label, kw in todo.items()
            }
            rows = measure_group(scaled, rounds, threads, latency_scale)
            with path.open("a") as handle:
                for label, row in rows.items():
                    handle.write(
                        json.dumps(
                            {
                                "base": base,
                                "strategy": label,
                                "multiple": multiple,
                                "target_gflops": base_gflops * multiple,
                                **row,
                            }
                        )
                        + "\n"
                    )
            summary = ", ".join(f"{k} {v['latency_ms']:.0f} ms" for k, v in rows.items())
            print(f"{base} x{multiple}: {summary} ({time.perf_counter() - start:.0f} s)", flush=True)


def fit_exponent(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def markdown(path: Path, out: Path, header: str) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by = {(r["base"], r["strategy"], r["multiple"]): r for r in rows}
    lines = [
        header,
        "",
        "| base | strategy | x | phi | image | GFLOPs (target) | FLOPs err % | params M | conv activations M | peak act. MB* | latency ms* |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    exponents = []
    for base in BASES:
        b = by.get((base, "base", 1))
        if b is None:
            continue
        lines.append(
            f"| {base} | base | 1 | - | {b['image_size']} | {b['flops'] / 1e9:.2f} | - | {b['params'] / 1e6:.1f} | {b['conv_activations'] / 1e6:.1f} | {b['peak_activation_bytes_at_latency_size'] / 2**20:.0f} | {b['latency_ms']:.0f} |"
        )
        for label in STRATEGIES:
            series = [b]
            for multiple in MULTIPLES:
                r = by.get((base, label, multiple))
                if r is None:
                    continue
                series.append(r)
                error = 100 * (r["flops"] / 1e9 / r["target_gflops"] - 1)
                lines.append(
                    f"| {base} | {label} | {multiple} | {r['phi']:.2f} | {r['image_size']} | {r['flops'] / 1e9:.2f} ({r['target_gflops']:.2f}) | {error:+.1f} | "
                    f"{r['params'] / 1e6:.1f} | {r['conv_activations'] / 1e6:.1f} | {r['peak_activation_bytes_at_latency_size'] / 2**20:.0f} | {r['latency_ms']:.0f} |"
                )
            if len(series) >= 3:
                s = [r["flops"] / b["flops"] for r in series]
                exponents.append(
                    (
                        base,
                        label,
                        fit_exponent(s, [r["conv_activations"] for r in series]),
                        fit_exponent(s, [r["peak_activation_bytes_at_latency_size"] for r in series]),
                        fit_exponent(s, [r["latency_ms"] for r in series]),
                        fit_exponent(s, [r["params"] for r in series]),
                    )
                )
    theory = {
        "efficientnet": activation_exponent("efficientnet"),
        "dWr (0.1/0.8/0.1)": activation_exponent("dWr"),
        "uniform dwr (1/3 each)": activation_exponent("dWr", exponents=UNIFORM_EXPONENTS),
    }
    lines += [
        "",
        "Growth exponents against measured FLOPs (least squares on log-log over 1x, 2x, 4x, 8x; theory: activations ~ d w r^2):",
        "",
        "| base | strategy | conv activations | peak activation bytes | latency | params | theory (activations) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {b} | {label} | {a:.2f} | {p:.2f} | {t:.2f} | {q:.2f} | {theory[label]:.2f} |"
        for b, label, a, p, t, q in exponents
    ]
    text = "\n".join(lines) + "\n"
    atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--latency-scale",
        type=float,
        default=160 / 224,
        help="time latency and peak memory at the scaled resolution times this (default 160/224: cheaper)",
    )
    parser.add_argument("--jsonl", type=Path, default=HERE / "scaling.jsonl")
    parser.add_argument("--markdown", type=Path, default=HERE / "scaling.md")
    parser.add_argument("--only-markdown", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    if not args.only_markdown:
        run(args.jsonl, args.rounds, args.threads, args.latency_scale)
    header = (
        f"# Compound scaling: 2x / 4x / 8x FLOPs\n\nMeasured on {describe(machine_info())}; *eval latency and peak activation memory at batch 1, "
        f"{args.threads} thread(s), at the scaled resolution x {args.latency_scale:.3f} (cheaper; FLOPs, params and conv activations at the scaled resolution itself), median of {args.rounds} interleaved rounds (strategies of one row group interleaved). "
        "The machine is shared with other jobs: latencies are inflated and noisy, compare within a group. "
        "`python benchmarks/budget/scaling_report.py` (resumable)."
    )
    markdown(args.jsonl, args.markdown, header)
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
