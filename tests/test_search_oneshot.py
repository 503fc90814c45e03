"""Single-path one-shot search: sub-networks are create_model's networks, paths are searched, skips are reported."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
import torch

from vision_backbones import create_model
from vision_backbones.search.evaluate import ProxyTask
from vision_backbones.search.oneshot import (
    OneShotSpace,
    StageChoice,
    Supernet,
    fair_paths,
    kendall_tau,
    path_accuracy,
    run_one_shot,
    search_paths,
    subnetwork,
    train_supernet,
)

SPACE = OneShotSpace(width_multiplier=0.25, head_channels=32, kernels=(3, 5), expansions=(3,), se_ratios=(0.0, 0.25))
# channels-last pays oneDNN's first-call setup for every distinct block: not worth it for a few steps
TASK = ProxyTask(data="digits", epochs=1, train_images=128, val_images=64, batch_size=32, bn_batches=1, channels_last=False)


def test_a_path_is_the_network_create_model_rebuilds() -> None:
    supernet = Supernet(SPACE).eval()
    path = SPACE.sample(random.Random(5))
    supernet.set_path(path)
    arch = json.loads(json.dumps(SPACE.arch(path)))  # JSON round trip
    model = create_model(SPACE.base, num_classes=10, in_channels=1, **arch).eval()
    with torch.device("meta"):  # plain SPOS: a block per operation, so the path's blocks are the network's
        plain = Supernet(SPACE, share_kernels=False)
    path_params = sum(p.numel() for block in plain.path_blocks(path) for p in block.parameters())
    assert sum(p.numel() for p in model.parameters()) == path_params
    copied = subnetwork(supernet, path).eval()
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(copied(x), supernet(x))
    assert [row[4] for row in arch["rows"]] == [choice.depth for choice in path]


def test_training_search_and_recomputed_statistics() -> None:
    supernet = Supernet(SPACE)
    losses = train_supernet(supernet, TASK, seed=0)
    assert len(losses) == 1 and losses[0] > 0
    fair = fair_paths(SPACE, random.Random(0))
    for stage in range(len(SPACE.rows)):  # every stage runs every operation exactly once
        assert sorted(tuple(path[stage][:3]) for path in fair) == sorted(SPACE.operations())
    assert train_supernet(Supernet(SPACE), replace(TASK, train_images=64), sampling="fair")[0] > 0
    with pytest.raises(ValueError, match="sampling must be one of"):
        train_supernet(supernet, TASK, sampling="greedy")
    first = SPACE.sample(random.Random(1))
    before = path_accuracy(supernet, first, TASK)
    path_accuracy(supernet, SPACE.sample(random.Random(2)), TASK)  # another path's statistics in between
    assert path_accuracy(supernet, first, TASK) == before  # each path recomputes its own
    found = search_paths(supernet, TASK, strategy="evolution", budget=3, population=2, sample_size=2, seed=0)
    assert len({score.path for score in found}) == 3 and all(0 <= s.val_acc1 <= 100 for s in found)
    shallow = search_paths(supernet, TASK, strategy="random", budget=1, seed=1,
                           constraint=lambda path: all(c.depth == SPACE.depths(i)[0] for i, c in enumerate(path)))
    assert all(SPACE.skip_share(score.path) == 1.0 for score in shallow)


def test_run_one_shot_returns_an_architecture_create_model_builds() -> None:
    result, supernet = run_one_shot(SPACE, TASK, supernet_epochs=1, strategy="random", budget=2, seed=0)
    assert len(result.history) == 2 and result.supernet_val_acc1 == max(s.val_acc1 for s in result.history)
    assert result.arch == SPACE.arch(result.path) and 0 <= result.skip_share <= 1
    model = create_model(SPACE.base, num_classes=10, in_channels=1, **json.loads(json.dumps(result.arch)))
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in subnetwork(supernet, result.path).parameters())


def test_skip_shares_and_bad_input() -> None:
    deepest = tuple(StageChoice(3, 3, 0.0, SPACE.max_depth(i)) for i in range(len(SPACE.rows)))
    assert SPACE.skip_share(deepest) == 0.0 and 0 < SPACE.uniform_skip_share() < 1
    assert SPACE.depths(1) == [2, 3, 4] and SPACE.depths(0) == [1, 2]  # repeats -1/0/+1, never below one layer
    with pytest.raises(ValueError, match="path has 1 stages; expected 7"):
        SPACE.check_path(deepest[:1])
    with pytest.raises(ValueError, match=r"operation \(7, 3, 0.0\) is not in the space"):
        SPACE.check_path((StageChoice(7, 3, 0.0, 1),) + deepest[1:])
    with pytest.raises(ValueError, match="expected a 'mnasnet' variant"):
        OneShotSpace(base="resnet18")
    with pytest.raises(ValueError, match="kernels must be a non-empty tuple"):
        OneShotSpace(kernels=())
    assert kendall_tau([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]) == pytest.approx(1.0)
    assert kendall_tau([1.0, 2.0, 3.0], [30.0, 20.0, 10.0]) == pytest.approx(-1.0)
