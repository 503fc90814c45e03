"""Zero-cost proxies, the pre-screen in front of a strategy, and the multi-seed table's own checks."""

from __future__ import annotations

import math

import pytest
import torch

from vision_backbones.search.prescreen import Prescreened
from vision_backbones.search.proxies import PROXIES, check_proxies, rank_ensemble, score_member
from vision_backbones.search.spaces import get_space, to_json
from vision_backbones.search.strategies import make_strategy
from vision_backbones.search.table import TableEvaluator, _summarise, table_quality


def _batch(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(size, 1, 16, 16, generator=generator), torch.arange(size) % 10


@pytest.mark.parametrize("name", list(PROXIES))
def test_every_proxy_gives_a_finite_score_that_depends_on_the_architecture(name: str) -> None:
    images, labels = _batch()
    small = score_member("nasbench_mb", {"ops": ("skip",) * 4}, images, labels, [name])[name]
    large = score_member("nasbench_mb", {"ops": ("k5_e4",) * 4}, images, labels, [name])[name]
    assert math.isfinite(small) and math.isfinite(large)
    assert small != large, f"{name} scores two different networks the same"


def test_size_proxies_prefer_the_larger_network() -> None:
    images, labels = _batch()
    names = ["params", "flops", "synflow"]
    small = score_member("nasbench_mb", {"ops": ("skip",) * 4}, images, labels, names)
    large = score_member("nasbench_mb", {"ops": ("k5_e4",) * 4}, images, labels, names)
    assert all(large[n] > small[n] for n in names), (small, large)


def test_scoring_leaves_the_global_thread_count_alone() -> None:
    before = torch.get_num_threads()
    score_member("nasbench_mb", {}, *_batch(), ["grad_norm"], threads=1)
    assert torch.get_num_threads() == before


def test_rank_ensemble_is_the_mean_rank() -> None:
    scores = [{"synflow": 1.0, "zico": 30.0}, {"synflow": 2.0, "zico": 10.0}, {"synflow": 3.0, "zico": 20.0}]
    assert rank_ensemble(scores, ["synflow", "zico"]) == [2.0, 1.5, 2.5]


def test_unknown_proxy_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"unknown proxy 'sinflow'; expected one of params"):
        check_proxies(["sinflow"])


def _keyed_scorer(space):
    # a made-up proxy: prefers members with large indices
    return lambda indices: float(sum(indices))


def test_prescreen_evaluates_the_best_scored_candidates_first_then_the_strategy() -> None:
    space = get_space("nasbench_mb")
    scorer = _keyed_scorer(space)
    strategy = Prescreened(make_strategy("evolution", space, seed=3), scorer, candidates=50, keep=5, seed=1)
    first = [strategy.propose() for _ in range(5)]
    assert [scorer(m) for m in first] == sorted((scorer(m) for m in first), reverse=True)
    assert len(set(first)) == 5
    # the five are the best five of the 50 screened candidates: nothing screened scores above the fifth
    for member in first:
        strategy.observe(member, scorer(member) / 100)
    evolution = strategy.strategy
    assert len(evolution.population) == 5 and evolution.proposed == 5  # adopted as its first population
    # evolution's population is 10: five random proposals fill it, then children of the screened members
    for _ in range(5):
        member = strategy.propose()
        strategy.observe(member, 0.0)
    assert {m for m, _ in evolution.population} >= set(first)  # none aged out yet
    child = strategy.propose()  # a one-decision mutation of a population member: evolution has begun
    assert any(sum(a != b for a, b in zip(child, m)) == 1 for m, _ in evolution.population)


def test_prescreen_warm_starts_bananas_without_proposing_the_screened_members_again() -> None:
    space = get_space("nasbench_mb")
    scorer = _keyed_scorer(space)
    strategy = Prescreened(make_strategy("bananas", space, seed=0, num_init=3), scorer, candidates=30, keep=3)
    first = [strategy.propose() for _ in range(3)]
    for member in first:
        strategy.observe(member, scorer(member) / 16)
    later = []
    for _ in range(4):
        later.append(strategy.propose())
        strategy.observe(later[-1], scorer(later[-1]) / 16)
    assert not set(later) & set(first)
    assert len(strategy.strategy.visited) == 7  # the screened three count as its initial members


