#!/usr/bin/env python
"""Search strategies against a NAS-Bench-style table: returned member, regret, time to the top 1 %, Holm-corrected tests.

    python benchmarks/nasbench_compare.py --space nasbench_mb --table benchmarks/nasbench_mb/table.jsonl \\
        --seeds 50 --out benchmarks/nasbench_mb/ [--proxy-scores FILE --proxy ensemble] [--strategies a,b]

Replaces ``benchmarks/search_comparison.py`` (three strategies, single-seed table, validation regret,
uncorrected tests) for the multi-seed tables of ``vision_backbones.search.table``. Protocol:

- Strategies (label: ``make_strategy`` name and options, each at its module's published defaults,
  nothing tuned on the table): ``random``; ``reinforce_lstm`` (reinforce, ``cell="lstm"``);
  ``evolution`` (regularized evolution); ``local`` (local search); ``bananas`` (``refit_every=10``:
  the BANANAS code, naszilla, refits its predictor every 10 queries; refitting after every query is
  about 5x slower, 33 s against 6 s per 200-query run on a busy core, and too slow for 50 seeds);
  ``tpe``; ``nsga2`` (multi-objective: validation accuracy up, latency down); ``evolution_zc``:
  regularized evolution whose first 10 proposals are the best 10 of 100 random members by a
  zero-cost proxy score (``search.prescreen.Prescreened``, candidates=100, keep=10; the scores are
  read from ``--proxy-scores``, field ``--proxy``, default ``ensemble``: the file's field, else the
  rank-average ensemble of synflow, naswot and zico over every member of the file; without that file
  it is left out, with a note). The weight-sharing ``oneshot`` is not compared (it does not query the table).
- Budgets 25, 50, 100 and 200 queries. Each (strategy, seed) is ONE run of 200 queries; the smaller
  budgets are its prefixes. Every strategy here is budget-agnostic (none reads the budget), so a
  prefix is exactly the run that budget would give; the budgets of one strategy are therefore not
  independent samples of each other.
- Independent random streams: the strategy of (label, seed) is seeded with
  ``zlib.crc32(f"{label}:{seed}")``, its query draws with ``crc32(f"{label}:{seed}:queries")`` (and a
  pre-screen with ``crc32(f"{label}:{seed}:prescreen")``), so no two strategies share first proposals.
- A query returns the VALIDATION accuracy of ONE training seed of the member, drawn uniformly per
  query from the run's own generator (as NAS-Bench-201's API draws a trial seed); single-seed rows
  (no ``val_acc1_seeds``) count as one seed. A repeated query draws again. The strategy observes
  reward = that accuracy / 100; ``nsga2`` gets ``observe_result(indices, {"val_acc1": drawn,
  "latency_ms": table latency}, reward)``.
- The member a run returns at budget B is the query with the highest observed (drawn) validation
  accuracy among its first B (ties: the earliest), i.e. the incumbent trial. Reported, as mean ± std
  (sample std) over seeds: FIRST its test accuracy (the seed mean of the table), then its table
  validation mean; the regret = table optimum (max test mean over the table) - test mean of the
  returned member; the queries until the run first evaluated one of the table's top 1 % by test mean
  (the ceil(1 % of members) highest, ties at the threshold included): median [IQR] over seeds, runs
  that did not reach it within B counted as +inf (censored; a censored quantile prints ">B"), and the
  share of runs that reached it.
- Statistics: one-sided Mann-Whitney U (scipy, ``alternative="greater"``) of each strategy's per-seed
  test accuracy of the returned member against random search's, at each budget, Holm-corrected over
  ALL those comparisons together (strategies x budgets); the ``"less"`` direction (worse than random)
  is corrected the same way, so losses are reported as plainly as wins. A verdict uses alpha = 0.05.
- ``nsga2`` also gets the hypervolume of the (test mean accuracy, latency) front of the distinct
  members it evaluated, against random search's, at each budget (reference point: the worst test
  mean and the worst latency of the table; also as a share of the whole table's front): mean ± std
  over seeds and one-sided Mann-Whitney p-values both ways, Holm-corrected over the budgets. Its
  single-objective comparison above uses accuracy like every other strategy's. Without
  ``latency_ms`` in the table, nsga2 and this section are left out with a note.
- Best-so-far curves: test mean of the returned member after each query, mean over seeds with a 95 %
  band (mean ± 1.96 std / sqrt(n)), the optimum dashed; regret on a log axis beside it.
- Everything runs in this process on one core (torch and BLAS limited to one thread), one run after
  the other, under a rich progress bar.

Writes ``comparison.json`` (every figure, per-seed values, machine, command line, wall time),
``comparison.md`` and ``best_so_far.png`` into ``--out``, each atomically and only after every run
finished, so an interrupted or failed run leaves no file half-written (and no new file at all).
"""

