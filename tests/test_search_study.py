"""A search's Optuna study (``search.study_log``) and the retraining grid ``--tune`` (``search.tune``).

Real searches here are tiny: ``nasbench_resnet`` (8 decisions, 2 choices each), scikit-learn's digits,
one epoch per trial (about a second each); the resume tests use the fake evaluator of test_search_run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from vision_backbones.cli import main  # noqa: E402
from vision_backbones.search.runner import SearchConfig, load_trials, run_search  # noqa: E402
from vision_backbones.search.spaces import get_space  # noqa: E402
from vision_backbones.search.study_log import StudyLog, default_storage, study_name  # noqa: E402

SEARCH = ["search", "--space", "nasbench_resnet", "--strategy", "random", "--epochs", "1", "--data", "digits"]


def _search(out: Path, trials: int, *extra: str) -> int:
    return main([*SEARCH, "--trials", str(trials), "--out", str(out), "--no-progress", *extra])


def _config(trials: int) -> SearchConfig:
    from vision_backbones.cli.search import build_parser, config_from_args

    args = build_parser().parse_args([*SEARCH[1:], "--trials", str(trials), "--out", "unused"])
    return config_from_args(args)


def _study(out: Path, name: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out}/study.db")


def _numbers(study: optuna.Study) -> list[int]:
    return sorted(t.user_attrs["number"] for t in study.get_trials())


def fake_evaluator(trial) -> dict:
    indices = trial["indices"]
    return {"val_acc1": 50.0 + 40.0 * sum(indices) / len(indices), "latency_ms": 1.0 + sum(indices)}


def test_every_trial_is_in_the_study_as_trials_jsonl_holds_it(tmp_path) -> None:
    out = tmp_path / "out"
    assert _search(out, 3) == 0
    name = study_name(_config(3))
    assert optuna.get_all_study_names(f"sqlite:///{out}/study.db") == [name]
    study = _study(out, name)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    rows = {row["number"]: row for row in load_trials(out)}
    trials = study.get_trials()
    assert len(trials) == 3 and {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    decisions = get_space("nasbench_resnet").decisions
    for trial in trials:
        row = rows[trial.user_attrs["number"]]
        assert trial.value == row["reward"]
        assert trial.params == {d.name: d.choices[i] for d, i in zip(decisions, row["indices"])}
        assert trial.distributions[decisions[0].name] == optuna.distributions.CategoricalDistribution(
            list(decisions[0].choices)
        )
        attrs = trial.user_attrs
        for key in ("val_acc1", "test_acc1", "latency_ms", "params", "flops", "seconds", "train_seconds"):
            assert attrs[key] == row["result"][key], key
        assert attrs["epochs"] == 1 and attrs["indices"] == row["indices"] and attrs["reward"] == row["reward"]
        assert attrs["architecture"] == row["architecture"]
    assert sorted(rows) == [0, 1, 2]


def test_a_resumed_search_adds_only_the_missing_trials(tmp_path) -> None:
    out = tmp_path / "out"
    assert _search(out, 2) == 0
    name = study_name(_config(2))
    assert _numbers(_study(out, name)) == [0, 1]
    assert _search(out, 4) == 0  # the same search with a larger budget: the same study
    assert study_name(_config(4)) == name
    assert _numbers(_study(out, name)) == [0, 1, 2, 3]  # each once
    assert _search(out, 4) == 0  # nothing new
    assert _numbers(_study(out, name)) == [0, 1, 2, 3]


def test_a_kill_between_the_log_and_the_study_is_caught_up_on_resume(tmp_path, monkeypatch) -> None:
    config = SearchConfig(space="nasbench_resnet", strategy="random", trials=3)
    storage = default_storage(tmp_path)
    original, calls = StudyLog.sync, []

    def killed_after_the_last_trial(self, rows, **kwargs):
        calls.append(len(list(rows)))
        if len(calls) == 4:  # the start, then one call per trial: the kill comes after trial 2's file write
            raise KeyboardInterrupt("killed")
        return original(self, rows, **kwargs)

    monkeypatch.setattr(StudyLog, "sync", killed_after_the_last_trial)
    with pytest.raises(KeyboardInterrupt):
        run_search(config, tmp_path, evaluator=fake_evaluator, progress=False, storage=storage)
    monkeypatch.setattr(StudyLog, "sync", original)
    assert [r["number"] for r in load_trials(tmp_path)] == [0, 1, 2]
    assert _numbers(_study(tmp_path, study_name(config))) == [0, 1]
    run_search(config, tmp_path, evaluator=fake_evaluator, progress=False, storage=storage)  # nothing to evaluate
    assert _numbers(_study(tmp_path, study_name(config))) == [0, 1, 2]


def test_a_search_run_without_a_study_is_synced_when_the_study_is_turned_on(tmp_path) -> None:
    config = SearchConfig(space="nasbench_resnet", strategy="random", trials=3)
    run_search(config, tmp_path, evaluator=fake_evaluator, progress=False)
    assert not (tmp_path / "study.db").exists()
    run_search(config, tmp_path, evaluator=fake_evaluator, progress=False, storage=default_storage(tmp_path))
    study = _study(tmp_path, study_name(config))
    assert _numbers(study) == [0, 1, 2]
    assert [t.value for t in sorted(study.get_trials(), key=lambda t: t.user_attrs["number"])] == [
        r["reward"] for r in load_trials(tmp_path)
    ]


def test_nsga2_trials_have_its_objectives_as_values(tmp_path) -> None:
    config = SearchConfig(space="nasbench_resnet", strategy="nsga2", trials=3)
    run_search(config, tmp_path, evaluator=fake_evaluator, progress=False, storage=default_storage(tmp_path))
    study = _study(tmp_path, study_name(config))
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    rows = {r["number"]: r for r in load_trials(tmp_path)}
    for trial in study.get_trials():
        result = rows[trial.user_attrs["number"]]["result"]
        assert trial.values == [result["val_acc1"], result["latency_ms"]]


class OutOfOrder:
    """Ray's order: a batch's trials come back as they finish (here the last first), all to the driver."""

    def map(self, evaluator, trials):
        for trial in reversed(list(trials)):
            yield trial["number"], evaluator(trial)

    def close(self) -> None:
        pass


def test_parallel_trials_are_written_once_by_the_driver_as_they_finish(tmp_path, monkeypatch) -> None:
    # the same path as RayExecutor (which takes ~20 s to start here); a real Ray run is in test_search_run
    import vision_backbones.search.runner as runner

    monkeypatch.setattr(runner, "make_executor", lambda workers, address=None: OutOfOrder())
    config = SearchConfig(
        space="nasbench_resnet", strategy="evolution", trials=5, workers=2, strategy_options={"population_size": 3}
    )
    run_search(config, tmp_path, evaluator=fake_evaluator, progress=False, storage=default_storage(tmp_path))
    study = _study(tmp_path, study_name(config))
    assert [t.user_attrs["number"] for t in study.get_trials()] == [1, 0, 3, 2, 4]  # as they finished, each once
    rows = {r["number"]: r for r in load_trials(tmp_path)}
    assert all(t.value == rows[t.user_attrs["number"]]["reward"] for t in study.get_trials())


@pytest.mark.parametrize(
    ("storage", "shown"),
    [
        ("nosuchdb://host/db", "nosuchdb://host/db"),
        ("not a url", "not a url"),
        ("sqlite:////nonexistent-folder-4711/study.db", "sqlite:////nonexistent-folder-4711/study.db"),
        ("postgresql://me:secret@127.0.0.1:1/db", "postgresql://me:***@127.0.0.1:1/db"),
    ],
)
def test_a_bad_storage_is_one_line_naming_it_before_any_trial(tmp_path, capsys, storage: str, shown: str) -> None:
    out = tmp_path / "out"
    code = _search(out, 3, "--storage", storage)
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1, error
    assert f"study storage {shown!r} cannot be opened" in error and "expected an SQLAlchemy database URL" in error
    assert "secret" not in error
    assert not out.exists()  # nothing ran, nothing was written


def test_no_study_writes_no_database(tmp_path) -> None:
    out = tmp_path / "out"
    assert _search(out, 2, "--no-study") == 0
    assert len(load_trials(out)) == 2
    assert not (out / "study.db").exists()


# ---------------------------------------------------------------------------------- --tune


@pytest.fixture
def no_comparison(monkeypatch) -> list[dict]:
    """``retrain_and_compare`` without its registered models (their latencies take a minute): the call is recorded."""
    import vision_backbones.search.result as result

    calls: list[dict] = []

    def record(space, trials, task, out, **kwargs):
        calls.append({"task": task, **kwargs})
        return {
            role: {"model": "m", "test_acc1": 1.0, "latency_ms": 1.0, "params": 1}
            for role in ("searched", "nearest_registered")
        }

    monkeypatch.setattr(result, "retrain_and_compare", record)
    return calls


def test_tune_trains_each_cell_once_and_chooses_on_validation(tmp_path, monkeypatch, no_comparison) -> None:
    out = tmp_path / "out"
    tune = ["--retrain-epochs", "1", "--tune", "--tune-lr", "0.00001,0.03", "--tune-wd", "0"]
    assert _search(out, 2, *tune) == 0
    cells = [json.loads(line) for line in (out / "tune.jsonl").read_text().splitlines()]
    assert [(c["task"]["lr"], c["task"]["weight_decay"], c["task"]["epochs"]) for c in cells] == [
        (0.00001, 0.0, 1),
        (0.03, 0.0, 1),
    ]
    best = max(cells, key=lambda c: c["result"]["val_acc1"])
    assert best["task"]["lr"] == 0.03 and best["result"]["val_acc1"] > cells[0]["result"]["val_acc1"]
    tuned = json.loads((out / "best_architecture.json").read_text())["tuned"]
    assert (tuned["lr"], tuned["weight_decay"], tuned["val_acc1"]) == (0.03, 0.0, best["result"]["val_acc1"])
    assert "lr 0.03, weight decay 0" in (out / "best_imagenet.yaml").read_text()
    (call,) = no_comparison  # the comparison reuses the chosen cell, with its lr and weight decay
    assert call["searched"] == best["result"] and call["task"].lr == 0.03 and call["task"].weight_decay == 0.0
    study = _study(out, study_name(_config(2)) + "-tune")
    assert sorted((t.params["lr"], t.value) for t in study.get_trials()) == sorted(
        (c["task"]["lr"], c["result"]["val_acc1"]) for c in cells
    )

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr("vision_backbones.search.evaluate.evaluate_architecture", no_training)
    assert _search(out, 2, *tune) == 0  # the rerun reads every cell from tune.jsonl
    assert (out / "tune.jsonl").read_text().count("\n") == 2 and len(study.get_trials()) == 2


def test_tune_chooses_on_validation_never_on_test_and_skips_diverged_cells(tmp_path) -> None:
    from vision_backbones.search.evaluate import ProxyTask
    from vision_backbones.search.tune import tune_retraining

    scores = {0.1: (80.0, 99.0), 0.01: (90.0, 70.0), 0.001: (90.0, 60.0)}  # lr -> (val, test)

    def fake(base, architecture, task, *, seed):
        if task.lr == 1.0:
            raise FloatingPointError("training loss became nan")
        val, test = scores[task.lr]
        return {"val_acc1": val, "test_acc1": test}

    best = {"number": 0, "architecture": {"depths": [1, 1, 1, 1]}}
    task = ProxyTask(data="digits", epochs=1)
    chosen = tune_retraining(
        get_space("nasbench_resnet"),
        best,
        task,
        tmp_path,
        lrs=(1.0, 0.1, 0.01, 0.001),
        weight_decays=(0.0,),
        evaluate=fake,
        progress=False,
    )
    assert chosen["task"]["lr"] == 0.01  # best validation; of the two equal, the earlier in the grid
    cells = [json.loads(line) for line in (tmp_path / "tune.jsonl").read_text().splitlines()]
    assert [c["error"] is not None for c in cells] == [True, False, False, False]


GRID = ["--retrain-epochs", "1", "--tune"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([*GRID, "--tune-lr", "0"], "--tune-lr: expected numbers > 0 separated by commas, got '0'"),
        ([*GRID, "--tune-lr", "0.01,-0.1"], "--tune-lr: expected numbers > 0 separated by commas, got '-0.1'"),
        ([*GRID, "--tune-lr", "fast"], "--tune-lr: expected numbers > 0 separated by commas, got 'fast'"),
        ([*GRID, "--tune-lr", "nan"], "got 'nan'"),
        ([*GRID, "--tune-lr", "0.01,"], "got ''"),
        ([*GRID, "--tune-lr", "0.01,0.01"], "expected distinct numbers > 0, got '0.01' twice"),
        ([*GRID, "--tune-wd=-1e-4"], "--tune-wd: expected numbers >= 0 separated by commas, got '-1e-4'"),
        ([*GRID, "--tune-wd", "0,x"], "--tune-wd: expected numbers >= 0 separated by commas, got 'x'"),
        (["--tune-lr", "0.01"], "expected --tune with them"),
        (["--tune"], "expected --retrain-epochs E > 0"),
        (["--storage", "sqlite:///x.db", "--no-study"], "not allowed with argument"),
    ],
)
def test_bad_tune_grid_is_one_line_and_writes_nothing(tmp_path, capsys, extra: list[str], message: str) -> None:
    out = tmp_path / "out"
    try:
        code = _search(out, 2, *extra)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    error = capsys.readouterr().err
    assert code == 2 and message in error and error.count("\n") == 1, error
    assert not out.exists()
