"""NetAdapt's loop as the paper runs it: the decaying step schedule, proposals chosen by the calibrated
prediction (the block table or a given predictor), the whole network measured only every
``confirm_every`` steps and at the end, the two-seed rank check of the short-term fine-tune, and the
one line for a target below the narrowest network."""

from __future__ import annotations

import json
import math

import pytest
from test_budget import fake_raw_ms

from vision_backbones.budget.knobs import channel_knobs, narrowest
from vision_backbones.budget.netadapt import adapt, rank_correlation
from vision_backbones.cli import main as cli_main

START = {"depths": (1, 1, 1, 1), "widths": (16, 32, 32, 32), "stem_channels": 16}
QUICK = {
    "data": "digits", "image_size": 32, "repeats": 1, "clock": "cpu", "pretrain_epochs": 0, "final_epochs": 0,
    "proposal_images": 64, "start_overrides": START,
}  # fmt: skip


@pytest.fixture
def measured(monkeypatch) -> list[tuple[dict, float]]:
    """The timer replaced by ``fake_raw_ms`` x 1.25 (so the calibration is not 1); every call recorded."""
    from vision_backbones.budget import calibrated_latency

    calls: list[tuple[dict, float]] = []

    def measure(self, overrides, *, calibrate: bool = True) -> float:
        value = 1.25 * fake_raw_ms(self, overrides)
        calls.append((dict(overrides), value))
        if calibrate:
            self.calibration = value / self.raw_ms(overrides)
        return value

    monkeypatch.setattr(calibrated_latency.LatencyModel, "raw_ms", fake_raw_ms)
    monkeypatch.setattr(calibrated_latency.LatencyModel, "measure", measure)
    return calls


def test_steps_follow_the_decaying_schedule_and_are_measured_every_confirm_every(measured) -> None:
    fraction, decay, every = 0.1, 0.8, 2
    result = adapt(
        "resnet18", math.inf, target_fraction=0.4, tolerance=0.02, step_fraction=fraction, step_decay=decay,
        confirm_every=every, max_steps=5, **QUICK,
    )  # fmt: skip
    steps, start = result.steps, result.start_latency_ms
    assert len(steps) == 6 and start == pytest.approx(1.25 * 0.01 * 128)
    limit = result.target_ms * 1.02
    for previous, step in zip(steps, steps[1:]):
        t = step["step"]
        asked = fraction * start * decay ** (t - 1)
        assert step["goal_ms"] == pytest.approx(max(result.target_ms, previous["latency_ms"] - asked))
        due = t % every == 0 or t == 5 or step["predicted_ms"] <= limit
        assert (step["measured_ms"] is not None) == due, t
        # between measurements the calibrated prediction (1.25 x the table here) is what the step reports
        assert step["predicted_ms"] == pytest.approx(1.25 * 0.01 * _channels(step["overrides"]))
    confirmations = sum(s["measured_ms"] is not None for s in steps[1:])
    # the start, the narrowest (floor) check, the confirmations, then the start and the end once more: no proposal
    assert len(measured) == 2 + confirmations + 2
    assert result.latency_ms == steps[-1]["measured_ms"] == measured[-3][1] == result.closing_ms
    assert measured[-2] == (START, result.closing_start_ms) and measured[-1][0] == result.overrides


def _channels(overrides: dict) -> int:
    config = {**START, **overrides}
    return config["stem_channels"] + sum(config["widths"])


class ParamsPredictor:
    """A stand-in predictor: 1 ms per 10 000 parameters of the network built on meta."""

    def __init__(self) -> None:
        self.calls = 0

    def predict_ms(self, model_on_meta, input_shape) -> float:
        self.calls += 1
        assert input_shape[0] == 1 and input_shape[2] == input_shape[3]
        assert all(p.is_meta for p in model_on_meta.parameters())
        return 1e-4 * sum(p.numel() for p in model_on_meta.parameters())


def test_a_given_predictor_replaces_the_block_table_and_is_calibrated_by_measurement(monkeypatch) -> None:
    from vision_backbones.budget import calibrated_latency
    from vision_backbones.registry import build_on_meta
    from vision_backbones.search import latency as search_latency

    def no_table(*args, **kwargs):
        raise AssertionError("the block table was built although a predictor was given")

    def measure(self, overrides, *, calibrate: bool = True) -> float:
        value = 3e-4 * sum(p.numel() for p in build_on_meta("resnet18", num_classes=1000, **overrides).parameters())
        if calibrate:
            self.calibration = value / self.raw_ms(overrides)
        return value

    monkeypatch.setattr(search_latency.LatencyTable, "load", no_table)
    monkeypatch.setattr(calibrated_latency.LatencyModel, "measure", measure)
    predictor = ParamsPredictor()
    result = adapt(
        "resnet18", math.inf, target_fraction=0.7, step_fraction=0.1, max_steps=2, predictor=predictor, **QUICK
    )
    assert predictor.calls > 0 and len(result.steps) >= 2
    for step in result.steps[1:]:
        assert step["calibration"] == pytest.approx(3.0)  # measured / predicted
        params = sum(p.numel() for p in build_on_meta("resnet18", num_classes=1000, **step["overrides"]).parameters())
        assert step["predicted_ms"] == pytest.approx(3e-4 * params)