from __future__ import annotations

import argparse
import io
import math
import shlex
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vision_backbones.cli import ArgumentParser, int_at_least, run_command
from vision_backbones.io import atomic_write_bytes, check_output_folder, json_text, read_jsonl
from vision_backbones.pareto import hypervolume
from vision_backbones.search.spaces import SPACES, SearchSpace, get_space

PROG = "python benchmarks/nasbench_compare.py"
HERE = Path(__file__).resolve().parent
BUDGETS = (25, 50, 100, 200)
ALPHA = 0.05
BASELINE = "random"
BANANAS_REFIT_EVERY = 10
# label -> (make_strategy name, options); evolution_zc is wrapped in a zero-cost pre-screen
STRATEGIES: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "reinforce_lstm": ("reinforce", {"cell": "lstm"}),
    "evolution": ("evolution", {}),
    "local": ("local", {}),
    "bananas": ("bananas", {"refit_every": BANANAS_REFIT_EVERY}),
    "tpe": ("tpe", {}),
    "nsga2": ("nsga2", {}),
    "evolution_zc": ("evolution", {}),
}
PRESCREEN = {"candidates": 100, "keep": 10}
PRESCREENED = ("evolution_zc",)
MULTI_OBJECTIVE = ("nsga2",)

Scorer = Callable[[tuple[int, ...]], float]


# ------------------------------------------------------------------ small pieces (tested one by one)
def stream_seed(label: str, seed: int, purpose: str = "") -> int:
    """The seed of (strategy label, run seed[, purpose]): a stable hash, different for every label."""
    return zlib.crc32(f"{label}:{seed}{':' + purpose if purpose else ''}".encode())


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (NaN counts as 1)."""
    p = [1.0 if math.isnan(v) else float(v) for v in p_values]
    m = len(p)
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p[i])):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def per_seed(row: Mapping[str, Any], metric: str) -> list[float]:
    """A member's per-training-seed values of ``metric``; a single-seed row is one seed."""
    values = row.get(f"{metric}_seeds")
    return [float(v) for v in values] if values else [float(row[metric])]


def incumbents(observed: Sequence[float]) -> list[int]:
    """After each query, the position of the best observed value so far (ties: the earliest)."""
    out: list[int] = []
    for position, value in enumerate(observed):
        if not out or value > observed[out[-1]]:
            out.append(position)
        else:
            out.append(out[-1])
    return out


def queries_to(keys: Sequence[str], targets: set[str], budget: int | None = None) -> float:
    """1-based number of the first query of a member in ``targets`` within ``budget``; +inf if none."""
    for number, key in enumerate(keys[:budget], 1):
        if key in targets:
            return float(number)
    return math.inf


def top_members(rows: Mapping[str, Mapping[str, Any]], share: float = 0.01) -> tuple[set[str], float]:
    """The keys of the ceil(share * members) highest test means (ties at the threshold included) and that threshold."""
    count = math.ceil(share * len(rows))
    threshold = sorted((row["test_acc1"] for row in rows.values()), reverse=True)[count - 1]
    return {key for key, row in rows.items() if row["test_acc1"] >= threshold}, threshold


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) that lets +inf (censored) values through."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    if ordered[high] == math.inf:
        return ordered[low] if low == high or position == low else math.inf
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _finite(value: float) -> float | None:
    return None if value == math.inf else value


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def mann_whitney(a: Sequence[float], b: Sequence[float], alternative: str) -> float:
    from scipy.stats import mannwhitneyu

    p = float(mannwhitneyu(a, b, alternative=alternative).pvalue)
    return 1.0 if math.isnan(p) else p


