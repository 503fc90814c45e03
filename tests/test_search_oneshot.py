"""One-shot search: paths are create_model's networks, the supernet trains resumably, the search runs through the runner."""

from __future__ import annotations

import json
import random

import pytest
import torch

from vision_backbones import create_model
from vision_backbones.search.evaluate import ProxyTask
from vision_backbones.search.evolution import RegularizedEvolution
from vision_backbones.search.oneshot import OneShotSearch, SupernetEvaluator
from vision_backbones.search.ranking import kendall_tau
from vision_backbones.search.runner import SearchConfig, load_trials, run_search
from vision_backbones.search.spaces import SPACES, MBConvSpace, get_space
from vision_backbones.search.strategies import make_strategy
from vision_backbones.search.supernet import (
    Supernet,
    depth_choices,
    fair_paths,
    skip_share,
    stage_choices,
    subnetwork,
    uniform_skip_share,
)
from vision_backbones.search.supernet_training import SupernetTrainer, path_accuracy

SPACE = MBConvSpace(
    "tiny_oneshot",
    "mnasnet1_0",
    proxy={"width_multiplier": 0.25, "head_channels": 32, "drop_rate": 0.0},
    kernels=(3, 5),
    expansions=(3,),
    se_ratios=(0.0, 0.25),
    filter_factors=(1.0,),
)
# channels-last pays oneDNN's first-call setup for every distinct block: not worth it for a few steps
TASK = {
    "data": "digits",
    "epochs": 1,
    "train_images": 64,
    "val_images": 32,
    "batch_size": 32,
    "bn_batches": 1,
    "channels_last": False,
    "latency_image_size": 32,
    "latency_repeats": 1,
}


def test_a_path_is_the_network_create_model_rebuilds() -> None:
    supernet = Supernet(SPACE).eval()
    indices = SPACE.random_indices(random.Random(5))
    supernet.set_path(indices)
    arch = json.loads(json.dumps(SPACE.architecture(indices)))  # JSON round trip
    model = create_model(SPACE.base, num_classes=10, in_channels=1, **arch).eval()
    with torch.device("meta"):  # plain SPOS: a block per operation, so the path's blocks are the network's
        plain = Supernet(SPACE, share_kernels=False)
    path_params = sum(
        p.numel() for block in plain.path_blocks(stage_choices(SPACE, indices)) for p in block.parameters()
    )
    assert sum(p.numel() for p in model.parameters()) == path_params
    copied = subnetwork(supernet, indices).eval()
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(copied(x), supernet(x))
    assert [row["repeats"] for row in arch["rows"]] == [choice.depth for choice in stage_choices(SPACE, indices)]


def test_training_fair_paths_and_recomputed_statistics() -> None:
    task = ProxyTask(**TASK)
    supernet = Supernet(SPACE)
    trainer = SupernetTrainer(supernet, task, epochs=1, seed=0)
    assert trainer.train_epoch() > 0 and trainer.done
    operations = {(k, e, s) for k in SPACE.kernels for e in SPACE.expansions for s in SPACE.se_ratios}
    fair = [stage_choices(SPACE, path) for path in fair_paths(SPACE, random.Random(0))]
    for stage in range(len(SPACE.rows)):  # every stage runs every operation exactly once
        assert sorted(tuple(path[stage][:3]) for path in fair) == sorted(operations)
    assert SupernetTrainer(Supernet(SPACE), task, epochs=1, sampling="fair").train_epoch() > 0
    with pytest.raises(ValueError, match="sampling must be one of"):
        SupernetTrainer(supernet, task, epochs=1, sampling="greedy")
    first, second = SPACE.random_indices(random.Random(1)), SPACE.random_indices(random.Random(2))
    before = path_accuracy(supernet, first, task)
    path_accuracy(supernet, second, task)  # another path's statistics in between
    assert path_accuracy(supernet, first, task) == before  # each path recomputes its own


def _summary(rows):
    return [(r["number"], r["indices"], r["reward"], r["result"]["val_acc1"]) for r in rows]