def test_two_seeds_rank_the_proposals_and_the_correlation_is_logged(measured, monkeypatch) -> None:
    from vision_backbones.budget import netadapt

    seeds: list[int] = []
    original = netadapt._train

    def recording(model, splits, task, seed, epochs, train_images=None, *, fine_tune=False):
        if train_images is not None:
            seeds.append(seed)
        return original(model, splits, task, seed, epochs, train_images, fine_tune=fine_tune)

    monkeypatch.setattr(netadapt, "_train", recording)
    result = adapt("resnet18", math.inf, target_fraction=0.5, step_fraction=0.1, max_steps=1, rank_seeds=2, **QUICK)
    step = result.steps[1]
    assert step["proposals"] >= 2 and len(seeds) == 2 * step["proposals"] and len(set(seeds)) == 2
    assert step["rank_spearman"] is None or -1.0 <= step["rank_spearman"] <= 1.0
    assert "rank_spearman" in json.loads(json.dumps(step))


def test_rank_correlation_is_spearmans() -> None:
    assert rank_correlation([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]) == pytest.approx(1.0)
    assert rank_correlation([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert rank_correlation([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]) == pytest.approx(0.8)
    assert rank_correlation([5.0], [5.0]) is None and rank_correlation([1.0, 1.0], [1.0, 2.0]) is None
    with pytest.raises(ValueError, match="of one length, got 2 and 3"):
        rank_correlation([1.0, 2.0], [1.0, 2.0, 3.0])


def test_a_target_below_the_narrowest_network_names_the_smallest_reachable_latency(measured) -> None:
    floor = 1.25 * fake_raw_ms(_Named("resnet18"), narrowest("resnet18", START, channel_knobs("resnet18")))
    with pytest.raises(ValueError) as caught:
        adapt("resnet18", math.inf, target_fraction=0.05, max_steps=1, **QUICK)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and f"below {floor:.4g} ms, the smallest latency resnet18 reaches" in message
    assert floor < 1.25 * 0.01 * 128  # the narrowest is below the start, above the 5 % asked


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--step-decay", "0", "--step-decay (step_decay) must be a finite number in (0, 1], got 0.0"),
        ("--step-decay", "1.5", "--step-decay (step_decay) must be a finite number in (0, 1], got 1.5"),
        ("--confirm-every", "0", "--confirm-every (confirm_every) must be an int >= 1, got 0"),
        ("--rank-seeds", "3", "--rank-seeds (rank_seeds) must be one of 1, 2, got 3"),
    ],
)
def test_new_flags_refuse_bad_values_in_one_line(flag: str, value: str, message: str, tmp_path, capsys) -> None:
    argv = [
        "adapt",
        "resnet18",
        "--latency-fraction",
        "0.5",
        "--data",
        "digits",
        "--out",
        str(tmp_path / "o"),
        flag,
        value,
    ]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_passes_the_schedule_confirmation_and_rank_flags(measured, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    argv = [
        "adapt", "resnet18", "--latency-fraction", "0.5", "--data", "digits", "--image-size", "32", "--repeats", "1",
        "--clock", "cpu", "--step-fraction", "0.1", "--step-decay", "0.5", "--confirm-every", "1", "--rank-seeds", "2",
        "--pretrain-epochs", "0", "--final-epochs", "0", "--proposal-images", "64", "--max-steps", "2",
        "--start", json.dumps(START), "--out", str(out),
    ]  # fmt: skip
    assert cli_main(argv) == 0
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    start = steps[0]["latency_ms"]
    assert [s["step"] for s in steps] == [0, 1, 2] and all(s["measured_ms"] is not None for s in steps)
    assert steps[2]["goal_ms"] == pytest.approx(steps[1]["latency_ms"] - 0.1 * 0.5 * start)
    assert all("rank_spearman" in s for s in steps[1:])
    capsys.readouterr()


def test_a_step_that_overshoots_the_target_band_is_taken_again_by_the_new_calibration(monkeypatch) -> None:
    """The start measures 1.25 x the table, the narrower networks 1.1 x: the step chosen by the start's
    calibration lands under the target's band, and taking it once more by the calibration its
    measurement gave ends inside the band (without the second take the run ends 14 % under)."""
    from vision_backbones.budget import calibrated_latency

    def measure(self, overrides, *, calibrate: bool = True) -> float:
        value = (1.25 if _channels(overrides) >= 120 else 1.1) * fake_raw_ms(self, overrides)
        if calibrate:
            self.calibration = value / self.raw_ms(overrides)
        return value

    monkeypatch.setattr(calibrated_latency.LatencyModel, "raw_ms", fake_raw_ms)
    monkeypatch.setattr(calibrated_latency.LatencyModel, "measure", measure)
    result = adapt("resnet18", math.inf, target_fraction=0.9, step_fraction=0.2, max_steps=1, **QUICK)
    step = result.steps[1]
    assert step["redone"] is True
    assert abs(result.latency_ms / result.target_ms - 1) <= 0.05
    assert result.closing_ms == result.latency_ms and result.closing_start_ms == result.start_latency_ms