# ------------------------------------------------------------------ the runs
def make(space: SearchSpace, label: str, seed: int, scorer: Scorer | None = None) -> Any:
    """The strategy of ``label`` for run ``seed``, on its own random stream."""
    from vision_backbones.search.strategies import make_strategy

    name, options = STRATEGIES[label]
    strategy = make_strategy(name, space, seed=stream_seed(label, seed), **options)
    if label in PRESCREENED:
        from vision_backbones.search.prescreen import Prescreened

        if scorer is None:
            raise ValueError(f"strategy {label!r} needs proxy scores (--proxy-scores)")
        strategy = Prescreened(strategy, scorer, **PRESCREEN, seed=stream_seed(label, seed, "prescreen"))
    return strategy


def run_one(
    space: SearchSpace,
    table: Any,
    label: str,
    seed: int,
    queries: int,
    scorer: Scorer | None = None,
    seconds: float | None = None,
) -> dict[str, list[Any]]:
    """One run: the key of every query, the validation accuracy (one drawn training seed) it returned,
    and that training run's recorded seconds (``train_seconds_seeds``; 0 where the table has none).

    ``seconds``: also stop before the query that would take the recorded training time past it
    (a wall-clock budget, as NAS-Bench tables simulate one); ``queries`` stays an upper bound.
    """
    import random

    strategy = make(space, label, seed, scorer)
    draws = random.Random(stream_seed(label, seed, "queries"))
    keys: list[str] = []
    observed: list[float] = []
    costs: list[float] = []
    for _ in range(queries):
        indices = strategy.propose()
        row = table(indices)
        values = per_seed(row, "val_acc1")
        drawn = draws.randrange(len(values))
        value = values[drawn]
        cost = float((row.get("train_seconds_seeds") or [0.0] * len(values))[drawn])
        if seconds is not None and sum(costs) + cost > seconds:
            break
        if label in MULTI_OBJECTIVE:
            strategy.observe_result(indices, {"val_acc1": value, "latency_ms": row["latency_ms"]}, value / 100.0)
        else:
            strategy.observe(indices, value / 100.0)
        keys.append(row["key"])
        observed.append(value)
        costs.append(cost)
    return {"keys": keys, "observed": observed, "seconds": costs}


def load_scores(path: str, proxy: str, rows: Mapping[str, Any]) -> dict[str, float]:
    """Member key -> proxy score from a JSON-lines file (``key`` and one field per proxy); every member needed.

    Without an ``ensemble`` field, ``--proxy ensemble`` is ``search.proxies.rank_ensemble`` (mean rank of
    synflow, naswot and zico) over every member of the file.
    """
    if not Path(path).is_file():
        raise ValueError(f"--proxy-scores {path!r} does not exist; expected a JSON-lines file of proxy scores")
    scores: dict[str, float] = {}
    lines = read_jsonl(path)
    if proxy == "ensemble" and lines and all("ensemble" not in row for row in lines):
        from vision_backbones.search.proxies import ENSEMBLE, rank_ensemble

        missing = [name for name in ENSEMBLE if any(name not in row for row in lines)]
        if missing:
            raise ValueError(f"--proxy-scores {path!r}: no 'ensemble' field and no {missing[0]!r} to rank it from")
        # the rank-average ensemble of search.proxies, over every member of the file
        lines = [{**row, "ensemble": rank} for row, rank in zip(lines, rank_ensemble(lines))]
    for row in lines:
        if proxy not in row:
            raise ValueError(f"--proxy-scores {path!r}: member {row.get('key')} lacks proxy {proxy!r} (--proxy)")
        scores[row["key"]] = float(row[proxy])
    missing = [key for key in rows if key not in scores]
    if missing:
        raise ValueError(
            f"--proxy-scores {path!r} lacks {len(missing)} of {len(rows)} table members (e.g. {missing[0]}); "
            "expected a score for every member"
        )
    return scores