def test_killed_oneshot_search_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(SPACES, SPACE.name, lambda: SPACE)  # a registered space, as --space names one
    config = SearchConfig(
        space=SPACE.name,
        strategy="oneshot",
        trials=6,
        seed=1,
        task=TASK,
        strategy_options={"supernet_epochs": 2, "population_size": 3, "sample_size": 2, "deployed": False},
    )
    reference = run_search(config, tmp_path / "reference", progress=False)
    assert len({tuple(r["indices"]) for r in reference}) == 6  # never the same path twice

    original_epoch = SupernetTrainer.train_epoch

    def killed_in_second_epoch(self):
        loss = original_epoch(self)
        if self.epoch == 2:
            raise KeyboardInterrupt("killed before epoch 2 was saved")
        return loss

    monkeypatch.setattr(SupernetTrainer, "train_epoch", killed_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_search(config, tmp_path / "resumed", progress=False)
    assert torch.load(tmp_path / "resumed" / "supernet.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(SupernetTrainer, "train_epoch", original_epoch)

    original_call, scored = SupernetEvaluator.__call__, []

    def killed_at_trial_4(self, trial):
        if trial["number"] == 4:
            raise KeyboardInterrupt("killed while scoring trial 4")
        scored.append(trial["number"])
        return original_call(self, trial)

    monkeypatch.setattr(SupernetEvaluator, "__call__", killed_at_trial_4)
    with pytest.raises(KeyboardInterrupt):
        run_search(config, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(SupernetEvaluator, "__call__", original_call)
    resumed = run_search(config, tmp_path / "resumed", progress=False)

    assert scored == [0, 1, 2, 3] and _summary(resumed) == _summary(reference) == _summary(
        load_trials(tmp_path / "resumed")
    )
    weights = [
        torch.load(folder / "supernet.pt", weights_only=True)["supernet"]
        for folder in (tmp_path / "reference", tmp_path / "resumed")
    ]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # the redone epoch 2 ends the same
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == [
        "search.json",
        "state.pt",
        "supernet.pt",
        "trials.jsonl",
    ]
    best = max(resumed, key=lambda t: t["reward"])
    create_model("mnasnet1_0", num_classes=10, in_channels=1, **json.loads(json.dumps(best["architecture"])))


def test_oneshot_is_regularized_evolution_over_the_supernets_paths() -> None:
    strategy = make_strategy("oneshot", get_space("mnasnet_oneshot"), seed=0, task=ProxyTask(**TASK), supernet_epochs=1)
    assert isinstance(strategy, OneShotSearch) and type(strategy.search) is RegularizedEvolution  # written once
    with pytest.raises(RuntimeError, match="trained 0 of 1 epochs"):
        strategy.propose()


def test_oneshot_never_proposes_a_path_twice() -> None:
    small = MBConvSpace(
        "small",
        "mnasnet1_0",
        proxy=SPACE.proxy,
        kernels=(3, 5),
        expansions=(3,),
        se_ratios=(0.0,),
        repeat_deltas=(0,),
        filter_factors=(1.0,),
    )  # 2 ** 7 members
    strategy = OneShotSearch(small, task=ProxyTask(**TASK), supernet_epochs=1, search="random")
    strategy.trainer.epoch = 1  # as if trained: proposing needs no weights
    assert len({strategy.propose() for _ in range(40)}) == 40  # 40 uniform draws of 128 repeat one almost surely


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: make_strategy("oneshot", get_space("nasbench_resnet")), "a supernet covers an MBConvSpace"),
        (lambda: make_strategy("oneshot", get_space("mnasnet")), "rows\\[0\\].filter_factor has 3 choices"),
        (lambda: make_strategy("oneshot", get_space("mnasnet_oneshot"), search="bayes"), "search must be one of"),
        (
            lambda: make_strategy("oneshot", get_space("mnasnet_oneshot"), population=3),
            "unexpected keyword argument 'population'",
        ),
        (lambda: SearchConfig(space="mnasnet_oneshot", strategy="oneshot", trials=2, workers=2), "expected workers=1"),
    ],
)
def test_oneshot_bad_input_is_one_line(build, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        build()
    assert "\n" not in str(error.value)


def test_skip_shares_and_kendall_tau() -> None:
    deepest = SPACE.check_indices([len(d.choices) - 1 if d.kind == "repeats" else 0 for d in SPACE.decisions])
    assert skip_share(SPACE, deepest) == 0.0 and 0 < uniform_skip_share(SPACE) < 1
    assert depth_choices(SPACE, 1) == (2, 3, 4) and depth_choices(SPACE, 0) == (
        1,
        2,
    )  # repeats -1/0/+1, never below one layer
    assert kendall_tau([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]) == pytest.approx(1.0)
    assert kendall_tau([1.0, 2.0, 3.0], [30.0, 20.0, 10.0]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="need two equal lists"):
        kendall_tau([1.0], [1.0])
