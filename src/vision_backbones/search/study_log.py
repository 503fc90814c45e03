"""Every trial of a search also in an Optuna study, so a running search can be watched.

``trials.jsonl`` stays the search's record; the study is a copy written next to it for
``optuna-dashboard sqlite:///OUT/study.db`` (or ``optuna.load_study``), by default in the search folder,
or in any database that Optuna's ``RDBStorage`` reaches (``--storage postgresql://...``: several machines).

- Study name: ``study_name(config)``, ``<space>-<strategy>-<12 hex digits of the identity's SHA-256>``: one
  study per search (``SearchConfig.identity``), the same across resumes and machines. The retraining grid
  of ``search.tune`` goes to ``<name>-tune``.
- A search trial (``search_trial``): params are the chosen value of each decision, with a
  ``CategoricalDistribution`` over the decision's choices; the value is the runner's reward (maximize), or
  for NSGA-II the values of its objectives in its directions; user attributes are the library's trial
  ``number``, the choice ``indices``, the ``reward``, every scalar of the result (``val_acc1``,
  ``test_acc1``, ``latency_ms``, ``params``, ``flops``, ``deploy_params``, ``deploy_flops``, ``seconds``,
  ``train_seconds``, ...), the proxy ``epochs`` and the ``architecture``.
- ``StudyLog.sync(rows)`` adds the rows whose ``number`` the study does not hold yet. The runner calls it
  once on start (a resumed search catches up with its ``trials.jsonl``) and after each appended trial, so a
  killed and rerun search never duplicates a trial. A write that fails mid-search (the database went away)
  is one warning; the search goes on and the next sync retries.
- A storage that cannot be opened (bad scheme, missing driver, unreachable) is one ``ValueError`` naming
  the URL (password hidden), raised before any trial runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vision_backbones.io import jsonable

STUDY_FILE = "study.db"
NUMBER = "number"  # the user attribute holding the library's trial (or grid cell) number
EXPECTED = (
    "expected an SQLAlchemy database URL this machine can reach, such as sqlite:///OUT/study.db "
    "or postgresql://USER:PASSWORD@HOST/DB with its driver installed"
)


def default_storage(out: str | os.PathLike[str]) -> str:
    """``sqlite:///<absolute out>/study.db``: the study inside the search folder."""
    return f"sqlite:///{Path(out).resolve() / STUDY_FILE}"


def shown(storage: str) -> str:
    """``storage`` with its password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(storage).render_as_string(hide_password=True))
    except Exception:  # not a URL at all: shown as given
        return storage


def optuna_available() -> bool:
    try:
        import optuna  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def study_name(config: Any) -> str:
    """The study of a search: its space, strategy and a hash of ``config.identity()``."""
    identity = json.dumps(config.identity(), sort_keys=True, separators=(",", ":"))
    return f"{config.space}-{config.strategy}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


@contextmanager
def quiet_optuna() -> Iterator[Any]:
    """Optuna without its INFO lines ("A new study created ...") or experimental warnings, then as it was."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(previous, optuna.logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield optuna
    finally:
        optuna.logging.set_verbosity(previous)


