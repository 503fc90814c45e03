"""Optuna's TPE and NSGA-II samplers behind the strategy interface (the samplers are Optuna's, not rewritten).

- ``OptunaTPE`` (``--strategy tpe``): ``optuna.samplers.TPESampler``, the tree-structured Parzen
  estimator of "Algorithms for Hyper-Parameter Optimization" (Bergstra et al., NeurIPS 2011,
  https://papers.nips.cc/paper/4443-algorithms-for-hyper-parameter-optimization) as Optuna implements
  it ("Tree-Structured Parzen Estimator: Understanding Its Algorithm Components and Their Roles for
  Better Empirical Performance", Watanabe 2023, https://arxiv.org/abs/2304.11127). It maximizes the
  runner's reward. Defaults are Optuna's: ``n_startup_trials=10`` random trials, ``n_ei_candidates=24``,
  ``multivariate=True`` (Optuna 5's default for one objective), ``constant_liar=True`` (proposals not
  observed yet count as bad, so a batch spreads out).
- ``OptunaNSGA2`` (``--strategy nsga2``): ``optuna.samplers.NSGAIISampler``, "A Fast and Elitist
  Multiobjective Genetic Algorithm: NSGA-II" (Deb et al., IEEE TEC 2002,
  https://doi.org/10.1109/4235.996017), over several objectives of the trial's result:
  ``objectives=("val_acc1", "latency_ms")`` with ``directions=("maximize", "minimize")``. Defaults:
  ``population_size=10`` (Optuna's is 50; scaled down to 25-100 query budgets as
  ``evolution.RegularizedEvolution`` is), ``crossover_prob=0.9``, ``swapping_prob=0.5`` and
  ``mutation_prob=None`` (1 / number of decisions), Optuna's.

Each decision is ``trial.suggest_categorical(decision.name, [0, 1, ...])``: its choice indices are the
categories. A proposal is ``study.ask()`` on an in-memory study, an observation ``study.tell``.

Multiple objectives: the runner calls ``observe_result(indices, result, reward)`` with the trial's
result dict when a strategy has that method; ``OptunaNSGA2`` reads its objectives there and a result
without one of them is a one-line ``ValueError``. Its ``observe(indices, reward)`` treats the reward
as the first objective and knows nothing else, so with two objectives it raises that error too.

Exact resume: before each ``ask`` the sampler is created anew with the seed
``(seed * 1_000_003 + proposal number) mod 2**32``, so a proposal depends only on the study's trials
and its number. ``state_dict`` is the seed and the log of asks and tells; ``load_state_dict`` replays
the log on a new study (each replayed ask must propose what the log holds), which restores every
trial *and* what the samplers keep in the study (NSGA-II's generations and parent populations, TPE's
constant-liar parameters), including trials asked but not told yet.

Optuna's INFO logging (a line per trial) is silenced while this module calls Optuna and restored
afterwards; a stricter verbosity the caller set is kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from vision_backbones.search.local_search import Member
from vision_backbones.search.spaces import SearchSpace
from vision_backbones.search.study_log import quiet_optuna
from vision_backbones.validate import check_bool, check_choice, check_float, check_int

DIRECTIONS = ("maximize", "minimize")


def _optuna() -> Any:
    try:
        import optuna
    except ModuleNotFoundError:
        raise ValueError(
            "strategies 'tpe' and 'nsga2' need Optuna; install it (pip install 'vision-backbones[search]')"
        ) from None
    return optuna


def _quiet() -> Any:
    """``study_log.quiet_optuna``, after the one-line error when Optuna is missing."""
    _optuna()
    return quiet_optuna()


class OptunaStrategy:
    """Ask / tell on an in-memory Optuna study; subclasses give the sampler and the directions."""

    directions: tuple[str, ...] = ("maximize",)

    def __init__(self, space: SearchSpace, *, seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        self._reset()

    def sampler(self, seed: int) -> Any:
        raise NotImplementedError

    def _reset(self) -> None:
        with _quiet() as optuna:
            self.study = optuna.create_study(directions=list(self.directions), sampler=self.sampler(self.seed))
        self.asked = 0
        self.pending: dict[int, Member] = {}  # trial number -> member, asked and not told yet
        self.log: list[list[Any]] = []  # ["ask", indices] and ["tell", trial number, values], in order

    def _ask(self) -> Member:
        self.study.sampler = self.sampler((self.seed * 1_000_003 + self.asked) % 2**32)
        with _quiet():
            trial = self.study.ask()
            member = tuple(
                int(trial.suggest_categorical(d.name, list(range(len(d.choices))))) for d in self.space.decisions
            )
        self.asked += 1
        self.pending[trial.number] = member
        return member

    def _tell(self, number: int, values: Sequence[float]) -> None:
        with _quiet():
            self.study.tell(number, list(values))
        del self.pending[number]

    def propose(self) -> Member:
        member = self._ask()
        self.log.append(["ask", list(member)])
        return member

    def observe_values(self, indices: Sequence[int], values: Sequence[float]) -> None:
        """Tell the study the objective values of a proposed member (its oldest proposal not told yet)."""
        member = tuple(indices)
        number = next((n for n, m in self.pending.items() if m == member), None)
        if number is None:
            raise ValueError(
                f"member {list(member)} was not proposed or is already observed; expected a pending proposal"
            )
        self._tell(number, values)
        self.log.append(["tell", number, [float(v) for v in values]])

    def observe(self, indices: Sequence[int], reward: float) -> None:
        self.observe_values(indices, [float(reward)])

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "log": [list(entry) for entry in self.log]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self._reset()
        for entry in state["log"]:
            if entry[0] == "ask":
                member = self._ask()
                if list(member) != [int(i) for i in entry[1]]:
                    raise ValueError(f"replayed proposal {list(member)} differs from the logged {list(entry[1])}")
            else:
                self._tell(int(entry[1]), [float(v) for v in entry[2]])
            self.log.append(list(entry))


class OptunaTPE(OptunaStrategy):
    """Optuna's ``TPESampler`` maximizing the reward (see the module docstring for the defaults)."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        n_startup_trials: int = 10,
        n_ei_candidates: int = 24,
        multivariate: bool = True,
        constant_liar: bool = True,
    ) -> None:
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, min=0)
        self.n_ei_candidates = check_int("n_ei_candidates", n_ei_candidates, min=1)
        self.multivariate = check_bool("multivariate", multivariate)
        self.constant_liar = check_bool("constant_liar", constant_liar)
        super().__init__(space, seed=seed)

    def sampler(self, seed: int) -> Any:
        with _quiet() as optuna:
            return optuna.samplers.TPESampler(
                n_startup_trials=self.n_startup_trials,
                n_ei_candidates=self.n_ei_candidates,
                multivariate=self.multivariate,
                constant_liar=self.constant_liar,
                seed=seed,
            )