# ------------------------------------------------------------------ the figures
def summarise(
    runs: Mapping[str, list[dict[str, list[Any]]]],
    rows: Mapping[str, Mapping[str, Any]],
    budgets: Sequence[int],
) -> dict[str, Any]:
    """Every figure of the comparison from the runs (label -> one record per seed)."""
    optimum = max(row["test_acc1"] for row in rows.values())
    targets, threshold = top_members(rows)
    results: dict[str, dict[str, Any]] = {}
    for label, records in runs.items():
        results[label] = {}
        for budget in budgets:
            chosen = [record["keys"][incumbents(record["observed"][:budget])[-1]] for record in records]
            test = [rows[key]["test_acc1"] for key in chosen]
            val = [rows[key]["val_acc1"] for key in chosen]
            observed = [max(record["observed"][:budget]) for record in records]
            regret = [optimum - t for t in test]
            reach = [queries_to(record["keys"], targets, budget) for record in records]
            results[label][str(budget)] = {
                "test_mean": mean_std(test)[0],
                "test_std": mean_std(test)[1],
                "val_mean": mean_std(val)[0],
                "val_std": mean_std(val)[1],
                "regret_mean": mean_std(regret)[0],
                "regret_std": mean_std(regret)[1],
                # None: censored (the quantile is a run that did not reach the top 1 % within the budget)
                "top1pct_median": _finite(quantile(reach, 0.5)),
                "top1pct_q25": _finite(quantile(reach, 0.25)),
                "top1pct_q75": _finite(quantile(reach, 0.75)),
                "top1pct_reached": sum(r != math.inf for r in reach) / len(reach),
                "returned": chosen,
                "test": test,
                "val": val,
                "observed_val": observed,
                "queries_to_top1pct": [None if r == math.inf else int(r) for r in reach],
            }
    # one-sided tests against random search, Holm over every (strategy, budget) of a direction
    others = [label for label in runs if label != BASELINE]
    if BASELINE in runs and others:
        pairs = [(label, str(budget)) for label in others for budget in budgets]
        for alternative, name in (("greater", "better"), ("less", "worse")):
            raw = [
                mann_whitney(results[label][at]["test"], results[BASELINE][at]["test"], alternative)
                for label, at in pairs
            ]
            for (label, at), p, adjusted in zip(pairs, raw, holm(raw)):
                results[label][at][f"p_{name}"] = p
                results[label][at][f"p_{name}_holm"] = adjusted
    return {
        "optimum": optimum,
        "top1pct": {"members": sorted(targets), "threshold": threshold},
        "results": results,
        "curves": curves(runs, rows, optimum),
    }


def curves(
    runs: Mapping[str, list[dict[str, list[Any]]]], rows: Mapping[str, Mapping[str, Any]], optimum: float
) -> dict[str, dict[str, list[float]]]:
    """Per strategy and query: mean over seeds of the returned member's test mean, 95 % band, mean regret."""
    import numpy as np

    out = {}
    for label, records in runs.items():
        test = np.array(
            [[rows[record["keys"][i]]["test_acc1"] for i in incumbents(record["observed"])] for record in records]
        )
        mean = test.mean(0)
        half = 1.96 * (test.std(0, ddof=1) if len(test) > 1 else np.zeros_like(mean)) / math.sqrt(len(test))
        out[label] = {
            "test_mean": [round(float(v), 4) for v in mean],
            "test_low": [round(float(v), 4) for v in mean - half],
            "test_high": [round(float(v), 4) for v in mean + half],
            "regret_mean": [round(float(optimum - v), 4) for v in mean],
        }
    return out


