#!/usr/bin/env python
"""Do two days of the latency benchmark agree, and does a predictor built one day predict the other?

    python benchmarks/latency_predictor_days.py --then 19a5dcd \
        --results benchmarks/latency_predictor/intel_xeon/results_onnxruntime_cpu_ruled_quiet.json

Reads two results files of ``benchmarks/latency_predictor.py`` over the same frozen networks: ``--results``
as it is now and the same file at the git revision ``--then`` (each day's build, its rows and its
predictions). Nothing is measured. A ruled time is a ratio to the ruler times the reference its build
calibrated, and two builds calibrate two references, so every time here is read in ruler units (a row's
milliseconds over its results' reference). For each test group it reports:

- how often the two days' measurements of a network agree within ±10 % and ±5 %, and the median ratio
  (now / then): the noise ceiling of a predictor used on another day than the one it was built on;
- each day's predictor against each day's rows (registered models predicted by fits without their family,
  as the benchmark does): the diagonal is what each benchmark reported, the off-diagonal what a predictor
  built one day reads the other day.

Writes ``days_<suffix>.md`` beside ``--results``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from latency_predictor import benchmark_groups, scores  # this folder's benchmark: its test sets and scores

from vision_backbones.io import atomic_write_bytes

ROOT = Path(__file__).resolve().parent.parent


def read_results(path: Path, revision: str | None) -> dict[str, Any]:
    """The results file at ``path`` now, or at the git ``revision``."""
    if revision is None:
        return dict(json.loads(path.read_text()))
    relative = path.resolve().relative_to(ROOT)
    shown = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:{relative.as_posix()}"], capture_output=True, text=True
    )
    if shown.returncode:
        raise SystemExit(
            f"git show {revision}:{relative} failed ({shown.stderr.strip()}); expected a revision holding it"
        )
    return dict(json.loads(shown.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="a results_*.json of latency_predictor.py")
    parser.add_argument("--then", required=True, help="the git revision holding the other day's results file")
    args = parser.parse_args()
    days = {"then": read_results(args.results, args.then), "now": read_results(args.results, None)}
    if days["then"].get("runtime") != days["now"].get("runtime"):
        raise SystemExit(
            f"--then holds {days['then'].get('runtime')!r} results and --results {days['now'].get('runtime')!r}; "
            "expected one runtime"
        )
    references = {day: float(found["ruler_reference_ms"]) for day, found in days.items()}
    labels = sorted(set(days["then"]["rows"]) & set(days["now"]["rows"]))
    if not labels:
        raise SystemExit("the two results files share no networks; expected the same frozen benchmark")

    def ruler_units(day: str, key: str) -> dict[str, float]:
        return {label: float(days[day]["rows"][label][key]) / references[day] for label in labels}

    measured = {day: ruler_units(day, "measured_ms") for day in days}
    predicted = {day: ruler_units(day, "kernels") for day in days}
    groups = {
        group: [row["label"] for row in rows]
        for group, rows in benchmark_groups([days["now"]["rows"][label] for label in labels]).items()
    }
    lines = [
        "# Two days of the latency benchmark",
        "",
        f"`python benchmarks/latency_predictor_days.py --then {args.then} --results "
        f"{args.results.resolve().relative_to(ROOT).as_posix()}`: the results at {args.then} (*then*) and now (*now*), "
        f"{days['now'].get('runtime')}, {len(labels)} networks measured both days; ruler references "
        f"{references['then']:.2f} ms then, {references['now']:.2f} ms now (every time read in ruler units). "
        f"Machine now: {days['now']['machine'].get('cpu')}; then: {days['then']['machine'].get('cpu')}.",
        "",
        "| test set | n | days agree ±10 % | ±5 % | median now / then | predictor then: rows then | rows now "
        "| predictor now: rows now | rows then |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for group, members in groups.items():
        cells = [f"{len(members)}"]
        days_agree = scores([measured["now"][m] for m in members], [measured["then"][m] for m in members])
        cells += [
            f"{days_agree['within_10']:.1f}",
            f"{days_agree['within_5']:.1f}",
            f"{1 + days_agree['median_error'] / 100:.3f}",
        ]
        for maker, order in (("then", ("then", "now")), ("now", ("now", "then"))):
            for rows_day in order:
                found = scores([predicted[maker][m] for m in members], [measured[rows_day][m] for m in members])
                cells.append(f"{found['within_10']:.1f}")
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "*Days agree*: the share of networks whose two days' measurements are within ±10 % (±5 %) of each other. "
        "*Predictor X: rows Y*: the share of networks the predictor built on day X predicts within ±10 % of day Y's "
        "measurement.",
    ]
    out = args.results.with_name(args.results.name.replace("results_", "days_").replace(".json", ".md"))
    atomic_write_bytes(out, ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
