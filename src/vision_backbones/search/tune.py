"""Zoph & Le's last step: a grid over learning rate x weight decay for retraining the best architecture.

Zoph & Le (https://arxiv.org/abs/1611.01578, section 4.1) retrain the architecture a search found with a
small grid over its learning rate and weight decay. ``tune_retraining`` does that on the proxy task: every
cell (``lr``, ``weight_decay``) trains the architecture from scratch on the training split with
``evaluate.evaluate_architecture`` (the trials' own training), the cell with the best *validation*
accuracy is chosen (the earliest of equals, in grid order) and its test accuracy is what is reported.

Every cell goes to ``OUT/tune.jsonl`` (the file rewritten atomically per cell, as ``trials.jsonl`` is)
and, with a storage, to the Optuna study ``<search study>-tune`` (``study_log``). A cell is known by its
architecture, task (epochs, lr, weight decay, ...) and seed, so a rerun trains only the cells the file
does not hold; rows of another architecture or task stay in the file and are not chosen from. A cell
whose training diverges (non-finite loss) is recorded as failed and never chosen.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vision_backbones.io import append_jsonl, jsonable, read_jsonl
from vision_backbones.search.spaces import SearchSpace, from_json

TUNE_FILE = "tune.jsonl"
DEFAULT_LRS = (0.003, 0.01, 0.03)
DEFAULT_WEIGHT_DECAYS = (0.0, 1e-4, 1e-3)
TUNE_FIX = "delete that line (the cell is trained again) or the file"
# wide ranges for the study's float distributions (widened to take any grid value)
LR_RANGE, WD_RANGE = (1e-6, 1.0), (0.0, 0.1)


def _read_cells(path: Path) -> list[dict[str, Any]]:
    rows = read_jsonl(path, fix=TUNE_FIX)
    for line, row in enumerate(rows, 1):
        if not (
            isinstance(row, dict)
            and isinstance(row.get("number"), int)
            and isinstance(row.get("task"), dict)
            and isinstance(row.get("result"), dict)
        ):
            raise ValueError(f"{str(path)!r} row {line} is not a tuning cell (number, task, result); {TUNE_FIX}")
    return rows


def tune_trial(row: Mapping[str, Any]) -> Any:
    """The ``FrozenTrial`` of one cell: params ``lr`` and ``weight_decay``, value the validation accuracy."""
    import optuna
    from optuna.distributions import FloatDistribution

    from vision_backbones.search.study_log import NUMBER, scalar_attrs

    lr, wd = float(row["task"]["lr"]), float(row["task"]["weight_decay"])
    value = row["result"].get("val_acc1")
    failed = row.get("error") is not None or value is None
    user_attrs = {
        **scalar_attrs(row["result"]),
        NUMBER: row["number"],
        "trial": row.get("trial"),
        "epochs": row["task"].get("epochs"),
        "seed": row.get("seed"),
        "architecture": row.get("architecture"),
    }
    if row.get("error") is not None:
        user_attrs["error"] = row["error"]
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE,
        value=None if failed else float(value),
        params={"lr": lr, "weight_decay": wd},
        distributions={
            "lr": FloatDistribution(min(LR_RANGE[0], lr), max(LR_RANGE[1], lr), log=True),
            "weight_decay": FloatDistribution(min(WD_RANGE[0], wd), max(WD_RANGE[1], wd)),
        },
        user_attrs=jsonable(user_attrs),
    )


def tune_retraining(
    space: SearchSpace,
    best: Mapping[str, Any],
    task: Any,
    out: str | os.PathLike[str],
    *,
    lrs: Sequence[float] = DEFAULT_LRS,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    seed: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    evaluate: Callable[..., dict[str, Any]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``best`` (a trial row) once per grid cell on ``task`` (a ``ProxyTask``), resuming from ``tune.jsonl``.

    Returns the chosen cell's row (``task`` with its ``lr`` / ``weight_decay``, ``result`` with
    ``val_acc1`` and ``test_acc1``). ``evaluate`` defaults to ``evaluate.evaluate_architecture`` (called as
    ``evaluate(base, architecture, task, seed=seed)``). ``storage`` (with ``study_name``, the search's study
    name) logs every cell to the study ``<study_name>-tune``; a bad URL is a ``ValueError`` before any cell.
    """
    from vision_backbones.search.evaluate import evaluate_architecture

    if not lrs or not weight_decays:
        raise ValueError("the tuning grid is empty; expected at least one lr and one weight decay")
    evaluate = evaluate or evaluate_architecture
    path = Path(out) / TUNE_FILE
    rows = _read_cells(path)
    log = None
    if storage is not None:
        from vision_backbones.search.study_log import StudyLog, open_study

        log = StudyLog(open_study(storage, f"{study_name or 'search'}-tune"), tune_trial)
        log.sync(rows)
    architecture = jsonable(best["architecture"])  # as trials.jsonl holds it (to_json)
    grid = [(float(lr), float(wd)) for lr in lrs for wd in weight_decays]
    chosen_from = []
    for position, (lr, wd) in enumerate(grid, 1):
        cell_task = dataclasses.replace(task, lr=lr, weight_decay=wd)
        key = {"architecture": architecture, "task": jsonable(cell_task.to_dict()), "seed": seed}
        row = next((r for r in rows if all(r.get(k) == v for k, v in key.items())), None)
        if row is None:
            error = None
            try:
                result = dict(evaluate(space.base, from_json(architecture), cell_task, seed=seed))
            except FloatingPointError as diverged:  # a learning rate too high is an outcome of the grid
                result, error = {}, str(diverged)
            result.pop("train_loss", None)
            number = max((r["number"] for r in rows), default=-1) + 1
            row = {"number": number, "trial": best.get("number"), **key, "result": result, "error": error}
            append_jsonl(path, row)
            rows.append(row)
            if log is not None:
                log.sync(rows)
            if progress:
                what = f"failed ({error})" if error else f"val {result['val_acc1']:.2f} %"
                print(f"tune {position}/{len(grid)}: lr {lr:g} weight decay {wd:g}: {what}", flush=True)
        chosen_from.append(row)
    finished = [
        (position, r)
        for position, r in enumerate(chosen_from)
        if r.get("error") is None and r["result"].get("val_acc1") is not None
    ]
    if not finished:
        raise ValueError(f"every cell of the tuning grid failed (see {str(path)!r}); expected lower learning rates")
    # the best validation accuracy; the earliest cell in grid order among equals
    return dict(max(finished, key=lambda item: (item[1]["result"]["val_acc1"], -item[0]))[1])


def tuned_summary(chosen: Mapping[str, Any], cells: int) -> dict[str, Any]:
    """What the best-architecture files record about the tuning (the chosen cell)."""
    return {
        "lr": chosen["task"]["lr"],
        "weight_decay": chosen["task"]["weight_decay"],
        "epochs": chosen["task"]["epochs"],
        "optimizer": chosen["task"].get("optimizer"),
        "val_acc1": chosen["result"]["val_acc1"],
        "test_acc1": chosen["result"].get("test_acc1"),
        "seed": chosen["seed"],
        "cells": cells,
        "file": TUNE_FILE,
    }