def hypervolumes(
    runs: Mapping[str, list[dict[str, list[Any]]]], rows: Mapping[str, Mapping[str, Any]], budgets: Sequence[int]
) -> dict[str, Any]:
    """Hypervolume of the (test mean, latency) front of each nsga2 / random run's evaluated members, per budget."""
    reference = (min(r["test_acc1"] for r in rows.values()), max(r["latency_ms"] for r in rows.values()))
    whole = hypervolume([(r["test_acc1"], r["latency_ms"]) for r in rows.values()], reference)
    section: dict[str, Any] = {"reference": list(reference), "table_front": whole, "budgets": {}}
    raw: dict[str, list[float]] = {"greater": [], "less": []}
    for budget in budgets:
        entry: dict[str, Any] = {}
        for label in ("nsga2", BASELINE):
            values = [
                hypervolume(
                    [(rows[k]["test_acc1"], rows[k]["latency_ms"]) for k in set(record["keys"][:budget])], reference
                )
                for record in runs[label]
            ]
            mean, std = mean_std(values)
            entry[label] = {
                "mean": mean,
                "std": std,
                "share_mean": mean / whole if whole else 0.0,
                "share_std": std / whole if whole else 0.0,
                "values": values,
            }
        for alternative in raw:
            raw[alternative].append(mann_whitney(entry["nsga2"]["values"], entry[BASELINE]["values"], alternative))
        section["budgets"][str(budget)] = entry
    for alternative, name in (("greater", "better"), ("less", "worse")):
        for budget, p, adjusted in zip(budgets, raw[alternative], holm(raw[alternative])):
            section["budgets"][str(budget)][f"p_{name}"] = p
            section["budgets"][str(budget)][f"p_{name}_holm"] = adjusted
    return section


def render_plot(summary: Mapping[str, Any], title: str) -> bytes:
    """The best-so-far figure as PNG bytes (written later, atomically, with the other outputs)."""
    import numpy as np

    from vision_backbones.plots import pyplot

    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    try:
        floor = 1e-2
        for label, curve in summary["curves"].items():
            queries = np.arange(1, len(curve["test_mean"]) + 1)
            (line,) = left.plot(queries, curve["test_mean"], label=label, linewidth=1.2)
            left.fill_between(queries, curve["test_low"], curve["test_high"], alpha=0.15, color=line.get_color())
            optimum = summary["optimum"]
            right.plot(queries, np.maximum(curve["regret_mean"], floor), color=line.get_color(), linewidth=1.2)
            right.fill_between(
                queries,
                np.maximum(optimum - np.asarray(curve["test_high"]), floor),
                np.maximum(optimum - np.asarray(curve["test_low"]), floor),
                alpha=0.15,
                color=line.get_color(),
            )
        left.axhline(summary["optimum"], color="grey", linestyle="--", label="table optimum")
        left.set_xlabel("queries")
        left.set_ylabel("test top-1 of the returned member (%)")
        left.set_title(title, fontsize=9)
        left.legend(fontsize=7, ncol=2)
        right.set_yscale("log")
        right.set_xlabel("queries")
        right.set_ylabel(f"regret to the table optimum (points, floored at {floor})")
        right.set_title("regret (log axis), 95 % bands", fontsize=9)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120)
        return buffer.getvalue()
    finally:
        plt.close(figure)


# ------------------------------------------------------------------ the report
def _budgets_text(budgets: Sequence[str]) -> str:
    if not budgets:
        return "no budget"
    if len(budgets) == 1:
        return f"{budgets[0]} queries"
    return f"{', '.join(budgets[:-1])} and {budgets[-1]} queries"


def _reach_text(entry: Mapping[str, Any], budget: int) -> tuple[str, str]:
    def show(value: float | None) -> str:
        return f">{budget}" if value is None else f"{value:g}"

    return (
        f"{show(entry['top1pct_median'])} [{show(entry['top1pct_q25'])}–{show(entry['top1pct_q75'])}]",
        f"{100 * entry['top1pct_reached']:.0f} %",
    )


def _p(value: float | None) -> str:
    return "—" if value is None else ("<0.001" if value < 0.001 else f"{value:.3f}")


def verdicts(results: Mapping[str, Mapping[str, Mapping[str, Any]]], budgets: Sequence[int]) -> list[str]:
    """One plain sentence per strategy: where it beat random search, where it lost, where neither."""
    lines = []
    for label, by_budget in results.items():
        if label == BASELINE:
            continue
        wins = [str(b) for b in budgets if by_budget[str(b)]["p_better_holm"] < ALPHA]
        losses = [str(b) for b in budgets if by_budget[str(b)]["p_worse_holm"] < ALPHA]
        ties = [str(b) for b in budgets if str(b) not in wins and str(b) not in losses]
        parts = [f"beat random search at {_budgets_text(wins)}" if wins else "beat random search at no budget"]
        if losses:
            parts.append(f"was WORSE than random search at {_budgets_text(losses)}")
        if ties:
            parts.append(f"was not distinguishable from it at {_budgets_text(ties)}")
        lines.append(f"- **{label}** " + "; ".join(parts) + ".")
    return lines


