#!/usr/bin/env python
"""Does the kernel predictor's error follow the machine's state when a network was measured?

    python benchmarks/latency_predictor_ruler_residual.py [--folder benchmarks/latency_predictor/amd_epyc]

Every test network of ``latency_predictor.py`` was timed alternately with the ruler (resnet18 at 160 px,
compute-bound) and scaled by the ruler's reference over its time then (``ruler_ms``). If the machine's slow
patches slowed every network as much as they slow the ruler, the predictor's log error would not depend on
``log(ruler_ms / reference)``. Per test set this script fits that slope by least squares and reports the
correlation, and, as a diagnosis only (no figure elsewhere uses it), the share within ±10 % once the slope's
part of the error is taken out (the networks keep their mean state). A negative slope means the network
slowed more than the ruler did: its ruled time is too high when the machine ran slow.

Where the same test networks were measured again under the ruler's quiet gate (``results_*_ruled_quiet.json``,
``latency_predictor.py`` without ``--no-gate``), it also compares the two measurements per test set: the share
within ±10 % of the kernel predictor, before and after, and a paired Wilcoxon signed-rank test on each
network's |log error|.

Reads ``results_*_ruled*.json`` in ``--folder``; writes ``ruler_residual.md`` there. Measures nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def test_sets(results: dict) -> dict[str, list[dict]]:
    sets: dict[str, list[dict]] = {}
    for row in results["rows"].values():
        if row.get("kernels") is None or row.get("ruler_ms") is None:
            continue
        space = row["label"].split("#")[0]
        key = "registered models, family held out" if row["origin"] == "zoo" else f"space:{space}"
        sets.setdefault(key, []).append(row)
    return sets


def gate_rows(ungated: dict, gated: dict) -> list[str]:
    """Per test set: the kernel predictor against the two measurements of the same networks."""
    from scipy.stats import wilcoxon

    before, after = test_sets(ungated), test_sets(gated)
    lines = []
    for key in sorted(set(before) & set(after), key=lambda k: (k.startswith("space"), k)):
        old = {r["label"]: r for r in before[key]}
        pairs = [(old[r["label"]], r) for r in after[key] if r["label"] in old]
        ratio = np.array([[r["kernels"] / r["measured_ms"] for r in pair] for pair in pairs])
        error = np.abs(np.log(ratio))
        within = 100 * np.mean(np.abs(ratio - 1) <= 0.1, axis=0)
        p = float(wilcoxon(error[:, 0], error[:, 1]).pvalue)
        rulers = [np.median([pair[i]["ruler_ms"] for pair in pairs]) for i in (0, 1)]
        lines.append(
            f"| {key} | {len(pairs)} | {rulers[0]:.1f} -> {rulers[1]:.1f} | {within[0]:.1f} -> {within[1]:.1f} "
            f"| {100 * np.median(error[:, 0]):.1f} -> {100 * np.median(error[:, 1]):.1f} | {p:.2g} |"
        )
    return lines


def residual_rows(results: dict) -> list[str]:
    reference = results["ruler_reference_ms"]
    sets = test_sets(results)
    lines = []
    for key in sorted(sets, key=lambda k: (k.startswith("space"), k)):
        rows = sets[key]
        error = np.array([math.log(r["kernels"] / r["measured_ms"]) for r in rows])
        state = np.array([math.log(r["ruler_ms"] / reference) for r in rows])
        slope = float(np.polyfit(state, error, 1)[0])
        taken_out = error - slope * (state - state.mean())
        lines.append(
            f"| {key} | {len(rows)} | {min(r['ruler_ms'] for r in rows):.1f}-{max(r['ruler_ms'] for r in rows):.1f} "
            f"| {float(np.corrcoef(state, error)[0, 1]):+.2f} | {slope:+.2f} | "
            f"{100 * float(np.mean(np.abs(np.expm1(error)) <= 0.1)):.1f} | "
            f"{100 * float(np.mean(np.abs(np.expm1(taken_out)) <= 0.1)):.1f} |"
        )
    return lines


def _shown(folder: Path) -> str:
    """``folder`` relative to the repository when it is inside it."""
    resolved = folder.resolve()
    return str(resolved.relative_to(HERE.parent)) if resolved.is_relative_to(HERE.parent) else str(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=HERE / "latency_predictor" / "amd_epyc")
    args = parser.parse_args()
    found = sorted(args.folder.glob("results_*_ruled.json")) + sorted(args.folder.glob("results_*_ruled_quiet.json"))
    if not found:
        raise SystemExit(f"no results_*_ruled.json in {args.folder}; run latency_predictor.py --out there first")
    lines = [
        "# The predictor's error against the machine's state at measurement",
        "",
        f"`python benchmarks/latency_predictor_ruler_residual.py --folder {_shown(args.folder)}`: log(predicted / measured)"
        " against log(ruler time then / ruler reference), least squares per test set. Diagnosis only.",
        "",
    ]
    for path in found:
        results = json.loads(path.read_text())
        lines += [
            f"## {path.name}: {results['runtime']}, ruler reference {results['ruler_reference_ms']:.2f} ms "
            f"({results['machine']['cpu']})",
            "",
            "| test set | n | ruler ms when measured | correlation | slope | within ±10 % | with the slope's part out |",
            "|---|---|---|---|---|---|---|",
            *residual_rows(results),
            "",
        ]
    for gated_path in sorted(args.folder.glob("results_*_ruled_quiet.json")):
        ungated_path = gated_path.with_name(gated_path.name.replace("_quiet", ""))
        if not ungated_path.exists():
            continue
        gated = json.loads(gated_path.read_text())
        lines += [
            f"## The quiet gate: {ungated_path.name} -> {gated_path.name} ({gated['runtime']})",
            "",
            "The same networks measured twice: ungated, then under the ruler's quiet gate. The kernel predictor against "
            "each; p: Wilcoxon signed-rank test on the paired |log error|.",
            "",
            "| test set | n | ruler median ms | within ±10 % | median abs error % | p |",
            "|---|---|---|---|---|---|",
            *gate_rows(json.loads(ungated_path.read_text()), gated),
            "",
        ]
    (args.folder / "ruler_residual.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
