"""Local search, BANANAS, Optuna's TPE and NSGA-II: exact resume, better than random, no repeats, one-line errors."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from vision_backbones.search.optuna_strategies import OptunaNSGA2
from vision_backbones.search.runner import SearchConfig, load_trials, run_search
from vision_backbones.search.spaces import SPACES, Decision, SearchSpace, get_space
from vision_backbones.search.strategies import make_strategy
from vision_backbones.search.strategy import Strategy

NEW = ("local", "bananas", "tpe", "nsga2")
SMALL_SPACES = [name for name in ("nasbench_resnet", "nasbench_mb") if name in SPACES]


class Table:
    """A fixed random accuracy (percent) and latency (ms) per member, from a seeded generator."""

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.results = {
            m: {"val_acc1": 100 * rng.random(), "latency_ms": 1 + 9 * rng.random()} for m in space.all_indices()
        }

    def result(self, member: tuple[int, ...]) -> dict[str, float]:
        return self.results[tuple(member)]


class Target:
    """The easy landscape: accuracy is the share of decisions equal to a hidden member's; latency is flat."""

    def __init__(self, space: SearchSpace, seed: int) -> None:
        self.target = space.random_indices(random.Random(1000 + seed))

    def result(self, member: tuple[int, ...]) -> dict[str, float]:
        share = sum(a == b for a, b in zip(member, self.target)) / len(self.target)
        return {"val_acc1": 100 * share, "latency_ms": 1.0}


def _observe(strategy: Strategy, member: tuple[int, ...], landscape: Table | Target) -> None:
    """What the runner does: the result to a multi-objective strategy, the reward (0-1) to the others."""
    result = landscape.result(member)
    reward = result["val_acc1"] / 100
    if hasattr(strategy, "observe_result"):
        strategy.observe_result(member, result, reward)
    else:
        strategy.observe(member, reward)


def _run(strategy: Strategy, landscape: Table | Target, batches: int, batch: int = 3) -> list[tuple[int, ...]]:
    """``batches`` runner batches: ``batch`` proposals, then their observations in proposal order."""
    proposed = []
    for _ in range(batches):
        members = [strategy.propose() for _ in range(batch)]
        for member in members:
            _observe(strategy, member, landscape)
        proposed += members
    return proposed


def _reloaded(strategy: Strategy, name: str, options: dict[str, Any], tmp_path) -> Strategy:
    """A fresh strategy (another seed: the state must override it) loaded from ``strategy``'s saved state."""
    path = tmp_path / f"{name}.pt"
    torch.save(strategy.state_dict(), path)  # what the runner writes
    resumed = make_strategy(name, strategy.space, seed=99, **options)  # the options come from search.json
    resumed.load_state_dict(torch.load(path, weights_only=True))
    return resumed


# (strategy, options, batches of 3, the batch boundaries where the state is saved and reloaded): every
# boundary where that is cheap, so each field of the state is needed somewhere (BANANAS refits its MLPs
# after every reload; ``refit_every=4`` makes the fit count part of the state).
RESUME_CASES = [
    ("local", {}, 12, range(1, 12), SMALL_SPACES),
    ("local", {"num_init": 2, "full_neighbourhood": False}, 12, range(1, 12), SMALL_SPACES),
    ("bananas", {}, 8, (5,), SMALL_SPACES),
    # batch 5 keeps the fit of batch 4 (9 observations): the fit count is part of the state (one space:
    # each BANANAS case takes seconds)
    ("bananas", {"refit_every": 4}, 8, (4,), SMALL_SPACES[:1]),
    ("tpe", {}, 12, (1, 4, 7, 10), SMALL_SPACES),
    ("nsga2", {}, 12, (1, 3, 4, 7, 10), SMALL_SPACES),
]