def markdown(summary: Mapping[str, Any]) -> str:
    table, results, budgets = summary["table"], summary["results"], summary["protocol"]["budgets"]
    rows = [
        "| strategy | queries | test top-1 of returned (%) | its val top-1 (%) | regret (points) "
        "| queries to top 1 %: median [IQR] | reached | p better (Holm) | p worse (Holm) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for budget in budgets:
        for label, by_budget in results.items():
            e = by_budget[str(budget)]
            reach, share = _reach_text(e, budget)
            rows.append(
                f"| {label} | {budget} | {e['test_mean']:.2f} ± {e['test_std']:.2f} | {e['val_mean']:.2f} ± {e['val_std']:.2f} "
                f"| {e['regret_mean']:.2f} ± {e['regret_std']:.2f} | {reach} | {share} "
                f"| {_p(e.get('p_better_holm'))} | {_p(e.get('p_worse_holm'))} |"
            )
    protocol = summary["protocol"]
    specs = ", ".join(
        f"`{label}` ({spec['strategy']}{', ' + str(spec['options']) if spec['options'] else ''}"
        f"{', pre-screen ' + str(spec['prescreen']) if spec.get('prescreen') else ''})"
        for label, spec in protocol["strategies"].items()
    )
    text = [
        f"# Search strategies against the `{table['space']}` table",
        "",
        f"Generated by `{summary['command']}` in {summary['seconds']:.0f} s ({summary['search_seconds']:.0f} s of search) "
        f"on {summary['machine_description']}, one thread.",
        "",
        f"Table `{table['path']}`: {table['members']} members, {table['training_seeds']} training seed(s) each; "
        f"test mean from {table['test_min']:.2f} to {table['test_max']:.2f} % (median {table['test_median']:.2f}); "
        f"optimum {table['optimum']:.2f} % test (`{table['optimum_key']}`); the top 1 % is the "
        f"{len(summary['top1pct']['members'])} member(s) at or above {summary['top1pct']['threshold']:.2f} % test.",
        "",
        "## Protocol",
        "",
        f"- Strategies, published defaults, nothing tuned on the table: {specs}. BANANAS refits its predictor every "
        f"{BANANAS_REFIT_EVERY} queries (`refit_every={BANANAS_REFIT_EVERY}`), as the BANANAS code (naszilla) does.",
        f"- Budgets {', '.join(map(str, budgets))} queries. One run of {max(budgets)} queries per (strategy, seed), "
        f"{protocol['seeds']} seeds; smaller budgets are its prefixes. No strategy reads the budget, so a prefix is "
        "exactly the run that budget would give (the budgets of one strategy are not independent samples).",
        '- Independent streams: strategy seed `crc32(f"{label}:{seed}")`, query draws '
        '`crc32(f"{label}:{seed}:queries")`, pre-screen `crc32(f"{label}:{seed}:prescreen")`.',
        "- A query returns the validation accuracy of one training seed of the member, drawn per query from the run's "
        "generator (NAS-Bench-201's API); the strategy observes it / 100 (nsga2: with the table's latency).",
        "- The returned member at budget B: the query with the highest observed validation among the first B (ties: "
        "the earliest). Reported first its test top-1 (table seed mean), then its table validation mean, mean ± std "
        "over seeds; regret = table optimum (max test mean) − its test mean.",
        "- Queries to top 1 %: queries until the run first evaluated one of the ceil(1 % of members) best by test mean; "
        "runs that did not within B are censored (+inf; a censored quantile prints >B); reached = share of runs that did.",
        "- p better / p worse: one-sided Mann-Whitney U of per-seed test top-1 against random search, Holm-corrected "
        f"over all strategies x budgets (each direction); verdicts at alpha = {ALPHA}.",
        "",
        "## Results",
        "",
        *rows,
        "",
        *verdicts(results, budgets),
        "",
    ]
    hv = summary.get("hypervolume")
    if hv is not None:
        text += [
            "## nsga2: hypervolume of the (test top-1, latency) front",
            "",
            f"Reference point: worst test mean {hv['reference'][0]:.2f} %, worst latency {hv['reference'][1]:.3f} ms; "
            "as a share of the whole table's front; distinct evaluated members; mean ± std over seeds; one-sided "
            "Mann-Whitney U against random search, Holm-corrected over the budgets.",
            "",
            "| queries | nsga2 | random | p nsga2 larger (Holm) | p nsga2 smaller (Holm) |",
            "|---|---|---|---|---|",
        ]
        for budget in budgets:
            e = hv["budgets"][str(budget)]
            text.append(
                f"| {budget} | {e['nsga2']['share_mean']:.3f} ± {e['nsga2']['share_std']:.3f} "
                f"| {e[BASELINE]['share_mean']:.3f} ± {e[BASELINE]['share_std']:.3f} "
                f"| {_p(e['p_better_holm'])} | {_p(e['p_worse_holm'])} |"
            )
        text.append("")
    if summary["notes"]:
        text += ["## Notes", "", *[f"- {note}" for note in summary["notes"]], ""]
    text += ["![best so far](best_so_far.png)", ""]
    return "\n".join(text)


# ------------------------------------------------------------------ the command
def _strategies(text: str) -> list[str]:
    labels = [label.strip() for label in text.split(",") if label.strip()]
    unknown = [label for label in labels if label not in STRATEGIES]
    if unknown or not labels:
        raise argparse.ArgumentTypeError(
            f"unknown strategy {unknown[0] if unknown else text!r}; expected labels among {', '.join(STRATEGIES)}"
        )
    return list(dict.fromkeys(labels))


def _budgets(text: str) -> list[int]:
    try:
        budgets = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected increasing positive ints such as 25,50,100,200, got {text!r}"
        ) from None
    if not budgets or budgets[0] < 1 or any(a >= b for a, b in zip(budgets, budgets[1:])):
        raise argparse.ArgumentTypeError(f"expected increasing positive ints such as 25,50,100,200, got {text!r}")
    return budgets