def test_prescreen_resumes_to_the_same_proposals(tmp_path) -> None:
    space = get_space("nasbench_mb")

    def fresh(seed: int) -> Prescreened:
        return Prescreened(
            make_strategy("evolution", space, seed=seed, population_size=4), _keyed_scorer(space), keep=3, seed=seed
        )

    def reward(member) -> float:
        return (hash(member) % 97) / 97

    straight, resumed = fresh(7), None
    expected = []
    for step in range(12):
        if step == 2:  # mid-screen, as the runner saves before a batch
            torch.save(straight.state_dict(), tmp_path / "state.pt")
        member = straight.propose()
        straight.observe(member, reward(member))
        expected.append(member)
    resumed = fresh(99)  # another seed: everything must come from the state
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    replay = expected[:2]
    for _ in range(10):
        member = resumed.propose()
        resumed.observe(member, reward(member))
        replay.append(member)
    assert replay == expected


@pytest.mark.parametrize("name", ["local", "tpe", "reinforce"])
def test_prescreen_refuses_strategies_that_learn_only_from_their_own_proposals(name: str) -> None:
    space = get_space("nasbench_resnet")
    with pytest.raises(ValueError, match="cannot warm-start"):
        Prescreened(make_strategy(name, space), lambda m: 0.0)


def _rows(space, seeds=(0, 1)):
    rows = []
    for number, indices in enumerate(space.all_indices()):
        row = {
            "key": space.key(indices),
            "indices": list(indices),
            "architecture": to_json(space.architecture(indices)),
            "runs": {
                str(s): {
                    "val_acc1": 50.0 + number % 40 + s,
                    "test_acc1": 50.0 + number % 40 - s,
                    "train_seconds": 1.0,
                    "params": number,
                    "flops": number,
                    "deploy_params": number,
                    "deploy_flops": number,
                }
                for s in seeds
            },
        }
        _summarise(row, seeds)
        rows.append(row)
    return rows


def test_table_quality_reports_rank_agreement_and_seed_spread() -> None:
    space = get_space("nasbench_resnet")
    quality = table_quality(_rows(space))
    assert quality["members"] == 256
    assert quality["spearman_val_test"] == pytest.approx(1.0)
    assert quality["test_range"] == pytest.approx(39.0)
    assert quality["seed_std_median"] == pytest.approx(0.5)  # population std of two seeds 1 apart
    assert quality["spearman_seed_to_seed"] == pytest.approx(1.0)


def test_a_table_of_another_space_names_the_first_mismatching_member() -> None:
    space = get_space("nasbench_resnet")
    rows = _rows(space)
    rows[5]["architecture"]["depths"] = [9, 9, 9, 9]
    with pytest.raises(
        ValueError, match=rf"table member {rows[5]['key']}: architecture .* expected a table of this space"
    ):
        TableEvaluator(space, rows)
    with pytest.raises(ValueError, match="lacks 1 of 256 members"):
        TableEvaluator(space, _rows(space)[1:])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--prescreen", "sinflow"], "unknown proxy 'sinflow'"),
        (["--prescreen", "ensemble"], "--prescreen ensemble ranks a population"),
        (["--prescreen", "synflow", "--strategy", "tpe"], "--prescreen cannot warm-start --strategy tpe"),
        (["--prescreen", "synflow", "--prescreen-keep", "5"], "expected trials >= 5"),
        (["--prescreen", "synflow", "--prescreen-keep", "30", "--prescreen-candidates", "20"], "prescreen candidates"),
    ],
)
def test_bad_prescreen_is_one_line_and_writes_nothing(tmp_path, capsys, extra, message) -> None:
    from vision_backbones.cli import main

    out = tmp_path / "out"
    arguments = ["search", "--space", "nasbench_mb", "--strategy", "evolution", "--trials", "4", "--out", str(out)]
    if "--strategy" in extra:
        arguments[arguments.index("evolution")] = extra[extra.index("--strategy") + 1]
        extra = [x for i, x in enumerate(extra) if x != "--strategy" and (i == 0 or extra[i - 1] != "--strategy")]
    if "30" in extra:
        arguments[arguments.index("4")] = "40"
    code = main([*arguments, *extra])
    error = capsys.readouterr().err
    assert code == 2 and message in error and error.count("\n") == 1, error
    assert not out.exists()
