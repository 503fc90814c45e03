#!/usr/bin/env python
"""Choosing how the kernel predictor is fitted, on its build samples only (the test sets stay unseen).

    python benchmarks/latency_predictor_cv.py [--cache benchmarks/latency_predictor/kernels_cpu.json]

Cross-validation over the networks the predictor was built from, as ``measure.predictor_fit.held_out_errors``
does it (since stop 36): registered models and their width-scaled copies, each family predicted by a predictor
fitted without it; the build's search-space members, each space's fold predicted by a predictor fitted without
that fold; both against the whole forward measured in the build. Compares the fit options of ``KernelPredictor`` (first: a per-kernel
and a per-network overhead; ``kind_scales``: also one factor per kernel type; ``matmuls_as_conv``: wide
matrix products predicted as the 1x1 convolutions they compute; ``profiler_cost``: the per-kernel overhead
may be negative, the profiler's own cost per kernel). Writes
``benchmarks/latency_predictor/fit_cv.md`` (``fit_cv_onnxruntime_cpu.md`` for that runtime's cache). The frozen test sets of ``latency_predictor.py`` are not read.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "latency_predictor"
OPTIONS: dict[str, dict[str, bool]] = {
    "overhead only (before)": {"kind_scales": False, "matmuls_as_conv": False, "synthetic": False, "alignment": False},
    "per-kernel-type scales": {"kind_scales": True, "matmuls_as_conv": False, "synthetic": False, "alignment": False},
    "scales + unseen wide matmuls as 1x1 convs": {
        "kind_scales": True, "matmuls_as_conv": True, "synthetic": False, "alignment": False,
    },
    "scales + wide matmuls + synthetic kernels": {
        "kind_scales": True, "matmuls_as_conv": True, "synthetic": True, "alignment": False,
    },
    "scales + wide matmuls + synthetic + channel alignment": {
        "kind_scales": True, "matmuls_as_conv": True, "synthetic": True, "alignment": True,
    },
    "scales + wide matmuls + channel alignment (no synthetic)": {
        "kind_scales": True, "matmuls_as_conv": True, "synthetic": False, "alignment": True,
    },
    "scales + wide matmuls + synthetic + profiler cost per kernel": {
        "kind_scales": True, "matmuls_as_conv": True, "synthetic": True, "alignment": False, "profiler_cost": True,
    },
    "scales + wide matmuls + synthetic + alignment + profiler cost per kernel": {
        "kind_scales": True, "matmuls_as_conv": True, "synthetic": True, "alignment": True, "profiler_cost": True,
    },
}  # fmt: skip


def main() -> int:
    from vision_backbones.io import atomic_write_bytes, read_json
    from vision_backbones.measure.predictor import KernelPredictor
    from vision_backbones.measure.predictor_fit import held_out_errors

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=OUT / "kernels_cpu.json")
    args = parser.parse_args()
    stored = read_json(args.cache)
    predictor = KernelPredictor.load(args.cache, stored["fingerprint"])
    has_synthetic = any(s.origin == "synthetic" for s in predictor.samples)
    fits = {name: options for name, options in OPTIONS.items() if has_synthetic or not options["synthetic"]}
    errors = {
        name: held_out_errors(
            predictor,
            {key: options.get(key, False) for key in ("matmuls_as_conv", "alignment", "profiler_cost")},
            synthetic=options["synthetic"],
            kind_scales=options["kind_scales"],
        )
        for name, options in fits.items()
    }
    groups = sorted(next(iter(errors.values())))
    lines = [
        f"# Kernel predictor fit options, cross-validated on the build samples (`{args.cache.name}`)",
        "",
        "`python benchmarks/latency_predictor_cv.py`. Each registered family predicted by a predictor fitted without",
        "it, each fold of a search space's members by one fitted without the fold, against the whole forward measured",
        "in the build; share within ±10 % / median error. The test sets are not used.",
        "",
        "| fit | " + " | ".join(f"{g} (n={len(errors[next(iter(fits))][g])})" for g in groups) + " | all | RMSPE all |",
        "|---|" + "---|" * (len(groups) + 2),
    ]
    for name in fits:
        cells = []
        for group in [*groups, None]:
            values = [e for g in groups for e in errors[name][g]] if group is None else errors[name][group]
            within = 100 * sum(abs(e) <= 0.10 for e in values) / len(values)
            cells.append(f"{within:.1f} / {100 * statistics.median(values):+.1f} %")
        every = [e for g in groups for e in errors[name][g]]
        cells.append(f"{100 * math.sqrt(statistics.fmean(e * e for e in every)):.1f} %")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    tag = args.cache.stem.removeprefix("kernels").removeprefix("_cpu")  # kernels_onnxruntime_cpu -> _onnxruntime_cpu
    atomic_write_bytes(args.cache.parent / f"fit_cv{tag}.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