class OptunaNSGA2(OptunaStrategy):
    """Optuna's ``NSGAIISampler`` over ``objectives`` of the trial's result (see the module docstring)."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        objectives: Sequence[str] = ("val_acc1", "latency_ms"),
        directions: Sequence[str] = ("maximize", "minimize"),
        population_size: int = 10,
        crossover_prob: float = 0.9,
        swapping_prob: float = 0.5,
        mutation_prob: float | None = None,
    ) -> None:
        if isinstance(objectives, str) or not objectives or not all(isinstance(o, str) for o in objectives):
            raise ValueError(f"objectives must be a non-empty sequence of result keys, got {objectives!r}")
        if isinstance(directions, str) or len(directions) != len(objectives):
            raise ValueError(
                f"directions must give one of {DIRECTIONS} per objective {tuple(objectives)}, got {directions!r}"
            )
        for direction in directions:
            check_choice("directions", direction, DIRECTIONS)
        self.objectives = tuple(objectives)
        self.directions = tuple(directions)
        self.population_size = check_int("population_size", population_size, min=2)
        self.crossover_prob = check_float("crossover_prob", crossover_prob, min=0, max=1)
        self.swapping_prob = check_float("swapping_prob", swapping_prob, min=0, max=1)
        self.mutation_prob = (
            None if mutation_prob is None else check_float("mutation_prob", mutation_prob, min=0, max=1)
        )
        super().__init__(space, seed=seed)

    def sampler(self, seed: int) -> Any:
        with _quiet() as optuna:
            return optuna.samplers.NSGAIISampler(
                population_size=self.population_size,
                crossover_prob=self.crossover_prob,
                swapping_prob=self.swapping_prob,
                mutation_prob=self.mutation_prob,
                seed=seed,
            )

    def observe_result(self, indices: Sequence[int], result: Mapping[str, Any], reward: float) -> None:
        """Tell the study the trial's ``objectives`` (the runner's reward is not used)."""
        values = []
        for key in self.objectives:
            if key not in result or result[key] is None:
                raise ValueError(
                    f"strategy 'nsga2' needs {key!r} in every trial's result (objectives {list(self.objectives)}); "
                    f"got keys {sorted(result)}"
                )
            value = result[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"result[{key!r}] must be a finite number, got {value!r}")
            values.append(float(value))
        self.observe_values(indices, values)

    def observe(self, indices: Sequence[int], reward: float) -> None:
        """A reward alone: the first objective; with more objectives, the error naming the missing one."""
        self.observe_result(indices, {self.objectives[0]: float(reward)}, reward)