@pytest.mark.parametrize(
    ("name", "options", "batches", "saves", "space_name"),
    [
        pytest.param(
            name, options, batches, saves, space, id="-".join([name, *(f"{k}={v}" for k, v in options.items()), space])
        )
        for name, options, batches, saves, spaces in RESUME_CASES
        for space in spaces
    ],
)
def test_resume_proposes_what_the_uninterrupted_run_proposes(
    tmp_path, name: str, options: dict[str, Any], batches: int, saves: Sequence[int], space_name: str
) -> None:
    space = get_space(space_name)
    table = Table(space)
    reference = _run(make_strategy(name, space, seed=3, **options), table, batches)
    strategy = make_strategy(name, space, seed=3, **options)
    for done in range(batches):
        if done in saves:
            # saved before a batch (as the runner does), killed anywhere in it: the batch is proposed again
            resumed = _reloaded(strategy, name, options, tmp_path)
            assert _run(resumed, table, batches - done) == reference[3 * done :], done
            # saved in the middle of a batch: one proposal made and not observed yet
            killed = _reloaded(strategy, name, options, tmp_path)
            first = killed.propose()
            in_the_batch = _reloaded(killed, name, options, tmp_path)
            rest = [in_the_batch.propose(), in_the_batch.propose()]
            assert [first, *rest] == reference[3 * done : 3 * done + 3], done
            for member in [first, *rest]:
                _observe(in_the_batch, member, table)
            assert _run(in_the_batch, table, batches - done - 1) == reference[3 * done + 3 :], done
        assert _run(strategy, table, 1) == reference[3 * done : 3 * done + 3]


