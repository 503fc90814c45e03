"""The alpha/beta/gamma grid's seeds and the scaling-rule comparison: confidence, significance, resume.

Training is replaced by a deterministic stand-in (what is tested is the bookkeeping around it): every
(candidate, seed) trains once, a resumed run trains only what is missing, and the report's confidence
and p-values follow the seeds' spread.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from vision_backbones.budget import grid


def _row(key: str, values: list[float]) -> dict[str, Any]:
    alpha, beta, gamma = (float(v) for v in key.split("/"))
    return {"alpha": alpha, "beta": beta, "gamma": gamma, "val_acc1_seeds": values}


def test_confidence_follows_the_seeds_spread() -> None:
    clear = [_row("1.2/1.1/1.15", [96.0, 96.1, 96.2]), _row("2/1/1", [90.0, 90.5, 91.0])]
    assert grid.confidence(clear)["1.2/1.1/1.15"] == 1.0
    tied = [_row("1.2/1.1/1.15", [95.0, 96.0, 97.0]), _row("2/1/1", [95.0, 96.0, 97.0])]
    shares = grid.confidence(tied)
    assert 0.3 < shares["1.2/1.1/1.15"] < 0.7 and abs(sum(shares.values()) - 1) < 1e-9


def test_welch_p_separates_only_separated_seeds() -> None:
    assert grid.welch_p([96.0, 96.1, 96.2], [90.0, 90.1, 90.2]) < 0.001
    assert grid.welch_p([95.0, 96.0, 97.0], [95.5, 96.0, 96.5]) > 0.5
    assert grid.welch_p([96.0], [90.0, 91.0]) is None


def _fake(calls: list[str]) -> Any:
    def evaluate_architecture(base: str, arch: dict[str, Any], task: Any, seed: int, latency: bool) -> dict[str, Any]:
        key = json.dumps(arch, sort_keys=True, default=list) + str(task.image_size)
        calls.append(f"{key}:{seed}")
        h = zlib.crc32(f"{key}:{seed}".encode())
        return {
            "val_acc1": 90 + h % 500 / 100,
            "test_acc1": 90 + h % 499 / 100,
            "params": 1,
            "flops": 2,
            "seconds": 0.1,
        }

    return evaluate_architecture


def test_comparison_trains_each_rule_and_seed_once_and_resumes(tmp_path: Path, monkeypatch) -> None:
    from vision_backbones.search import evaluate

    calls: list[str] = []
    monkeypatch.setattr(evaluate, "evaluate_architecture", _fake(calls))
    rows = grid.run_comparison("resnet18", tmp_path, factors=(2.0,), seeds=(0, 1, 2), epochs=1, train_images=8)
    assert sorted(r["rule"] for r in rows) == sorted(grid.SCALING_RULES)
    assert len(calls) == 9 and len(set(calls)) == len({c.rsplit(":", 1)[0] for c in calls}) * 3
    assert all(len(r["val_acc1_seeds"]) == 3 for r in rows)
    for r in rows:  # each rule reached its FLOPs target at the deploy size
        base_flops = grid.scaled_by_rule("resnet18", r["rule"], 1.0).info()["flops"]
        assert r["deploy_flops"] == pytest.approx(2 * base_flops, rel=0.06), r["rule"]
    saved = (tmp_path / "compare.json").read_text()
    grid.run_comparison("resnet18", tmp_path, factors=(2.0,), seeds=(0, 1, 2), epochs=1, train_images=8)
    assert len(calls) == 9 and (tmp_path / "compare.json").read_text() == saved  # nothing trained again
    text = grid.compare_markdown("resnet18", rows, None, "# header")
    assert text.count("| 2x |") == 3 and "Welch p" in text


def test_grid_reports_confidence_and_refuses_other_settings(tmp_path: Path, monkeypatch) -> None:
    from vision_backbones.search import evaluate

    calls: list[str] = []
    monkeypatch.setattr(evaluate, "evaluate_architecture", _fake(calls))
    rows = grid.run_grid("resnet18", tmp_path, seeds=(0, 1), epochs=1, train_images=8, tolerance=0.01)
    assert len(calls) == 2 * len(rows)
    text = grid.markdown("resnet18", rows, "# header")
    assert "Confidence: the choice wins" in text and " ± " in text
    with pytest.raises(ValueError, match="was trained with epochs 1, not 3"):
        grid.run_grid("resnet18", tmp_path, seeds=(0, 1), epochs=3, train_images=8, tolerance=0.01)


def test_rules_that_round_to_one_network_train_and_time_it_once(tmp_path: Path, monkeypatch) -> None:
    """At 2x, EfficientNet's rule and uniform scaling give mnasnet0_5 the same channels, repeats and
    size: the network trains once per seed, the other rule copies it and the report says so."""
    from vision_backbones.search import evaluate

    calls: list[str] = []
    monkeypatch.setattr(evaluate, "evaluate_architecture", _fake(calls))
    rows = grid.run_comparison("mnasnet0_5", tmp_path, factors=(2.0,), seeds=(0, 1, 2), epochs=1, train_images=8)
    by_rule = {r["rule"]: r for r in rows}
    assert by_rule["efficientnet"]["overrides"] != by_rule["uniform"]["overrides"]  # other multipliers, ...
    assert by_rule["efficientnet"]["deploy_flops"] == by_rule["uniform"]["deploy_flops"]  # ... one network
    assert len(calls) == 6 and len(set(calls)) == 6  # two distinct networks x three seeds
    assert by_rule["uniform"]["same_as"] == "efficientnet@2x"
    assert by_rule["uniform"]["val_acc1_seeds"] == by_rule["efficientnet"]["val_acc1_seeds"]
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["uniform@2x"]["trials"] == saved["efficientnet@2x"]["trials"]  # the copy is on disk
    text = grid.compare_markdown("mnasnet0_5", rows, None, "# header")
    assert "uniform (the same network as efficientnet)" in text
    assert "vs uniform" not in text  # a network is not compared with itself
