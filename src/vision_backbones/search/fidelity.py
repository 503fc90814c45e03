"""Multi-fidelity trials: stop unpromising architectures early with Optuna's pruners (ASHA, Hyperband).

A trial trains for ``ProxyTask.epochs`` epochs; with a ``Fidelity`` it reports its validation accuracy
after every epoch (the *resource* is the epoch count) to an Optuna study kept for the purpose, and
stops when the pruner says so:

- ``asha``: ``optuna.pruners.SuccessiveHalvingPruner`` (asynchronous successive halving, Li et al.
  2020, https://arxiv.org/abs/1810.05934): rungs at ``min_epochs * reduction_factor ** k`` epochs; a
  trial goes on past a rung only if it is in the top ``1 / reduction_factor`` of the trials that
  reached that rung so far, so no trial waits for others (the first ones are promoted only when they
  lead).
- ``hyperband``: ``optuna.pruners.HyperbandPruner`` (Li et al. 2018), several successive-halving
  brackets with different minimum budgets, over ``min_epochs`` .. ``ProxyTask.epochs``.

The learning-rate schedule spans the task's full epochs whatever the rung (as Optuna's pruning does):
a stopped trial is the first epochs of the full-fidelity run, not a shorter run. Its reward is its
last reported validation accuracy, and the trial record says ``pruned`` and how many epochs it had.

The pruner's study lives in ``storage`` (the search's SQLite file by default, or a database URL that
every Ray worker reaches) under ``<search study>-fidelity``, apart from the study that mirrors the
trials for watching: trials are written there by the driver, rung reports here by the workers.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from vision_backbones.validate import check_choice, check_int

KINDS = ("asha", "hyperband")
FIDELITY_FIELDS = ("kind", "min_epochs", "reduction_factor")  # what a search config holds; storage is the folder's
FIDELITY_FILE = "fidelity.db"


@dataclass(frozen=True)
class Fidelity:
    """How trials are cut short: the pruner, its budgets and where its bookkeeping is stored."""

    kind: str = "asha"
    min_epochs: int = 1
    reduction_factor: int = 3
    storage: str = "sqlite:///fidelity.db"
    study_name: str = "search-fidelity"

    def __post_init__(self) -> None:
        check_choice("fidelity", self.kind, KINDS)
        check_int("min_epochs", self.min_epochs, min=1)
        check_int("reduction_factor", self.reduction_factor, min=2)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def pruner(self, max_epochs: int) -> Any:
        import optuna

        if self.kind == "asha":
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=self.min_epochs, reduction_factor=self.reduction_factor
            )
        return optuna.pruners.HyperbandPruner(
            min_resource=self.min_epochs, max_resource=max_epochs, reduction_factor=self.reduction_factor
        )

    def study(self, max_epochs: int) -> Any:
        """The pruner's study (created on first use; every worker loads the same one)."""
        from vision_backbones.search.study_log import quiet_optuna

        with quiet_optuna() as optuna:  # "A new study created": Optuna's INFO lines, not ours to print
            return optuna.create_study(
                storage=self.storage,
                study_name=self.study_name,
                direction="maximize",
                pruner=self.pruner(max_epochs),
                load_if_exists=True,
            )


class RungReporter:
    """One trial's link to the pruner: ``report(epoch, val_acc1) -> stop?`` then ``finish(...)``."""

    def __init__(self, fidelity: Fidelity, number: int, max_epochs: int) -> None:
        if fidelity.min_epochs > max_epochs:
            raise ValueError(
                f"min_epochs {fidelity.min_epochs} exceeds the task's epochs {max_epochs}; expected min_epochs <= epochs"
            )
        self.study = fidelity.study(max_epochs)
        self.trial = self.study.ask()
        self.trial.set_user_attr("number", number)
        self.epochs = 0
        self.last: float | None = None

    def report(self, epoch: int, value: float) -> bool:
        """Record the accuracy after ``epoch`` (1-based); True when the trial should stop here."""
        self.epochs, self.last = epoch, value
        self.trial.report(value, epoch)
        return bool(self.trial.should_prune())

    def finish(self, value: float, *, pruned: bool) -> None:
        from vision_backbones.search.study_log import quiet_optuna

        with quiet_optuna() as optuna:  # Optuna logs every told trial at INFO
            if pruned:
                self.study.tell(self.trial, state=optuna.trial.TrialState.PRUNED)
            else:
                self.study.tell(self.trial, value)


def fail_stale_trials(fidelity: Fidelity, max_epochs: int) -> int:
    """Mark the pruner trials a killed search left running as failed; returns how many. Called once by the
    driver before trials start. Their rung values still count as competitors (Optuna's successive halving
    counts every trial that reached a rung), so a rerun trial meets its own earlier reports there."""
    import optuna

    study = fidelity.study(max_epochs)
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    from vision_backbones.search.study_log import quiet_optuna

    with quiet_optuna():
        for trial in stale:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    return len(stale)


def fidelity_for_search(config: Any, out: str | os.PathLike[str], storage: str | None) -> Fidelity:
    """The pruner of a search: ``config.fidelity``, its study ``<search study>-fidelity`` in ``OUT/fidelity.db``
    or, for a database server (``storage`` not SQLite: several machines), there; trials a killed run left
    running are marked failed. Its own SQLite file keeps the workers' rung writes off the study file the
    driver writes."""
    from vision_backbones.search.study_log import study_name

    shared = storage is not None and not storage.startswith("sqlite")
    url = storage if shared and storage else f"sqlite:///{Path(out).resolve() / FIDELITY_FILE}"
    fidelity = replace(Fidelity(**config.fidelity), storage=url, study_name=f"{study_name(config)}-fidelity")
    fail_stale_trials(fidelity, int(config.task.get("epochs", 2)))
    return fidelity