def _best_found(name: str, space: SearchSpace, seed: int, queries: int = 60) -> float:
    landscape = Target(space, seed)
    proposed = _run(make_strategy(name, space, seed=seed), landscape, batches=queries // 3)
    return max(landscape.result(m)["val_acc1"] for m in proposed)


@pytest.mark.parametrize("name", NEW)
def test_beats_random_search_on_an_easy_landscape(name: str) -> None:
    seeds = 2 if name == "bananas" else 3  # BANANAS refits five MLPs after every batch (about 0.1 s)
    for space_name in SMALL_SPACES:
        space = get_space(space_name)
        ours = sum(_best_found(name, space, seed) for seed in range(seeds)) / seeds
        baseline = sum(_best_found("random", space, seed) for seed in range(seeds)) / seeds
        assert ours > baseline, (space_name, ours, baseline)


@dataclass(frozen=True)
class TinySpace(SearchSpace):
    """18 members, small enough to exhaust (no model behind it: strategies only see indices)."""

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return (Decision("a", "op", (0, 1, 2)), Decision("b", "op", (0, 1, 2)), Decision("c", "op", (0, 1)))


@pytest.mark.parametrize(
    ("name", "options"),
    [("local", {}), ("local", {"full_neighbourhood": False}), ("bananas", {}), ("bananas", {"acquisition": "ucb"})],
)
def test_never_proposes_an_evaluated_member_while_others_are_left(name: str, options: dict[str, Any]) -> None:
    space = TinySpace("tiny", "none")
    proposed = _run(make_strategy(name, space, seed=0, **options), Table(space, seed=1), batches=8)  # 24 > 18
    assert len(set(proposed[: space.size])) == space.size
    assert all(len(member) == 3 for member in proposed[space.size :])  # exhausted: it still proposes
    if name == "local":  # and on a real space, through several restarts
        resnet = get_space("nasbench_resnet")
        proposed = _run(make_strategy(name, resnet, seed=0, **options), Table(resnet), batches=40)
        assert len(set(proposed)) == len(proposed)


def _neighbourhood_of(member: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The one-decision neighbours of a member of a space of binary decisions."""
    return [tuple(1 - c if i == position else c for i, c in enumerate(member)) for position in range(len(member))]


def test_local_search_climbs_to_the_best_neighbour() -> None:
    space = get_space("nasbench_resnet")
    table = Table(space, seed=2)
    strategy = make_strategy("local", space, seed=0, num_init=1)
    start = strategy.propose()
    _observe(strategy, start, table)
    neighbourhood = [strategy.propose() for _ in range(8)]  # the whole neighbourhood before any move
    assert sorted(neighbourhood) == sorted(_neighbourhood_of(start))
    for member in neighbourhood:
        _observe(strategy, member, table)
    best = max(neighbourhood, key=lambda m: table.result(m)["val_acc1"])
    assert table.result(best)["val_acc1"] > table.result(start)["val_acc1"]  # (this table: start is no optimum)
    following = [strategy.propose() for _ in range(7)]  # best improvement: the best neighbour's neighbourhood
    assert sorted(following) == sorted(set(_neighbourhood_of(best)) - {start})


def test_nsga2_learns_from_accuracy_and_latency(monkeypatch, tmp_path, capsys) -> None:
    optuna = pytest.importorskip("optuna")
    verbosity = optuna.logging.get_verbosity()
    space = get_space("nasbench_resnet")
    strategy = OptunaNSGA2(space, seed=0, population_size=4)
    proposed = _run(strategy, Table(space), batches=4)
    assert optuna.logging.get_verbosity() == verbosity and capsys.readouterr().err == ""  # quiet, and restored
    assert len(proposed) == 12 and all(len(m) == 8 for m in proposed)
    assert [t.values for t in strategy.study.trials] == [
        [Table(space).result(m)["val_acc1"], Table(space).result(m)["latency_ms"]] for m in proposed
    ]
    with pytest.raises(ValueError, match="needs 'latency_ms'") as error:
        strategy.observe(strategy.propose(), 0.5)  # a reward alone has no latency
    assert "\n" not in str(error.value)
    single = OptunaNSGA2(space, seed=0, objectives=("val_acc1",), directions=("maximize",))
    single.observe(single.propose(), 0.5)  # one objective: the reward is enough
    assert single.study.trials[0].values == [0.5]

    calls: list[dict[str, Any]] = []
    original = OptunaNSGA2.observe_result

    def recording(self, indices, result, reward) -> None:
        calls.append(dict(result))
        original(self, indices, result, reward)

    monkeypatch.setattr(OptunaNSGA2, "observe_result", recording)

    def evaluator(trial) -> dict[str, float]:  # no training: the table's accuracy and latency
        return dict(Table(space).result(tuple(trial["indices"])))

    config = SearchConfig(space="nasbench_resnet", strategy="nsga2", trials=6, strategy_options={"population_size": 2})
    rows = run_search(config, tmp_path / "search", evaluator=evaluator, progress=False)
    assert calls == [row["result"] for row in rows] and len(rows) == 6
    assert load_trials(tmp_path / "search") == rows

    def no_latency(trial) -> dict[str, float]:
        return {"val_acc1": 50.0}

    with pytest.raises(ValueError, match="needs 'latency_ms' in every trial's result"):
        run_search(config, tmp_path / "no_latency", evaluator=no_latency, progress=False)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("local", {"num_init": 0}, "num_init must be an int >= 1, got 0"),
        ("local", {"full_neighbourhood": "yes"}, "full_neighbourhood must be True or False, got 'yes'"),
        ("bananas", {"acquisition": "ei"}, "acquisition must be one of 'its', 'ucb', got 'ei'"),
        ("bananas", {"ensemble_size": 1.5}, "ensemble_size must be an int >= 2, got 1.5"),
        ("bananas", {"hidden": (32, 0)}, r"hidden must be a non-empty sequence of ints >= 1, got \[32, 0\]"),
        ("tpe", {"n_startup_trials": -1}, "n_startup_trials must be an int >= 0, got -1"),
        ("tpe", {"gamma": 0.1}, "strategy 'tpe': .*unexpected keyword argument 'gamma'"),
        ("nsga2", {"population_size": 1}, "population_size must be an int >= 2, got 1"),
        ("nsga2", {"crossover_prob": 2}, r"crossover_prob must be a finite number in \[0, 1\], got 2"),
        ("nsga2", {"objectives": ("val_acc1",)}, "directions must give one of"),
        ("nsga2", {"directions": ("up", "down")}, "directions must be one of 'maximize', 'minimize', got 'up'"),
    ],
)
def test_bad_options_are_one_line(name: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        make_strategy(name, get_space("nasbench_resnet"), **options)
    assert "\n" not in str(error.value)
