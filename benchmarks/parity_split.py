#!/usr/bin/env python
"""Where an eager gap against torchvision lives: in the weights and ops, or in our Python around them.

``python benchmarks/parity_split.py mnasnet0_5 shufflenet_v2_x1_0 --processes 4``. In each fresh
process (glibc thresholds fixed, as ``parity.py --allocator fixed``) one pair is built with the same
weights and five forwards are timed in interleaved rounds, each as a ratio to torchvision's eager model:

- ``ours``: our model, eager;
- ``copy of ours``: a deep copy of it (what memory placement alone does to the same code);
- ``tv code, our leaves``: torchvision's model with every leaf layer (conv, norm, activation, linear)
  swapped for ours, so torchvision's Python runs over our modules and tensors;
- ``ours traced`` / ``tv traced``: both as ``torch.jit.trace`` graphs, same ops without Python.

If the hybrid and the traced pair run at 1.00 while ``ours`` does not, the gap is in our wrappers'
Python (blocks, level loop, input check, head), not in the ops or the weights. Writes
``benchmarks/parity_split.md`` with the CPU and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VARIANTS = ("ours", "copy of ours", "tv code, our leaves", "ours traced", "tv traced")


def _leaves(model: Any) -> list[Any]:
    from torch import nn

    skipped = (nn.Identity, nn.Dropout, nn.AdaptiveAvgPool2d, nn.Sequential)  # an empty Sequential: no layer
    return [m for m in model.modules() if not list(m.children()) and not isinstance(m, skipped)]


def measure(name: str, size: int, batch: int, rounds: int) -> dict[str, float]:
    """Median ratio to torchvision's eager forward of every variant, in this process."""
    import copy

    import torch

    from vision_backbones.measure.allocator import fix_thresholds
    from vision_backbones.measure.references import build_pair

    warnings.filterwarnings("ignore")
    fix_thresholds()
    torch.set_num_threads(1)
    ours, tv = build_pair("torchvision", name)
    x = torch.randn(batch, 3, size, size)
    hybrid = copy.deepcopy(tv)
    ours_leaves, hybrid_leaves = _leaves(ours), _leaves(hybrid)
    if [type(m) for m in ours_leaves] != [type(m) for m in hybrid_leaves]:
        raise SystemExit(f"{name}: our leaf layers do not line up with torchvision's; expected the same sequence")
    names = {id(m): n for n, m in hybrid.named_modules()}
    for mine, theirs in zip(ours_leaves, hybrid_leaves):
        parent, _, child = names[id(theirs)].rpartition(".")
        setattr(hybrid.get_submodule(parent), child, mine)
    with torch.no_grad():
        torch.testing.assert_close(hybrid(x), ours(x), rtol=1e-4, atol=1e-4)
        models = {
            "tv": tv,
            "ours": ours,
            "copy of ours": copy.deepcopy(ours),
            "tv code, our leaves": hybrid,
            "ours traced": torch.jit.trace(ours, x, check_trace=False),
            "tv traced": torch.jit.trace(tv, x, check_trace=False),
        }
        calls = {key: (lambda m=m: m(x)) for key, m in models.items()}
        for key in list(calls) * 3:
            calls[key]()
        start = time.perf_counter()
        calls["tv"]()
        inner = max(1, round(0.15 / (time.perf_counter() - start)))
        times: dict[str, list[float]] = {key: [] for key in calls}
        keys = list(calls)
        for r in range(rounds):
            for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
                start = time.perf_counter()
                for _ in range(inner):
                    calls[key]()
                times[key].append((time.perf_counter() - start) / inner)
    ratios = {key: statistics.median(a / b for a, b in zip(times[key], times["tv"])) for key in keys}
    ratios["tv traced"] = statistics.median(a / b for a, b in zip(times["ours traced"], times["tv traced"]))
    ratios["ours traced"] = statistics.median(a / b for a, b in zip(times["ours traced"], times["tv"]))
    ratios["tv_ms"] = statistics.median(times["tv"]) * 1e3
    return ratios


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="torchvision model names with a converter")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "parity_split.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.size, args.batch, args.rounds)))
        return 0
    if not args.models:
        parser.error("expected at least one torchvision model name, e.g. mnasnet0_5")
    from vision_backbones.io import atomic_write
    from vision_backbones.measure.machine import describe, machine_info

    load_before = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.models}
    for _ in range(args.processes):
        for name in args.models:  # interleaved over models, each process fresh
            command = [sys.executable, __file__, "--child", name, "--rounds", str(args.rounds)]
            command += ["--size", str(args.size), "--batch", str(args.batch)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(name, results[name][-1], flush=True)
    machine = machine_info()
    lines = [
        "# Where the eager gap lives (`benchmarks/parity_split.py`)",
        "",
        f"`python benchmarks/parity_split.py {' '.join(args.models)} --processes {args.processes}`: "
        f"{args.size} px batch {args.batch}, 1 thread, {args.processes} fresh processes x {args.rounds} interleaved rounds; "
        "each cell the median of the per-process medians (range in brackets), as a ratio to torchvision's eager forward "
        "(the `tv traced` column: ours traced / tv traced).",
        "",
        f"Machine: {describe(machine)}; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}.",
        "",
        "| model | tv eager ms | " + " | ".join(VARIANTS) + " |",
        "|---|---|" + "---|" * len(VARIANTS),
    ]
    for name, rows in results.items():
        cells = []
        for variant in VARIANTS:
            values = [row[variant] for row in rows]
            cells.append(f"{statistics.median(values):.3f} ({min(values):.2f}-{max(values):.2f})")
        lines.append(f"| {name} | {statistics.median(row['tv_ms'] for row in rows):.1f} | " + " | ".join(cells) + " |")
    atomic_write(args.out, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
