"""``backbones pick`` / ``adapt`` and their parts: published top-1 join, ranking and Pareto front,
the per-machine cache, NetAdapt's knobs (read from each family's declaration, valid at every width they
propose), weight inheritance, tiny end-to-end runs on families without multipliers, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from vision_backbones.budget.inherit import inherit_weights
from vision_backbones.budget.knobs import Knob, candidate_widths, channel_knobs, with_channels
from vision_backbones.budget.pick import PickSettings, measure_zoo, rank
from vision_backbones.budget.published_top1 import published_top1
from vision_backbones.cli import main as cli_main
from vision_backbones.registry import create_model, model_info


def test_published_top1_joins_torchvision_metadata_and_the_timm_table() -> None:
    from torchvision.models import get_model_weights

    best = max(w.meta["_metrics"]["ImageNet-1K"]["acc@1"] for w in get_model_weights("mobilenet_v2"))
    found = published_top1("mobilenet_v2")
    assert found is not None and found.top1 == best and found.checkpoint.startswith("torchvision")
    vovnet = published_top1("vovnet39")  # timm only: the table names checkpoint and source
    assert (
        vovnet is not None
        and vovnet.checkpoint == "timm ese_vovnet39b.ra_in1k"
        and "results-imagenet.csv" in vovnet.source
    )
    assert published_top1("shufflenet_v1_g3_x1_0") is None  # no converting checkpoint: no figure, never a guess


def _row(name: str, latency: float, top1: float | None) -> dict:
    return {
        "name": name,
        "latency_ms": latency,
        "latency_q1_ms": latency,
        "latency_q3_ms": latency,
        "top1": top1,
        "checkpoint": "x",
        "flops": 1e9,
        "params": 1e6,
        "activation_bytes": 2**20,
        "status": "measured",
    }


def test_rank_orders_by_accuracy_within_budget_and_finds_the_front() -> None:
    rows = [
        _row("fast", 5, 60.0),
        _row("mid", 9, 70.0),
        _row("slow", 20, 80.0),
        _row("dominated", 12, 65.0),
        _row("unknown", 3, None),
    ]
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
    assert (
        again["timed_now"] == 0 and again["models"][names[0]]["latency_ms"] == first["models"][names[0]]["latency_ms"]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pick.json"]  # atomic writes leave no temp file


def test_pick_says_when_no_model_meets_the_budget(tmp_path, capsys) -> None:
    argv = [
        "pick",
        "--latency-ms",
        "0.0001",
        "--models",
        "mobilenet_v3_small",
        "--image-size",
        "32",
        "--threads",
        "1",
        "--rounds",
        "1",
        "--no-cache",
        "--measure-all",
    ]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert (
        "no model meets --latency-ms 0.0001" in err
        and "closest: mobilenet_v3_small" in err
        and len(err.splitlines()) == 1
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pick", "--latency-ms", "-3"], "--latency-ms (budget_ms) must be a positive"),
        (["pick", "--latency-ms", "10", "--models", "nothing*"], "matches no registered model"),
        (
            ["adapt", "inception_v3", "--latency-ms", "5", "--out", "unused"],
            "(family 'inception_v3') declares no channel fields for NetAdapt to shrink: its branch widths are hand-written",
        ),
        (
            ["adapt", "resnet18", "--latency-ms", "5", "--out", "unused", "--start", "{widths: 1}"],
            "--start '{widths: 1}' is not a valid JSON object",
        ),
    ],
)
def test_bad_input_is_one_line(argv: list[str], message: str, capsys) -> None:
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_knobs_are_the_declared_channel_entries_and_rebuild() -> None:
    labels = [k.label for k in channel_knobs("mobilenet_v2")]
    assert (
        labels[:3] == ["stem_channels", "rows[0].out_channels", "rows[1].out_channels"]
        and labels[-1] == "head_channels"
    )
    assert [k.label for k in channel_knobs("resnet18")] == ["stem_channels", *(f"widths[{i}]" for i in range(4))]
    assert len(channel_knobs("vovnet39")) == 3 + 4 + 4  # stem convs, OSA mid widths, OSA output widths
    from vision_backbones.layers import make_divisible
    from vision_backbones.registry import get_entry

    row = get_entry("mobilenet_v3_large").config.rows[3]  # an explicit expanded width follows its row's output width
    stored = json.loads(json.dumps(with_channels("mobilenet_v3_large", {}, Knob("rows.out_channels", 3), 16)))
    assert stored["rows"][3]["out_channels"] == 16
    assert (
        stored["rows"][3]["expanded_channels"]
        == make_divisible(row.expanded_channels * 16 / row.out_channels)
        < row.expanded_channels
    )
    assert model_info("mobilenet_v3_large", **stored)["params"] < model_info("mobilenet_v3_large")["params"]


def test_knobs_propose_only_widths_the_family_accepts() -> None:
    """Grouped convs: ShuffleNet v1 with 3 groups moves in 24s, ResNeXt 32x4d in 16s; ShuffleNet v2 stays even."""
    # 24 would leave the first unit's branch (output - the 24 stem channels) empty: the config refuses it
    assert candidate_widths("shufflenet_v1_g3_x1_0", {}, Knob("widths", 0)) == [48, 72, 96, 120, 144, 168, 192, 216]
    assert candidate_widths("resnext50_32x4d", {}, Knob("widths", 0)) == [16, 32, 48]
    assert all(w % 2 == 0 for w in candidate_widths("shufflenet_v2_x1_0", {}, Knob("widths", 1)))


def _knob_families() -> list[str]:
    from test_scaling import representative_variants

    from vision_backbones.registry import get_entry

    return sorted(name for name in representative_variants().values() if get_entry(name).design.channels)


@pytest.mark.parametrize("name", _knob_families())
def test_every_knob_builds_at_its_narrowest(name: str) -> None:
    """Each knob moves alone, so a neighbour it must match (a shortcut, a split) keeps its width: every
    other knob at its narrowest in one network, the rest in a second, each run forward on meta."""
    from vision_backbones.registry import build_on_meta

    knobs = channel_knobs(name)
    for parity in (0, 1):
        overrides: dict = {}
        for knob in knobs[parity::2]:
            widths = candidate_widths(name, overrides, knob)
            if widths:
                overrides = with_channels(name, overrides, knob, widths[0])
        model = build_on_meta(name, num_classes=10, **overrides).eval()
        size = max(64, model.min_input_size)
        assert model(torch.empty(1, 3, size, size, device="meta")).shape == (1, 10), overrides


def test_inherit_weights_keeps_the_filters_of_largest_norm() -> None:
    """The narrowed conv keeps whole filters of the wider one, the largest by L2 norm, in their order
    (``tests/test_netadapt_inherit.py`` checks every coupled tensor and the function)."""
    tiny = {"depths": (1, 1, 1, 1), "stem_channels": 8}
    torch.manual_seed(0)
    wide = create_model("resnet18", widths=(16, 16, 16, 16), num_classes=10, **tiny)
    narrow = create_model("resnet18", widths=(16, 8, 16, 16), num_classes=10, **tiny)
    report = inherit_weights(narrow, wide)
    key = next(k for k in narrow.state_dict() if k.startswith("stages.2") and k.endswith("conv1.conv.weight"))
    new, old = narrow.state_dict()[key], wide.state_dict()[key]
    norms = old.flatten(1).norm(dim=1) ** 2 + wide.state_dict()[key.replace("conv.weight", "norm.weight")] ** 2
    largest = sorted(norms.argsort(descending=True)[:8].tolist())
    assert new.shape == (8, *old.shape[1:]) and torch.equal(new, old[largest]) and report.fallbacks == []


# Tiny starting points (``start_overrides``) so one NetAdapt step takes seconds on one thread.
TINY_STARTS = {
    "vovnet39": {
        "stem_channels": (16, 16, 32),
        "mid_widths": (16, 16, 24, 24),
        "widths": (32, 48, 64, 64),
        "depths": (1, 1, 1, 1),
    },
    "shufflenet_v2_x1_0": {"stem_channels": 24, "widths": (64, 128, 256), "depths": (1, 1, 1), "head_channels": 512},
    "darknet53": {"stem_channels": 16, "widths": (16, 32, 48, 64, 96), "depths": (1, 1, 1, 1, 1)},
    "regnet_y_400mf": {"stem_channels": 16, "widths": (16, 32, 48, 64), "depths": (1, 1, 1, 1)},
}


def params_latency_ms(self, overrides, *, calibrate: bool = True) -> float:
    """A deterministic stand-in for the timer on any family: 1 ms per million parameters (built on meta).
    What these tests check is the loop, the surgery and the outputs; timing noise on a shared machine
    made the measured latency of a tiny network sometimes not drop (speed belongs in benchmarks)."""
    from vision_backbones.registry import build_on_meta

    if calibrate and hasattr(self, "calibration"):
        self.calibration = 1.0
    return 1e-6 * sum(p.numel() for p in build_on_meta(self.name, num_classes=1000, **overrides).parameters())


@pytest.fixture
def params_latency(monkeypatch):
    from vision_backbones.budget import calibrated_latency

    monkeypatch.setattr(
        calibrated_latency.LatencyModel,
        "raw_ms",
        lambda self, overrides: params_latency_ms(self, overrides, calibrate=False),
    )
    monkeypatch.setattr(calibrated_latency.LatencyModel, "measure", params_latency_ms)


@pytest.mark.parametrize("name", sorted(TINY_STARTS))
def test_adapt_end_to_end_on_families_without_multipliers(name: str, params_latency) -> None:
    from vision_backbones.budget.netadapt import adapt
    from vision_backbones.registry import list_models

    if name not in list_models():
        pytest.skip(f"{name} is not registered yet")
    result = adapt(
        name,
        float("inf"),
        target_fraction=0.85,
        data="digits",
        image_size=64,
        threads=1,
        step_fraction=0.3,
        tolerance=0.1,
        pretrain_epochs=1,
        final_epochs=0,
        proposal_images=64,
        proxy_image_size=32,
        repeats=3,
        clock="cpu",
        start_overrides=TINY_STARTS[name],
        max_steps=1,
    )
    rebuilt = create_model(name, num_classes=10, in_channels=1, **json.loads(json.dumps(result.overrides)))
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in result.model.parameters())
    assert result.latency_ms < result.start_latency_ms and len(result.steps) == 2
    assert all(0 <= step["val_acc1"] <= 100 for step in result.steps)


def test_adapt_cli_writes_the_architecture_weights_log_and_plot(tmp_path, capsys, params_latency) -> None:
    start = tmp_path / "start.json"
    start.write_text(json.dumps({"overrides": TINY_STARTS["shufflenet_v2_x1_0"]}))  # as `backbones scale --json` writes
    out = tmp_path / "out"
    argv = [
        "adapt",
        "shufflenet_v2_x1_0",
        "--latency-fraction",
        "0.85",
        "--data",
        "digits",
        "--image-size",
        "64",
        "--repeats",
        "3",
        "--clock",
        "cpu",
        "--step-fraction",
        "0.3",
        "--tolerance",
        "0.1",
        "--pretrain-epochs",
        "1",
        "--final-epochs",
        "0",
        "--proposal-images",
        "64",
        "--start",
        str(start),
        "--max-steps",
        "1",
        "--out",
        str(out),
    ]
    assert cli_main(argv) == 0
    arch = json.loads((out / "arch.json").read_text())
    assert arch["latency_ms"] < arch["start_latency_ms"] and arch["overrides"]["depths"] == [1, 1, 1]
    loaded = create_model("shufflenet_v2_x1_0", pretrained=out / "weights.safetensors", in_channels=1, num_classes=10)
    rebuilt = create_model(
        "shufflenet_v2_x1_0", in_channels=1, num_classes=10, **arch["overrides"]
    )  # the architecture travels along
    assert {k: v.shape for k, v in loaded.state_dict().items()} == {k: v.shape for k, v in rebuilt.state_dict().items()}
    assert len((out / "log.jsonl").read_text().splitlines()) == 2 and (out / "path.png").stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == ["arch.json", "log.jsonl", "path.png", "weights.safetensors"]
    assert "shufflenet_v2_x1_0:" in capsys.readouterr().out


# ---- kill -9 and resume (issue 16): a deterministic stand-in for the timer, so both runs can be compared


def fake_raw_ms(self, overrides) -> float:
    """Latency as a fixed function of the channels (cheap and the same in every process)."""
    from vision_backbones.budget.knobs import _config

    config = _config(self.name, overrides)
    return 0.01 * (config.stem_channels + sum(config.widths))


def fake_measure(self, overrides, *, calibrate: bool = True) -> float:
    if calibrate:
        self.calibration = 1.0
    return fake_raw_ms(self, overrides)


# steps 3 and 4 have 1 and 5 proposals: together longer than the longest delay before the kill
ADAPT_KILL_ARGV = [
    "adapt", "resnet18", "--latency-fraction", "0.5", "--data", "digits", "--image-size", "32", "--repeats", "1",
    "--step-fraction", "0.1", "--tolerance", "0.02", "--pretrain-epochs", "0", "--final-epochs", "0",
    "--proposal-images", "64", "--max-steps", "4",
    "--start", '{"depths": [1, 1, 1, 1], "widths": [16, 32, 32, 32], "stem_channels": 16}',
]  # fmt: skip

KILLED_ADAPT = """
import sys
sys.path.insert(0, {tests!r})
from test_budget import ADAPT_KILL_ARGV, fake_measure, fake_raw_ms
from vision_backbones.budget import calibrated_latency
calibrated_latency.LatencyModel.raw_ms = fake_raw_ms
calibrated_latency.LatencyModel.measure = fake_measure
from vision_backbones.cli import main
raise SystemExit(main([*ADAPT_KILL_ARGV, "--out", sys.argv[1]]))
"""


def _adapt_outcome(out) -> tuple:
    arch = json.loads((out / "arch.json").read_text())
    steps = [
        {k: v for k, v in json.loads(line).items() if k != "seconds"}
        for line in (out / "log.jsonl").read_text().splitlines()
    ]
    return arch["overrides"], arch["latency_ms"], arch["val_acc1"], arch["test_acc1"], steps


def test_adapt_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, capsys) -> None:
    """SIGKILL after a seeded number of finished steps plus a seeded delay; the same command then
    resumes from OUT/state.pt: no finished step lost or repeated, the end the same as without the kill."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from vision_backbones.budget import calibrated_latency

    monkeypatch.setattr(calibrated_latency.LatencyModel, "raw_ms", fake_raw_ms)
    monkeypatch.setattr(calibrated_latency.LatencyModel, "measure", fake_measure)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert cli_main([*ADAPT_KILL_ARGV, "--out", str(reference)]) == 0
    expected = _adapt_outcome(reference)
    assert len(expected[-1]) == 5  # steps 0..4: the kill below always leaves at least one step to do

    seed = int(os.environ.get("KILL_SEED", "16"))
    rng = random.Random(seed)
    finished_steps, delay = rng.choice([1, 2]), rng.uniform(0.0, 0.3)
    script = tmp_path / "adapt.py"
    script.write_text(KILLED_ADAPT.format(tests=str(Path(__file__).parent)))
    process = subprocess.Popen(
        [sys.executable, str(script), str(resumed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    log = resumed / "log.jsonl"
    deadline = time.time() + 120
    while process.poll() is None and time.time() < deadline:
        if log.exists() and len(log.read_text().splitlines()) > finished_steps:
            break
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, f"KILL_SEED={seed}: the process was not killed (it ended first)"
    assert (resumed / "state.pt").exists() and not (resumed / "arch.json").exists()
    persisted = len(torch.load(resumed / "state.pt", weights_only=True)["steps"])  # steps 0 .. persisted - 1

    from vision_backbones.budget import netadapt

    trained: list[int] = []  # the step of every proposal fine-tune the resumed run does
    original_train = netadapt._train

    def counting_train(model, splits, task, seed, epochs, train_images=None, *, fine_tune=False):
        if train_images is not None:
            trained.append(seed)  # proposals train with seed + step (the base seed is 0)
        return original_train(model, splits, task, seed, epochs, train_images, fine_tune=fine_tune)

    monkeypatch.setattr(netadapt, "_train", counting_train)
    assert cli_main([*ADAPT_KILL_ARGV, "--out", str(resumed)]) == 0  # the same command: resumed, not refused
    assert trained and min(trained) == persisted, (
        f"KILL_SEED={seed}: finished steps were done again ({sorted(set(trained))})"
    )
    assert _adapt_outcome(resumed) == expected, f"KILL_SEED={seed}"
    assert [s["step"] for s in _adapt_outcome(resumed)[-1]] == [0, 1, 2, 3, 4]  # none lost, none repeated
    assert sorted(p.name for p in resumed.iterdir()) == ["arch.json", "log.jsonl", "path.png", "weights.safetensors"]
    capsys.readouterr()
