"""Run a search into a folder that can be killed at any moment and resumed, on one process or on Ray.

The folder (``--out``) holds:

- ``search.json``: what the search is (space, strategy and its options, seed, objective, proxy task,
  workers). Rerunning with the same folder and a different search is refused; the number of trials
  may grow.
- ``state.pt``: the strategy's ``state_dict`` at the start of the current batch and the number of the
  batch's first trial (``torch.save``, read back with ``weights_only=True``).
- ``trials.jsonl``: every evaluated trial (number, choice indices, architecture, result, reward),
  rewritten atomically after each trial.
- ``study.db`` (``run_search(storage=...)``; ``backbones search`` writes it unless ``--no-study``): an Optuna
  study holding every trial of ``trials.jsonl`` once, for ``optuna-dashboard`` while the search runs
  (``search.study_log``; another database with ``--storage URL``).
- ``supernet.pt``: only for weight-sharing strategies (``--strategy oneshot``): the shared weights,
  optimizer, generators and epochs done (``strategy.SharedWeights.weights_state_dict``), written after
  every training epoch; the trained supernet stays there after the search.

Each batch (``workers`` trials) is: save the state, propose, evaluate the trials ``trials.jsonl`` does
not hold yet (in parallel on Ray when ``workers > 1``), observe every reward in trial order. A resumed
search loads the state, proposes the same batch again (the strategy is deterministic given its state;
a proposal that disagrees with the log is an error), evaluates only what is missing and goes on, so no
trial is lost or repeated, and with a fixed seed it ends where an uninterrupted run ends. A
weight-sharing strategy first trains its shared weights, one epoch at a time, resuming from
``supernet.pt``; its trials are then scored with those weights (``evaluator()``) in this process.

Every file goes through ``vision_backbones.io``, so a kill leaves each file old or new, never half.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vision_backbones.io import atomic_write_bytes, jsonable, load_torch_file, read_jsonl, write_json, write_jsonl
from vision_backbones.search.spaces import SearchSpace, get_space, to_json
from vision_backbones.search.strategies import STRATEGIES, WEIGHT_SHARING, make_strategy
from vision_backbones.search.strategy import Evaluator, SharedWeights, Strategy
from vision_backbones.validate import check_choice, check_int

CONFIG_FILE, STATE_FILE, TRIALS_FILE, WEIGHTS_FILE = "search.json", "state.pt", "trials.jsonl", "supernet.pt"


@dataclass(frozen=True)
class SearchConfig:
    """Everything that decides a search's trials (recorded in ``search.json``)."""

    space: str
    strategy: str
    trials: int
    seed: int = 0
    workers: int = 1
    strategy_options: dict[str, Any] = field(default_factory=dict)
    objective: dict[str, Any] = field(default_factory=dict)  # ``objectives.Objective`` fields
    task: dict[str, Any] = field(default_factory=dict)  # ``evaluate.ProxyTask`` fields
    # ``{"proxy": "synflow", "candidates": 100, "keep": 10}``: a zero-cost pre-screen (``search.prescreen``)
    prescreen: dict[str, Any] = field(default_factory=dict)
    # ``{"kind": "asha", "min_epochs": 1, "reduction_factor": 3}``: trials cut short by a pruner (``search.fidelity``)
    fidelity: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_space(self.space)  # unknown space: one line naming the choices
        check_choice("strategy", self.strategy, STRATEGIES)
        check_int("trials", self.trials, min=1)
        if self.prescreen:
            unknown = sorted(set(self.prescreen) - {"proxy", "candidates", "keep"})
            if unknown or "proxy" not in self.prescreen:
                raise ValueError(f"prescreen {self.prescreen!r}: expected 'proxy' and optionally 'candidates', 'keep'")
            keep = check_int("prescreen keep", self.prescreen.get("keep", 10), min=1)
            check_int("prescreen candidates", self.prescreen.get("candidates", 100), min=keep)
            if keep > self.trials:
                raise ValueError(
                    f"the pre-screen evaluates its best {keep} first, but trials={self.trials}; "
                    f"expected trials >= {keep} (or a smaller --prescreen-keep)"
                )
        if self.fidelity:
            from vision_backbones.search.fidelity import FIDELITY_FIELDS, Fidelity

            unknown = sorted(set(self.fidelity) - set(FIDELITY_FIELDS))
            if unknown:
                raise ValueError(
                    f"fidelity {self.fidelity!r}: unknown {unknown}; expected some of {', '.join(FIDELITY_FIELDS)}"
                )
            rungs = Fidelity(**self.fidelity)
            epochs = self.task.get("epochs", 2)
            if self.strategy in WEIGHT_SHARING:
                raise ValueError(
                    f"strategy {self.strategy!r} trains no trial; expected no fidelity (--fidelity) with it"
                )
            if isinstance(epochs, int) and rungs.min_epochs >= epochs:
                raise ValueError(
                    f"fidelity min_epochs {rungs.min_epochs} leaves no rung below the task's {epochs} epochs; "
                    f"expected min_epochs < epochs (more --epochs, or a smaller --min-epochs)"
                )
        check_int("seed", self.seed, min=0)
        check_int("workers", self.workers, min=1)
        if self.strategy in WEIGHT_SHARING and self.workers > 1:
            raise ValueError(
                f"strategy {self.strategy!r} scores trials with one supernet in this process; expected workers=1, got {self.workers}"
            )

    def identity(self) -> dict[str, Any]:
        """What must match for a folder to be resumed (the trial budget may grow)."""
        record = dataclasses.asdict(self)
        record.pop("trials")
        for optional in ("prescreen", "fidelity"):
            if not record[optional]:
                record.pop(optional)  # folders written before these options existed still resume
        record["space_definition"] = get_space(self.space).describe()
        identity: dict[str, Any] = jsonable(record)  # tuples as lists, as the file holds them
        return identity


