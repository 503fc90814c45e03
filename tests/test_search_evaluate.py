"""Search evaluators: proxy splits, a deterministic proxy trial, latency and its lookup table, objectives."""

from __future__ import annotations

import json

import pytest
import torch

from vision_backbones import create_model
from vision_backbones.registry import build_on_meta
from vision_backbones.search.data import proxy_splits
from vision_backbones.search.evaluate import ProxyTask, evaluate_architecture
from vision_backbones.search.latency import LatencySettings, LatencyTable, measure_latency_ms, within_share
from vision_backbones.search.objectives import INFEASIBLE, Objective, mnasnet_reward

# a small MnasNet-space network: 4 strided rows after the stem, narrow, a 32-channel head
TINY_ARCH = {
    "rows": [[1, 3, 1, 16, 1], [3, 3, 2, 24, 1], [3, 5, 2, 40, 1, 0.25], [6, 3, 2, 80, 1], [6, 7, 2, 96, 1]],
    "width_multiplier": 0.25,
    "head_channels": 32,
}
TINY_TASK = ProxyTask(
    data="digits", epochs=1, train_images=256, batch_size=32, bn_batches=2, latency_image_size=32, latency_repeats=2
)


def test_splits_are_stratified_disjoint_sized_and_seeded() -> None:
    mnist = proxy_splits("mnist")
    assert mnist.sizes() == {"train": 3000, "val": 1000, "test": 1000}
    assert mnist.train[0].shape[1:] == (1, 28, 28) and mnist.train[1].dtype == torch.long
    assert torch.bincount(mnist.val[1]).tolist() == [100] * 10
    assert len(set(mnist.val[1][:50].tolist())) >= 8  # mixed order: a capped split still holds every digit
    assert abs(float(mnist.train[0].mean())) < 1e-3 and abs(float(mnist.train[0].std()) - 1) < 1e-3
    digits = proxy_splits("digits")
    assert sum(digits.sizes().values()) == 1797 and digits.image_size == 8
    flat = [tuple(x.flatten().tolist()) for x in (digits.test[0][:50])]
    train_rows = {tuple(x.flatten().tolist()) for x in digits.train[0]}
    assert sum(row in train_rows for row in flat) <= 2  # a few digits images are exact duplicates in the data
    again, other = proxy_splits("digits", seed=0), proxy_splits("digits", seed=1)
    assert torch.equal(again.val[1], digits.val[1]) and not torch.equal(other.val[0], digits.val[0])
    with pytest.raises(ValueError, match="--data 'cifar' is not mnist or digits and no such path exists"):
        proxy_splits("cifar")


def test_trial_is_deterministic_and_rebuilt_by_create_model() -> None:
    first = evaluate_architecture("mnasnet1_0", TINY_ARCH, TINY_TASK, seed=3)
    second = evaluate_architecture("mnasnet1_0", TINY_ARCH, TINY_TASK, seed=3, latency=False)
    assert first["train_loss"] == second["train_loss"] and first["val_acc1"] == second["val_acc1"]
    assert 0 <= first["val_acc1"] <= 100 and first["val_acc1"] > 10  # better than chance after one short epoch
    rebuilt = create_model("mnasnet1_0", num_classes=10, in_channels=1, **json.loads(json.dumps(TINY_ARCH)))
    assert first["params"] == sum(p.numel() for p in rebuilt.parameters())
    assert first["deploy_params"] == sum(p.numel() for p in build_on_meta("mnasnet1_0", **TINY_ARCH).parameters())
    assert first["latency_ms"] > 0 and second["latency_ms"] is None and first["flops"] > 0
    with pytest.raises(ValueError, match="unknown override 'depth'"):
        evaluate_architecture("mnasnet1_0", {"depth": 3}, TINY_TASK)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be an int >= 1"),
        ("data", "svhn", "--data 'svhn' is not mnist or digits"),
        ("lr", -1.0, "lr must be"),
    ],
)
def test_bad_task_values_are_one_line_errors(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProxyTask(**{field: value})


def test_latency_and_the_lookup_table(tmp_path) -> None:
    model = create_model("mnasnet1_0", **TINY_ARCH).train()
    assert measure_latency_ms(model, image_size=32, repeats=2, warmup=1) > 0 and model.training
    settings = LatencySettings(image_size=32, repeats=2, warmup=1)
    table = LatencyTable.load(tmp_path / "table.json", settings)
    predicted = table.predict_ms(build_on_meta("mnasnet1_0", **TINY_ARCH))
    # stem conv, 5 blocks, head conv, classifier head
    assert predicted > 0 and table.measured_blocks == 8
    reloaded = LatencyTable.load(tmp_path / "table.json", settings)
    assert (
        reloaded.entries == table.entries and reloaded.predict_ms(model) == predicted and reloaded.measured_blocks == 0
    )
    assert LatencyTable.load(tmp_path / "table.json", LatencySettings(image_size=64)).entries == {}
    assert within_share([1.0, 1.05, 2.0], [1.0, 1.0, 1.0]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="clock must be one of"):
        LatencySettings(clock="gpu")


def test_objectives_follow_mnasnet() -> None:
    assert mnasnet_reward(80.0, 20.0, target_ms=10.0) == pytest.approx(80.0 * 2**-0.07)
    assert mnasnet_reward(80.0, 5.0, target_ms=10.0, mode="hard") == 80.0
    assert mnasnet_reward(80.0, 20.0, target_ms=10.0, mode="hard") == pytest.approx(40.0)
    result = {"val_acc1": 90.0, "latency_ms": 10.0, "deploy_flops": 2_000, "deploy_params": 100}
    assert Objective().score(result) == 90.0
    assert Objective(kind="mnasnet", target_ms=10.0).score(result) == pytest.approx(90.0)
    assert Objective(max_flops=1_000).score(result) == INFEASIBLE
    assert Objective(max_params=100).score(result) == 90.0
    with pytest.raises(ValueError, match="needs target_ms"):
        Objective(kind="mnasnet")
    with pytest.raises(ValueError, match="target_ms must be a finite number > 0, got 0"):
        Objective(kind="mnasnet", target_ms=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        mnasnet_reward(1.0, 1.0, target_ms=1.0, mode="medium")
    with pytest.raises(ValueError, match="has no 'latency_ms'"):
        Objective(kind="mnasnet", target_ms=5.0).score({"val_acc1": 1.0, "latency_ms": None})
