"""benchmarks/nasbench_compare.py on a made-up full table of ``nasbench_resnet`` (256 members, 3 training seeds)."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import statistics
import sys
from pathlib import Path

import pytest

from vision_backbones.io import read_jsonl, write_jsonl
from vision_backbones.search.spaces import get_space, to_json
from vision_backbones.search.table import TableEvaluator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("bench_nasbench_compare", ROOT / "benchmarks" / "nasbench_compare.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_nasbench_compare"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def space():
    return get_space("nasbench_resnet")


@pytest.fixture(scope="module")
def table_path(tmp_path_factory, space) -> Path:
    """Every member with 3 seeded made-up training seeds (val/test per seed) and a latency."""
    rng = random.Random(0)
    rows = []
    for indices in space.all_indices():
        quality = 0.4 * sum(indices) + rng.gauss(0, 1)
        val = [round(90 + quality + rng.gauss(0, 0.5), 2) for _ in range(3)]
        test = [round(89 + quality + rng.gauss(0, 0.5), 2) for _ in range(3)]
        rows.append(
            {
                "key": space.key(indices),
                "indices": list(indices),
                "architecture": to_json(space.architecture(indices)),
                "seeds": [0, 1, 2],
                "val_acc1_seeds": val,
                "test_acc1_seeds": test,
                "val_acc1": statistics.fmean(val),
                "test_acc1": statistics.fmean(test),
                "latency_ms": 1.0 + sum(indices) + rng.random(),
                "params": 1000 + sum(indices),
                "flops": 10000 + sum(indices),
            }
        )
    path = tmp_path_factory.mktemp("table") / "table.jsonl"
    write_jsonl(path, rows)
    return path


@pytest.fixture(scope="module")
def table(space, table_path):
    return TableEvaluator.from_file(space, table_path)


# ------------------------------------------------------------------ the pieces
def test_holm_matches_a_hand_computed_example(compare) -> None:
    # sorted: 0.005 x4 = 0.02; 0.01 x3 = 0.03; 0.03 x2 = 0.06; 0.04 x1 = 0.04 -> max(0.06, 0.04) = 0.06
    assert compare.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert compare.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert compare.holm([float("nan"), 0.01]) == pytest.approx([1.0, 0.02])
    assert compare.holm([]) == []


def test_hypervolume_and_censored_quantiles(compare) -> None:
    # reference (acc 0, latency 10): (5, 2) covers 8 x 5 = 40, (8, 6) adds 4 x 3 = 12; (4, 3) is dominated
    assert compare.hypervolume([(5, 2), (8, 6), (4, 3)], (0, 10)) == pytest.approx(52)
    assert compare.hypervolume([(0, 1), (3, 10)], (0, 10)) == 0  # on the reference point: nothing
    inf = math.inf
    assert compare.quantile([1, 2, inf], 0.5) == 2
    assert compare.quantile([1, inf, inf], 0.5) == inf
    assert compare.quantile([1, 3, 5, inf], 0.25) == pytest.approx(2.5)
    assert compare.quantile([1, 3, 5, inf], 0.75) == inf


def test_queries_to_the_top_one_percent_on_a_constructed_case(compare) -> None:
    rows = {f"m{i}": {"test_acc1": float(i)} for i in range(200)}  # ceil(1 % of 200) = 2: m199, m198
    rows["tie"] = {"test_acc1": 198.0}  # 201 members -> 3 at or above the 3rd best (198): ties included
    targets, threshold = compare.top_members(rows)
    assert threshold == 198.0 and targets == {"m199", "m198", "tie"}
    keys = ["m3", "m5", "m3", "tie", "m199"]
    assert compare.queries_to(keys, targets) == 4
    assert compare.queries_to(keys, targets, budget=3) == math.inf  # censored within 3 queries
    assert compare.queries_to(["m1", "m2"], targets) == math.inf


def test_streams_differ_between_strategies_and_repeat_per_seed(compare, space, table) -> None:
    assert compare.stream_seed("random", 0) != compare.stream_seed("evolution", 0)
    assert compare.stream_seed("random", 0) != compare.stream_seed("random", 0, "queries")
    # both start with random members: with a shared seed their first proposals would be the same
    first = compare.run_one(space, table, "random", 0, 10)
    other = compare.run_one(space, table, "evolution", 0, 10)
    assert first["keys"] != other["keys"]
    assert compare.run_one(space, table, "random", 0, 10) == first  # a run is a function of (label, seed)


def test_queries_draw_one_training_seed_and_the_returned_member_is_the_best_observed(compare, space, table) -> None:
    runs = {
        label: [compare.run_one(space, table, label, seed, 30) for seed in range(3)] for label in ("random", "local")
    }
    for records in runs.values():
        for record in records:
            for key, value in zip(record["keys"], record["observed"]):
                assert value in table.rows[key]["val_acc1_seeds"]  # one seed's value, not the mean
    drawn = {value for record in runs["random"] for value in record["observed"]}
    assert drawn - {table.rows[k]["val_acc1_seeds"][0] for r in runs["random"] for k in r["keys"]}  # not always seed 0
    summary = compare.summarise(runs, table.rows, [5, 12, 30])
    for label, records in runs.items():
        for budget in (5, 12, 30):
            entry = summary["results"][label][str(budget)]
            for seed, record in enumerate(records):
                best = max(record["observed"][:budget])
                first = record["observed"].index(best)  # ties: the earliest
                assert entry["returned"][seed] == record["keys"][first]
                assert entry["test"][seed] == table.rows[record["keys"][first]]["test_acc1"]
                assert entry["observed_val"][seed] == best
    assert "p_better_holm" in summary["results"]["local"]["30"]
    assert "p_better_holm" not in summary["results"]["random"]["30"]
    assert len(summary["curves"]["local"]["test_mean"]) == 30


# ------------------------------------------------------------------ the command
def _argv(table_path: Path, out: Path, *extra: str) -> list[str]:
    base = ["--space", "nasbench_resnet", "--table", str(table_path), "--out", str(out), "--seeds", "3"]
    return [*base, "--budgets", "5,10,20", *extra]


def test_outputs_are_written(compare, table_path, tmp_path, space, capsys) -> None:
    labels = "random,local,nsga2"
    extra: list[str] = []
    if importlib.util.find_spec("vision_backbones.search.prescreen") is not None:
        scores = tmp_path / "scores.jsonl"
        write_jsonl(scores, [{"key": space.key(m), "ensemble": float(sum(m))} for m in space.all_indices()])
        labels += ",evolution_zc"
        extra = ["--proxy-scores", str(scores)]
    out = tmp_path / "out"
    assert compare.cli(_argv(table_path, out, "--strategies", labels, *extra)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["best_so_far.png", "comparison.json", "comparison.md"]
    summary = json.loads((out / "comparison.json").read_text())
    assert list(summary["results"]) == labels.split(",")
    assert summary["machine"]["cpu"] and "isa" in summary["machine"] and "--seeds 3" in summary["command"]
    assert set(summary["hypervolume"]["budgets"]) == {"5", "10", "20"}
    text = (out / "comparison.md").read_text()
    assert "p better (Holm)" in text and "hypervolume" in text and "**local**" in text
    assert (out / "best_so_far.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_left_out_strategies_are_noted(compare, table_path, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert compare.cli(_argv(table_path, out, "--strategies", "local", "--budgets", "5")) == 0
    assert "random search added" in capsys.readouterr().err  # the baseline always runs
    # evolution_zc asked for without proxy scores: one line, nothing run
    assert compare.cli(_argv(table_path, tmp_path / "zc", "--strategies", "evolution_zc")) == 2
    assert "evolution_zc" in capsys.readouterr().err and not (tmp_path / "zc").exists()


def test_a_killed_or_failed_run_leaves_no_file(compare, table_path, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "comparison.json").write_text("old")
    real, calls = compare.run_one, []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(compare, "run_one", killed)
    assert compare.cli(_argv(table_path, out, "--strategies", "random,local")) == 130
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json"]
    assert (out / "comparison.json").read_text() == "old"
    monkeypatch.setattr(compare, "run_one", real)

    def broken(*args, **kwargs):
        raise RuntimeError("no figure")

    monkeypatch.setattr(compare, "render_plot", broken)
    assert compare.cli(_argv(table_path, out, "--strategies", "random,local")) == 1
    assert "no figure" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json"]
    assert (out / "comparison.json").read_text() == "old"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategies", "random,nope"], "unknown strategy 'nope'"),
        (["--seeds", "0"], "expected an int >= 1"),
        (["--budgets", "10,5"], "increasing positive ints"),
    ],
)
def test_bad_arguments_are_one_line(compare, table_path, tmp_path, capsys, extra, message) -> None:
    with pytest.raises(SystemExit) as exit_info:
        compare.cli([*_argv(table_path, tmp_path / "out"), *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_table_of_another_space_is_one_line(compare, table_path, tmp_path, capsys) -> None:
    argv = _argv(table_path, tmp_path / "out")
    argv[argv.index("nasbench_resnet")] = "nasbench_mb"
    assert compare.cli(argv) == 2
    err = capsys.readouterr().err
    assert "nasbench_mb" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_table_without_latency_leaves_nsga2_out(compare, table_path, tmp_path, capsys) -> None:
    rows = [{k: v for k, v in row.items() if k != "latency_ms"} for row in read_jsonl(table_path)]
    no_latency = tmp_path / "table.jsonl"
    write_jsonl(no_latency, rows)
    out = tmp_path / "out"
    argv = ["--space", "nasbench_resnet", "--table", str(no_latency), "--out", str(out), "--seeds", "2"]
    assert compare.cli([*argv, "--budgets", "3,6"]) == 0  # every default strategy, briefly
    summary = json.loads((out / "comparison.json").read_text())
    assert "nsga2" not in summary["results"] and "evolution_zc" not in summary["results"]
    assert "hypervolume" not in summary and len(summary["results"]) == 6
    assert "nsga2 and its hypervolume section left out" in (out / "comparison.md").read_text()
    assert compare.cli([*argv, "--strategies", "nsga2"]) == 2
    assert "latency_ms" in capsys.readouterr().err


def test_proxy_scores_and_the_ensemble_fallback(compare, tmp_path) -> None:
    path = tmp_path / "scores.jsonl"
    lines = [
        {"key": "a", "synflow": 1.0, "naswot": 3.0, "zico": 2.0},
        {"key": "b", "synflow": 2.0, "naswot": 2.0, "zico": 3.0},
        {"key": "c", "synflow": 3.0, "naswot": 1.0, "zico": 1.0},
    ]
    write_jsonl(path, lines)
    rows = {key: {} for key in "abc"}
    # mean ranks (1 = worst): a (1 + 3 + 2) / 3, b (2 + 2 + 3) / 3, c (3 + 1 + 1) / 3
    assert compare.load_scores(str(path), "ensemble", rows) == pytest.approx({"a": 2.0, "b": 7 / 3, "c": 5 / 3})
    assert compare.load_scores(str(path), "zico", rows) == {"a": 2.0, "b": 3.0, "c": 1.0}
    with pytest.raises(ValueError, match="lacks proxy 'snip'"):
        compare.load_scores(str(path), "snip", rows)
    with pytest.raises(ValueError, match="lacks 1 of 4 table members"):
        compare.load_scores(str(path), "zico", {**rows, "d": {}})


def test_a_wall_clock_budget_stops_before_the_query_that_would_pass_it(compare, space, table) -> None:
    assert compare.run_one(space, table, "random", 0, 10)["seconds"] == [0.0] * 10  # no recorded times: free

    def costly(indices):
        return {**table(indices), "train_seconds_seeds": [1.0, 2.0, 3.0]}

    free = compare.run_one(space, costly, "random", 0, 40)
    budgeted = compare.run_one(space, costly, "random", 0, 40, seconds=20.0)
    count = len(budgeted["keys"])
    assert budgeted["keys"] == free["keys"][:count]  # the same run, cut
    assert sum(budgeted["seconds"]) <= 20.0 < sum(free["seconds"][: count + 1])
    assert set(budgeted["seconds"]) <= {1.0, 2.0, 3.0}  # the drawn training seed's time


def test_wallclock_benchmark_compares_at_the_methods_median_cost(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_nasbench_wallclock", ROOT / "benchmarks" / "nasbench_wallclock.py"
    )
    wallclock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wallclock)
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed, (key, seconds) in enumerate([("0-0-0-0", 30.0), ("4-4-4-4", 50.0), ("2-2-2-2", 90.0)]):
        run = {"variant": "spos", "seed": seed, "epochs": 1, "best_by_supernet": key}
        run |= {"train_seconds": seconds - 10, "score_seconds": 10.0}
        (runs / f"spos_{seed}.json").write_text(json.dumps(run))
    assert wallclock.main(["--runs", str(runs), "--seeds", "3", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "wallclock.json").read_text())
    entry = summary["methods"]["spos e1"]
    assert entry["seconds"] == 50.0  # the median cost
    for strategy in wallclock.BLACK_BOX:
        for run in entry["black_box"][strategy]["runs"]:
            assert 0 < run["seconds"] <= 50.0 and run["queries"] >= 1
    assert [r["key"] for r in entry["runs"]] == ["0-0-0-0", "4-4-4-4", "2-2-2-2"]
    assert len(summary["verdicts"]) == len(wallclock.BLACK_BOX)
    assert "| spos e1 | 3 | 50 |" in (tmp_path / "wallclock.md").read_text()
