"""Multi-fidelity search (``search.fidelity``): trials report per epoch to Optuna's pruner and stop early.

Real searches are tiny (``nasbench_resnet`` on scikit-learn's digits, 3 epochs per trial).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

optuna = pytest.importorskip("optuna")

from vision_backbones.cli import main  # noqa: E402
from vision_backbones.registry import create_model  # noqa: E402
from vision_backbones.search.evaluate import ProxyTask, evaluate_model  # noqa: E402
from vision_backbones.search.fidelity import FIDELITY_FILE, Fidelity, RungReporter, fail_stale_trials  # noqa: E402
from vision_backbones.search.runner import load_trials  # noqa: E402

SEARCH = ["search", "--space", "nasbench_resnet", "--strategy", "random", "--data", "digits", "--no-progress"]


class Recorder:
    """A stand-in reporter: records the reports, stops after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None) -> None:
        self.stop_after, self.reports, self.finished = stop_after, [], None

    def report(self, epoch: int, value: float) -> bool:
        self.reports.append((epoch, value))
        return self.stop_after is not None and epoch >= self.stop_after

    def finish(self, value: float, *, pruned: bool) -> None:
        self.finished = (value, pruned)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("resnet18", num_classes=10, in_channels=1, widths=(8, 16, 16, 16), depths=(1, 1, 1, 1))


def test_a_pruned_trial_stops_after_its_rung_and_says_so() -> None:
    task = ProxyTask(data="digits", epochs=3, image_size=32)
    stopped = Recorder(stop_after=1)
    result = evaluate_model(_model(), task, rungs=stopped)
    assert len(result["train_loss"]) == 1 and result["epochs_trained"] == 1 and result["pruned"]
    assert [epoch for epoch, _ in stopped.reports] == [1]
    assert stopped.finished == (result["val_acc1"], True)  # the rung's accuracy is the trial's
    assert stopped.reports[0][1] == result["val_acc1"]
    full = Recorder(stop_after=None)
    result = evaluate_model(_model(), task, rungs=full)
    assert len(result["train_loss"]) == 3 and result["epochs_trained"] == 3 and not result["pruned"]
    assert [epoch for epoch, _ in full.reports] == [1, 2, 3]
    assert full.finished == (result["val_acc1"], False)


def test_asha_search_prunes_trials_as_its_study_records(tmp_path: Path) -> None:
    out = tmp_path / "out"
    extra = ["--epochs", "3", "--fidelity", "asha", "--reduction-factor", "2", "--no-study"]
    assert main([*SEARCH, "--trials", "8", "--out", str(out), *extra]) == 0
    rows = {row["number"]: row["result"] for row in load_trials(out)}
    assert sorted(rows) == list(range(8))
    storage = f"sqlite:///{out / FIDELITY_FILE}"
    (name,) = optuna.get_all_study_names(storage)
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert sorted(t.user_attrs["number"] for t in trials) == list(range(8))  # one pruner trial per search trial
    pruned = {t.user_attrs["number"] for t in trials if t.state == optuna.trial.TrialState.PRUNED}
    assert pruned == {number for number, result in rows.items() if result["pruned"]}
    assert pruned and len(pruned) < 8  # some stopped early, some ran to the end
    for trial in trials:
        result = rows[trial.user_attrs["number"]]
        assert result["epochs_trained"] == max(trial.intermediate_values)  # stopped at its last rung report
        # rungs at 1 and 2 epochs (min 1 x factor 2 ** k) below the task's 3: a pruned trial stopped at one
        assert result["epochs_trained"] in ((1, 2) if result["pruned"] else (3,))
        assert trial.intermediate_values[result["epochs_trained"]] == result["val_acc1"]


def test_a_killed_searchs_running_pruner_trials_are_failed_on_resume(tmp_path: Path) -> None:
    fidelity = Fidelity(storage=f"sqlite:///{tmp_path / 'f.db'}", study_name="s")
    left = RungReporter(fidelity, number=0, max_epochs=3)
    left.report(1, 50.0)  # the process dies here: the trial stays RUNNING
    done = RungReporter(fidelity, number=1, max_epochs=3)
    done.report(1, 60.0)
    done.finish(60.0, pruned=False)
    assert fail_stale_trials(fidelity, 3) == 1
    states = {t.user_attrs["number"]: t.state for t in fidelity.study(3).get_trials()}
    assert states == {0: optuna.trial.TrialState.FAIL, 1: optuna.trial.TrialState.COMPLETE}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fidelity", "bohb"], "fidelity must be one of 'asha', 'hyperband', got 'bohb'"),
        (["--fidelity", "asha", "--min-epochs", "2"], "fidelity min_epochs 2 leaves no rung below the task's 2 epochs"),
        (["--min-epochs", "2"], "--min-epochs / --reduction-factor set the pruner of --fidelity"),
        (["--fidelity", "asha", "--reduction-factor", "1"], "--reduction-factor"),
    ],
)
def test_bad_fidelity_is_one_line(tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    out = tmp_path / "out"
    try:
        code = main([*SEARCH, "--trials", "2", "--epochs", "2", "--out", str(out), *extra])
    except SystemExit as exit:  # argparse's own type checks
        code = exit.code
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1, error
    assert not out.exists()