def main(argv: Sequence[str] | None = None) -> int:
    import torch
    from threadpoolctl import threadpool_limits

    from vision_backbones.measure.machine import describe, machine_info
    from vision_backbones.progress import progress_bar
    from vision_backbones.search.table import TableEvaluator

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nasbench_mb", choices=sorted(SPACES))
    parser.add_argument("--table", required=True, help="the full JSON-lines table of --space")
    parser.add_argument("--seeds", type=int_at_least(1), default=50, help="runs per strategy (seeds 0..N-1)")
    parser.add_argument("--out", required=True, help="folder for comparison.json, comparison.md, best_so_far.png")
    parser.add_argument("--strategies", type=_strategies, default=None, help=f"subset of {','.join(STRATEGIES)}")
    parser.add_argument("--budgets", type=_budgets, default=list(BUDGETS), help="increasing query budgets")
    parser.add_argument("--proxy-scores", default=None, help="JSON lines: key and one field per zero-cost proxy")
    parser.add_argument("--proxy", default="ensemble", help="the proxy field of --proxy-scores (evolution_zc)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    out = check_output_folder("--out", args.out)
    if not Path(args.table).is_file():
        raise ValueError(f"--table {args.table!r} does not exist; expected the JSON-lines table of {args.space}")
    space = get_space(args.space)
    table = TableEvaluator.from_file(space, args.table)  # one-line ValueError when it is not this space's
    rows = table.rows
    explicit = args.strategies is not None
    labels = list(args.strategies or STRATEGIES)
    notes: list[str] = []
    if BASELINE not in labels:
        labels.insert(0, BASELINE)
        notes.append("random search added: it is the baseline of every comparison")
    has_latency = all(row.get("latency_ms") is not None for row in rows.values())
    if not has_latency and "nsga2" in labels:
        if explicit:
            raise ValueError(
                "strategy 'nsga2' needs latency_ms in every table row; measure it (search_table.py --latency)"
            )
        labels.remove("nsga2")
        notes.append(
            "nsga2 and its hypervolume section left out: the table has no latency_ms (search_table.py --latency)"
        )
    scorer: Scorer | None = None
    if "evolution_zc" in labels:
        reason = None
        try:
            import vision_backbones.search.prescreen  # noqa: F401
        except ImportError:
            reason = "vision_backbones.search.prescreen is not there"
        if reason is None and args.proxy_scores is None:
            reason = "no --proxy-scores file"
        if reason is not None:
            if explicit:
                raise ValueError(f"strategy 'evolution_zc' cannot run: {reason}")
            labels.remove("evolution_zc")
            notes.append(f"evolution_zc left out: {reason}")
        else:
            scores = load_scores(args.proxy_scores, args.proxy, rows)

            def scorer(indices: tuple[int, ...]) -> float:
                return scores[space.key(indices)]

            how = " (the file's field, else rank_ensemble of synflow, naswot, zico)" if args.proxy == "ensemble" else ""
            notes.append(f"evolution_zc pre-screens with proxy {args.proxy!r}{how} from {args.proxy_scores}")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    queries = max(args.budgets)
    runs: dict[str, list[dict[str, list[Any]]]] = {label: [] for label in labels}
    seconds_per_label: dict[str, float] = dict.fromkeys(labels, 0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1), progress_bar(remaining=True) as progress:
            bar = progress.add_task("runs", total=len(labels) * args.seeds)
            for label in labels:
                for seed in range(args.seeds):
                    progress.update(bar, description=f"{label} seed {seed}")
                    tick = time.perf_counter()
                    runs[label].append(run_one(space, table, label, seed, queries, scorer))
                    seconds_per_label[label] += time.perf_counter() - tick
                    progress.advance(bar)
    finally:
        torch.set_num_threads(threads)
    search_seconds = time.perf_counter() - started

    summary: dict[str, Any] = summarise(runs, rows, args.budgets)
    test = [row["test_acc1"] for row in rows.values()]
    machine = machine_info()
    best = table.best("test_acc1")
    summary = {
        "command": f"{PROG} {shlex.join(argv)}",
        "seconds": 0.0,
        "search_seconds": search_seconds,
        "seconds_per_strategy": seconds_per_label,
        "machine": machine,
        "machine_description": describe(machine),
        "table": {
            "space": space.name,
            "path": str(args.table),
            "members": len(rows),
            "training_seeds": max(len(per_seed(row, "val_acc1")) for row in rows.values()),
            "test_min": min(test),
            "test_max": max(test),
            "test_median": statistics.median(test),
            "optimum": best["test_acc1"],
            "optimum_key": best["key"],
            "optimum_val": best["val_acc1"],
            "val_optimum_key": table.best("val_acc1")["key"],
        },
        "protocol": {
            "budgets": list(args.budgets),
            "seeds": args.seeds,
            "queries_per_run": queries,
            "strategies": {
                label: {
                    "strategy": STRATEGIES[label][0],
                    "options": STRATEGIES[label][1],
                    **({"prescreen": {**PRESCREEN, "proxy": args.proxy}} if label in PRESCREENED else {}),
                }
                for label in labels
            },
            "streams": 'strategy crc32(f"{label}:{seed}"), queries crc32(f"{label}:{seed}:queries"), '
            'pre-screen crc32(f"{label}:{seed}:prescreen")',
            "query": "validation top-1 of one training seed drawn per query; reward = it / 100",
            "returned": "highest observed validation among the first B queries (ties: earliest)",
            "top1pct": "ceil(1 % of members) highest test means, ties included; censored at B",
            "tests": "one-sided Mann-Whitney U vs random on per-seed test top-1, Holm over strategies x budgets",
            "alpha": ALPHA,
        },
        "notes": notes,
        **summary,
    }
    if "nsga2" in labels and has_latency:
        summary["hypervolume"] = hypervolumes(runs, rows, args.budgets)
    title = f"{space.name} ({len(rows)} members): mean and 95 % band over {args.seeds} seeds"
    png = render_plot(summary, title)
    summary["seconds"] = time.perf_counter() - started
    text = markdown(summary)
    # every output is built; now write them, each atomically (a kill leaves each old or new, never torn)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "best_so_far.png", png)
    atomic_write_bytes(out / "comparison.json", json_text(summary).encode())
    atomic_write_bytes(out / "comparison.md", text.encode())
    print(text)
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, lambda: main(argv))


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