def open_study(
    storage: str, name: str, *, directions: Sequence[str] = ("maximize",), user_attrs: Mapping[str, Any] | None = None
) -> Any:
    """The study ``name`` in ``storage``, created if missing; a storage that cannot be opened is one ``ValueError``."""
    if not isinstance(storage, str) or not storage:
        raise ValueError(f"study storage {storage!r} is not a URL; {EXPECTED}")
    if not optuna_available():
        raise ValueError(
            f"study storage {shown(storage)!r} needs Optuna; install it (pip install 'vision-backbones[search]') "
            "or pass --no-study"
        )
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with quiet_optuna() as optuna:
            study = optuna.create_study(
                storage=storage, study_name=name, directions=list(directions), load_if_exists=True
            )
            for key, value in (user_attrs or {}).items():
                if key not in study.user_attrs:
                    study.set_user_attr(key, jsonable(value))
    except (SQLAlchemyError, ImportError, OSError, ValueError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise ValueError(f"study storage {shown(storage)!r} cannot be opened ({reason}); {EXPECTED}") from None
    return study


class StudyLog:
    """Adds rows (each with an int ``number``) to an Optuna study, each number once.

    ``to_trial(row)`` makes the ``FrozenTrial`` (``optuna.trial.create_trial``) of a row; it must store
    ``row["number"]`` as the user attribute ``number``, which ``sync`` reads to know what the study holds.
    """

    def __init__(self, study: Any, to_trial: Callable[[Mapping[str, Any]], Any]) -> None:
        self.study = study
        self.to_trial = to_trial
        self.held: set[int] | None = None  # numbers in the study; None: read them again
        self.failing = False

    def _held(self) -> set[int]:
        if self.held is None:
            trials = self.study.get_trials(deepcopy=False)
            self.held = {t.user_attrs[NUMBER] for t in trials if isinstance(t.user_attrs.get(NUMBER), int)}
        return self.held

    def sync(self, rows: Iterable[Mapping[str, Any]], *, strict: bool = False) -> int:
        """Add every row whose number the study lacks; returns how many were added.

        A failing write is a warning on stderr (``strict``: raised), so watching never stops a search;
        the numbers are read again on the next call.
        """
        added = 0
        try:
            with quiet_optuna():
                held = self._held()
                for row in sorted(rows, key=lambda r: int(r[NUMBER])):
                    if row[NUMBER] not in held:
                        self.study.add_trial(self.to_trial(row))
                        held.add(int(row[NUMBER]))
                        added += 1
        except Exception as error:  # the study is a view: the rows are safe in their JSON-lines file
            self.held = None
            if strict:
                raise
            if not self.failing:
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
                print(
                    f"warning: could not write to study {self.study.study_name!r} ({reason}); "
                    "the search goes on and retries after each trial (a rerun syncs the study)",
                    file=sys.stderr,
                )
            self.failing = True
            return added
        self.failing = False
        return added


def scalar_attrs(result: Mapping[str, Any]) -> dict[str, Any]:
    """The result's numbers, strings and booleans (lists such as per-epoch losses left out)."""
    return {k: v for k, v in result.items() if v is None or isinstance(v, (bool, int, float, str))}


def _finite(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def search_trial(
    row: Mapping[str, Any], space: Any, *, epochs: int | None, objectives: Sequence[str] | None = None
) -> Any:
    """The ``FrozenTrial`` of one ``trials.jsonl`` row (see the module docstring)."""
    import optuna
    from optuna.distributions import BaseDistribution, CategoricalDistribution

    indices = [int(i) for i in row["indices"]]
    member_space = space.space_for(indices)
    member_space.check_indices(indices)
    params: dict[str, Any] = {}
    distributions: dict[str, BaseDistribution] = {}
    for decision, index in zip(member_space.decisions, indices):
        params[decision.name] = decision.choices[index]
        distributions[decision.name] = CategoricalDistribution(list(decision.choices))
    result = row["result"]
    values = [result.get(key) for key in objectives] if objectives else [row["reward"]]
    user_attrs = {
        **scalar_attrs(result),
        NUMBER: int(row[NUMBER]),
        "indices": indices,
        "reward": row["reward"],
        "architecture": jsonable(row["architecture"]),
    }
    if epochs is not None:
        user_attrs.setdefault("epochs", epochs)
    complete = _finite(values)
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.FAIL,
        values=[float(v) for v in values] if complete else None,
        params=params,
        distributions=distributions,
        user_attrs=jsonable(user_attrs),
    )


def search_log(
    storage: str,
    config: Any,
    space: Any,
    *,
    objectives: Sequence[str] | None = None,
    directions: Sequence[str] | None = None,
) -> StudyLog:
    """The ``StudyLog`` of a search (``objectives`` and ``directions``: NSGA-II's; else the reward, maximized)."""
    epochs = config.task.get("epochs")
    if epochs is None:
        from vision_backbones.search.evaluate import ProxyTask

        epochs = ProxyTask.epochs
    study = open_study(
        storage,
        study_name(config),
        directions=tuple(directions) if objectives and directions else ("maximize",),
        user_attrs={"search": config.identity()},
    )
    return StudyLog(study, lambda row: search_trial(row, space, epochs=epochs, objectives=objectives))
