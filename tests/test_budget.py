"""``backbones pick`` / ``adapt`` and their parts: published top-1 join, ranking and Pareto front,
the per-machine cache, NetAdapt's knobs, weight inheritance and a tiny end-to-end run, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from vision_backbones.budget.accuracy import published_top1
from vision_backbones.budget.netadapt import Knob, inherit_weights, width_knobs, with_channels
from vision_backbones.budget.pick import PickSettings, measure_zoo, rank
from vision_backbones.cli import main as cli_main
from vision_backbones.registry import create_model, model_info


def test_published_top1_joins_torchvision_metadata_and_the_timm_table() -> None:
    from torchvision.models import get_model_weights

    best = max(w.meta["_metrics"]["ImageNet-1K"]["acc@1"] for w in get_model_weights("mobilenet_v2"))
    found = published_top1("mobilenet_v2")
    assert found is not None and found.top1 == best and found.checkpoint.startswith("torchvision")
    vovnet = published_top1("vovnet39")  # timm only: the table names checkpoint and source
    assert vovnet is not None and vovnet.checkpoint == "timm ese_vovnet39b.ra_in1k" and "results-imagenet.csv" in vovnet.source
    assert published_top1("shufflenet_v1_g3_x1_0") is None  # no converting checkpoint: no figure, never a guess


def _row(name: str, latency: float, top1: float | None) -> dict:
    return {"name": name, "latency_ms": latency, "latency_q1_ms": latency, "latency_q3_ms": latency, "top1": top1,
            "checkpoint": "x", "flops": 1e9, "params": 1e6, "activation_bytes": 2**20, "status": "measured"}


def test_rank_orders_by_accuracy_within_budget_and_finds_the_front() -> None:
    rows = [_row("fast", 5, 60.0), _row("mid", 9, 70.0), _row("slow", 20, 80.0), _row("dominated", 12, 65.0), _row("unknown", 3, None)]
    measured = {"models": {r["name"]: r for r in rows}}
    ranking = rank(measured, 10.0)
    assert [r["name"] for r in ranking["meeting"]] == ["mid", "fast", "unknown"]
    assert ranking["front"] == ["fast", "mid", "slow"]
    assert [r["name"] for r in ranking["closest"]][:2] == ["dominated", "slow"]
    assert [r["name"] for r in rank(measured, 10.0, memory_limit_mb=0.5)["meeting"]] == []  # 1 MB of weights + act.


def test_measure_zoo_caches_per_machine_and_settings(tmp_path) -> None:
    cache = tmp_path / "pick.json"
    settings = PickSettings(image_size=32, threads=1, rounds=2)
    names = ["mobilenet_v3_small"]
    first = measure_zoo(names, 1e4, settings, cache=cache)
    assert first["timed_now"] == 1 and all(first["models"][n]["latency_ms"] > 0 for n in names)
    stored = json.loads(cache.read_text())
    assert list(stored) == [settings.key()] and set(stored[settings.key()]) == set(names)
    again = measure_zoo(names, 1e4, settings, cache=cache)
    assert again["timed_now"] == 0 and again["models"][names[0]]["latency_ms"] == first["models"][names[0]]["latency_ms"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pick.json"]  # atomic writes leave no temp file


def test_pick_says_when_no_model_meets_the_budget(tmp_path, capsys) -> None:
    argv = ["pick", "--latency-ms", "0.0001", "--models", "mobilenet_v3_small", "--image-size", "32", "--threads", "1", "--rounds", "1", "--no-cache"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "no model meets --latency-ms 0.0001" in err and "closest: mobilenet_v3_small" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["pick", "--latency-ms", "-3"], "--latency-ms must be a positive"),
    (["pick", "--latency-ms", "10", "--models", "nothing*"], "matches no registered model"),
    (["adapt", "xception", "--latency-ms", "5", "--out", "unused"], "has no per-stage widths"),
])
def test_bad_input_is_one_line(argv: list[str], message: str, capsys) -> None:
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_width_knobs_cover_rows_or_widths_and_rebuild() -> None:
    assert [k.label for k in width_knobs("mobilenet_v2")][:2] == ["rows[0]", "rows[1]"]
    assert width_knobs("mobilenet_v2")[-1] == Knob("head_channels")
    assert [k.label for k in width_knobs("resnet18")] == ["widths[0]", "widths[1]", "widths[2]", "widths[3]"]
    from vision_backbones.layers import make_divisible
    from vision_backbones.registry import get_entry

    row = get_entry("mobilenet_v3_large").config.rows[3]  # rows with explicit expanded widths shrink alike
    stored = json.loads(json.dumps(with_channels("mobilenet_v3_large", {}, Knob("rows", 3), 16)))
    assert stored["rows"][3]["out_channels"] == 16
    assert stored["rows"][3]["expanded_channels"] == make_divisible(row.expanded_channels * 16 / row.out_channels) < row.expanded_channels
    assert model_info("mobilenet_v3_large", **stored)["params"] < model_info("mobilenet_v3_large")["params"]


def test_inherit_weights_copies_the_leading_channels() -> None:
    tiny = {"depths": (1, 1, 1, 1), "stem_channels": 8}
    torch.manual_seed(0)
    wide = create_model("resnet18", widths=(16, 16, 16, 16), num_classes=10, **tiny)
    narrow = create_model("resnet18", widths=(16, 8, 16, 16), num_classes=10, **tiny)
    inherit_weights(narrow, wide)
    key = next(k for k in narrow.state_dict() if k.startswith("stages.2") and k.endswith("conv.weight"))
    new, old = narrow.state_dict()[key], wide.state_dict()[key]
    assert new.shape != old.shape and torch.equal(new, old[tuple(slice(0, n) for n in new.shape)])


def test_adapt_end_to_end_on_digits() -> None:
    from vision_backbones.budget.netadapt import adapt

    tiny = {"depths": (1, 1, 1, 1), "widths": (64, 64, 128, 128), "stem_channels": 16}
    result = adapt("resnet18", float("inf"), target_fraction=0.75, data="digits", image_size=96, threads=1, step_fraction=0.15, tolerance=0.2,
                   pretrain_epochs=1, final_epochs=0, proposal_images=64, proxy_image_size=32, repeats=3, clock="cpu", start_overrides=tiny)
    rebuilt = create_model("resnet18", num_classes=10, in_channels=1, **json.loads(json.dumps(result.overrides)))
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in result.model.parameters())
    assert result.latency_ms < result.start_latency_ms and len(result.steps) >= 2
    assert all(0 <= step["val_acc1"] <= 100 for step in result.steps)