class ProxyEvaluator:
    """A trial's result from ``evaluate.evaluate_architecture`` on the proxy task (picklable, for Ray).

    ``fidelity``: ``fidelity.Fidelity`` fields (storage and study included); each trial then reports its
    validation accuracy per epoch to that study's pruner and may stop early.
    """

    def __init__(self, base: str, task: Mapping[str, Any], fidelity: Mapping[str, Any] | None = None) -> None:
        self.base = base
        self.task = dict(task)
        self.fidelity = dict(fidelity or {})

    def __call__(self, trial: Mapping[str, Any]) -> dict[str, Any]:
        from vision_backbones.search.evaluate import ProxyTask, evaluate_architecture
        from vision_backbones.search.fidelity import Fidelity, RungReporter
        from vision_backbones.search.spaces import from_json

        task = ProxyTask(**self.task)
        rungs = RungReporter(Fidelity(**self.fidelity), int(trial["number"]), task.epochs) if self.fidelity else None
        result = evaluate_architecture(
            self.base, from_json(trial["architecture"]), task, seed=trial["seed"], rungs=rungs
        )
        result.pop("train_loss", None)
        return result


# ---------------------------------------------------------------------------------- executors


def _numbered(evaluator: Evaluator, trial: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    return int(trial["number"]), evaluator(trial)


class LocalExecutor:
    """Trials one after the other in this process."""

    def map(self, evaluator: Evaluator, trials: Sequence[Mapping[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
        for trial in trials:
            yield _numbered(evaluator, trial)

    def close(self) -> None:
        pass


class RayExecutor:
    """Trials as Ray tasks (one CPU each), yielded as they finish; a local Ray unless ``address`` is given.

    A trial whose worker process or node dies (SIGKILL, OOM, a lost machine) runs again elsewhere, up to
    ``MAX_RETRIES`` times (Ray's ``max_retries``, set here rather than left to ``RAY_TASK_MAX_RETRIES``;
    ``tests/test_cluster.py`` kills a node mid-trial). An exception the evaluator raises is not retried
    (the same seed raises it again): it ends the search, and rerunning the command resumes it.
    """

    MAX_RETRIES = 3

    def __init__(self, workers: int, address: str | None = None) -> None:
        import ray

        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                kwargs["num_cpus"] = workers
            ray.init(address=address, **kwargs)
        self.task = ray.remote(num_cpus=1, max_retries=self.MAX_RETRIES, retry_exceptions=False)(_numbered)

    def map(self, evaluator: Evaluator, trials: Sequence[Mapping[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
        pending = [self.task.remote(evaluator, dict(trial)) for trial in trials]
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            yield self.ray.get(done[0])

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_executor(workers: int, address: str | None = None) -> LocalExecutor | RayExecutor:
    """Ray for several workers or a cluster address; this process otherwise, or when Ray is not installed."""
    if workers == 1 and address is None:
        return LocalExecutor()
    try:
        import ray  # noqa: F401
    except ModuleNotFoundError:
        if address is not None:
            raise ValueError(
                f"--address {address!r} needs Ray; install it (pip install 'vision-backbones[search]')"
            ) from None
        print("Ray is not installed: running the trials one at a time in this process")
        return LocalExecutor()
    return RayExecutor(workers, address)


# ---------------------------------------------------------------------------------- the folder


def _check_folder(out: Path, config: SearchConfig) -> None:
    path = out / CONFIG_FILE
    identity = config.identity()
    if path.exists():
        try:
            recorded = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise ValueError(
                f"{str(path)!r} is not JSON; expected the search.json of a search folder (start over with a new --out)"
            ) from None
        if not isinstance(recorded, dict):
            raise ValueError(
                f"{str(path)!r} holds a JSON {type(recorded).__name__}, not a search's settings; start over with a new --out"
            )
        recorded_identity = {k: v for k, v in recorded.items() if k != "trials"}
        if recorded_identity != identity:
            differing = sorted(
                k for k in set(identity) | set(recorded_identity) if identity.get(k) != recorded_identity.get(k)
            )
            raise ValueError(
                f"--out {str(out)!r} holds a different search (differs in {', '.join(differing)}); "
                "expected the same settings to resume, or a new folder"
            )
    elif any((out / name).exists() for name in (TRIALS_FILE, STATE_FILE, WEIGHTS_FILE)):
        raise ValueError(f"--out {str(out)!r} holds search files but no {CONFIG_FILE}; expected an empty or new folder")
    write_json(path, {**identity, "trials": config.trials})


def _save(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _save_state(path: Path, strategy_state: dict[str, Any], next_trial: int) -> None:
    _save(path, {"strategy": strategy_state, "next_trial": next_trial})


def train_shared_weights(strategy: SharedWeights, path: Path, *, progress: bool = True) -> None:
    """Train a weight-sharing strategy's weights to the end, resuming from ``path`` and saving there after each epoch."""
    if path.exists():
        fix = "start over with a new --out (the trials in this folder were scored with these weights)"
        weights = load_torch_file(path, fix=fix)
        try:
            strategy.load_weights_state_dict(weights)
        except (KeyError, TypeError, RuntimeError, ValueError) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
            raise ValueError(f"{str(path)!r} does not hold this search's shared weights ({reason}); {fix}") from None
    while not strategy.training_done():
        loss = strategy.train_epoch()
        _save(path, strategy.weights_state_dict())
        if progress:
            print(f"shared weights: epoch done, loss {loss:.4f}", flush=True)


TRIALS_FIX = "delete that line (the trial is evaluated again on resume) or start over with a new --out"


def _read_trials(path: Path) -> list[dict[str, Any]]:
    """The rows of ``trials.jsonl``, each checked: a corrupt line names the file, the line and the fix."""
    rows = read_jsonl(path, fix=TRIALS_FIX)
    for line, row in enumerate(rows, 1):
        problem = None
        if not isinstance(row, dict):
            problem = f"is a JSON {type(row).__name__}, not a trial object"
        elif not isinstance(row.get("number"), int) or isinstance(row.get("number"), bool) or row["number"] < 0:
            problem = f"has number={row.get('number')!r}; expected an int >= 0"
        elif not isinstance(row.get("indices"), list):
            problem = f"has indices={row.get('indices')!r}; expected a list of choice indices"
        elif not isinstance(row.get("result"), dict):
            problem = f"has result={row.get('result')!r}; expected an object"
        elif not isinstance(row.get("reward"), (int, float)) or isinstance(row.get("reward"), bool):
            problem = f"has reward={row.get('reward')!r}; expected a number"
        if problem is not None:  # non-empty lines are counted: the n-th trial row
            raise ValueError(f"{str(path)!r} trial row {line} {problem}; {TRIALS_FIX}")
    return rows


def load_trials(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The trials of a search folder, in trial order; a folder without ``trials.jsonl`` is one ``ValueError``."""
    path = Path(out) / TRIALS_FILE
    if not Path(out).is_dir():
        raise ValueError(f"{str(out)!r} is not a folder; expected the --out folder of a search")
    if not path.is_file():
        raise ValueError(
            f"{str(path)!r} does not exist; expected the --out folder of a search that ran at least one trial"
        )
    return sorted(_read_trials(path), key=lambda row: row["number"])


def _reward(objective: Any, result: Mapping[str, Any]) -> float:
    """The objective's score as a fraction (accuracy 0-1): the scale REINFORCE's baseline expects."""
    return float(objective.score(result)) / 100.0


def _study_log(storage: str, config: SearchConfig, space: SearchSpace, strategy: Strategy, progress: bool) -> Any:
    """The search's ``study_log.StudyLog`` (NSGA-II's objectives as the study's values)."""
    from vision_backbones.search.study_log import search_log, shown

    objectives = getattr(strategy, "objectives", None)
    log = search_log(storage, config, space, objectives=objectives, directions=getattr(strategy, "directions", None))
    if progress:
        print(f"study {log.study.study_name!r}; watch it with: optuna-dashboard {shown(storage)}", flush=True)
    return log


def run_search(
    config: SearchConfig,
    out: str | os.PathLike[str],
    *,
    evaluator: Evaluator | None = None,
    address: str | None = None,
    progress: bool = True,
    storage: str | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) ``config`` in ``out``; returns every trial. ``evaluator`` defaults to the proxy task.

    ``storage``: an Optuna storage URL (``study_log.default_storage(out)``: ``OUT/study.db``) that also
    receives every trial, for a live view; ``None``: none. A bad URL is a ``ValueError`` before any trial.
    """
    from vision_backbones.search.objectives import Objective

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; expected a folder")
    objective = Objective(**config.objective)
    space: SearchSpace = get_space(config.space)
    from vision_backbones.search.evaluate import ProxyTask

    strategy: Strategy = make_strategy(
        config.strategy, space, seed=config.seed, task=ProxyTask(**config.task), **config.strategy_options
    )
    if config.prescreen:
        from vision_backbones.search.prescreen import Prescreened, proxy_scorer

        options = dict(config.prescreen)
        scorer = proxy_scorer(space, ProxyTask(**config.task), options.pop("proxy"), seed=config.seed)
        strategy = Prescreened(strategy, scorer, seed=config.seed, **options)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        _check_folder(out, config)
        trials = {row["number"]: row for row in _read_trials(out / TRIALS_FILE)}
        study = None if storage is None else _study_log(storage, config, space, strategy, progress)
    except BaseException:
        if created:  # a refused search leaves no folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    if study is not None:
        study.sync(trials.values())  # a resumed search: what the study missed before the kill
    if isinstance(strategy, SharedWeights):
        train_shared_weights(strategy, out / WEIGHTS_FILE, progress=progress)
        evaluator = evaluator or strategy.evaluator()
    if evaluator is None and config.fidelity:
        from vision_backbones.search.fidelity import fidelity_for_search

        rungs = fidelity_for_search(config, out, storage)
        evaluator = ProxyEvaluator(space.base, config.task, rungs.to_dict())
    evaluator = evaluator or ProxyEvaluator(space.base, config.task)
    state_path = out / STATE_FILE
    next_trial = 0
    if state_path.exists():
        # the strategy replays its logged trials without evaluating them again: deleting state.pt loses nothing
        fix = "delete it and rerun (the strategy replays the trials in trials.jsonl), or start over with a new --out"
        state = load_torch_file(state_path, fix=fix)
        if not isinstance(state, dict) or not isinstance(state.get("next_trial"), int) or "strategy" not in state:
            raise ValueError(f"{str(state_path)!r} is not a search state (no 'strategy' and 'next_trial'); {fix}")
        try:
            strategy.load_state_dict(state["strategy"])
        except (KeyError, TypeError, RuntimeError, ValueError, IndexError) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
            raise ValueError(f"{str(state_path)!r} does not hold this strategy's state ({reason}); {fix}") from None
        next_trial = int(state["next_trial"])
    executor = make_executor(config.workers, address)
    try:
        with _progress(progress, config, len(trials)) as advance:
            while next_trial < config.trials:
                _save_state(state_path, strategy.state_dict(), next_trial)
                numbers = range(next_trial, min(next_trial + config.workers, config.trials))
                proposals = {n: strategy.propose() for n in numbers}
                for n, indices in proposals.items():
                    if n in trials and list(trials[n]["indices"]) != list(indices):
                        raise RuntimeError(
                            f"trial {n}: the resumed strategy proposed {list(indices)}, the log holds {trials[n]['indices']}; "
                            "the strategy is not deterministic"
                        )
                todo = [
                    {
                        "number": n,
                        "indices": list(proposals[n]),
                        "architecture": to_json(space.architecture(proposals[n])),
                        "seed": config.seed,
                    }
                    for n in numbers
                    if n not in trials
                ]
                by_number = {t["number"]: t for t in todo}
                for number, result in executor.map(evaluator, todo):
                    trials[number] = {**by_number[number], "result": result, "reward": _reward(objective, result)}
                    write_jsonl(out / TRIALS_FILE, [trials[k] for k in sorted(trials)])
                    if study is not None:  # after the file: a kill in between is caught up on resume
                        study.sync(trials.values())
                    advance(trials[number])
                observe_result = getattr(strategy, "observe_result", None)  # multi-objective strategies read the result
                for n in numbers:
                    if observe_result is not None:
                        observe_result(proposals[n], trials[n]["result"], trials[n]["reward"])
                    else:
                        strategy.observe(proposals[n], trials[n]["reward"])
                next_trial = numbers.stop
            _save_state(state_path, strategy.state_dict(), next_trial)
    finally:
        executor.close()
    return [trials[k] for k in sorted(trials) if k < config.trials]


class _NoProgress:
    def __enter__(self) -> Callable[[Mapping[str, Any]], None]:
        return lambda trial: None

    def __exit__(self, *exc: object) -> None:
        return None


class _RichProgress:
    def __init__(self, config: SearchConfig, done: int) -> None:
        from vision_backbones.progress import progress_bar

        self.progress = progress_bar("{task.fields[best]}", transient=False, remaining=True)
        self.task = self.progress.add_task(
            f"search {config.space} / {config.strategy}",
            total=config.trials,
            completed=min(done, config.trials),
            best="",
        )
        self.best: float | None = None

    def __enter__(self) -> Callable[[Mapping[str, Any]], None]:
        self.progress.__enter__()
        return self.advance

    def advance(self, trial: Mapping[str, Any]) -> None:
        self.best = trial["reward"] if self.best is None else max(self.best, trial["reward"])
        self.progress.update(self.task, advance=1, best=f"best reward {self.best:.4f}")

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)


def _progress(enabled: bool, config: SearchConfig, done: int) -> _NoProgress | _RichProgress:
    return _RichProgress(config, done) if enabled else _NoProgress()
