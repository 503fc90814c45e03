"""One NetAdapt step on a tiny start of each family with channel knobs: the knobs turn, the weights are
inherited by filter selection (no leading-slice fallback where Torch-Pruning traces the family), the
step logs its predicted and measured latency and the result rebuilds from its overrides."""

from __future__ import annotations

import json

import pytest
from test_budget import params_latency_ms

from vision_backbones.registry import create_model

FAMILY_STARTS: dict[str, dict] = {
    "resnet18": {"depths": (1, 1, 1, 1), "stem_channels": 16, "widths": (16, 32, 32, 64)},
    "vovnet19_slim": {"stem_channels": (16, 16, 32), "mid_widths": (16, 16, 24, 24), "widths": (32, 48, 64, 64)},
    "darknet19": {"depths": (0, 1, 1, 1, 1), "stem_channels": 16, "widths": (16, 32, 48, 64, 96)},
    "shufflenet_v2_x0_5": {"depths": (1, 1, 1), "stem_channels": 24, "widths": (48, 96, 192), "head_channels": 256},
    "mobilenet_v1_0_25": {"depths": (1, 1, 1, 1, 1)},
    "mobilenet_v2": {"depth_multiplier": 0.3, "width_multiplier": 0.35},
    "mobilenet_v3_small": {"depth_multiplier": 0.3, "width_multiplier": 0.35},
    "mnasnet0_5": {"depth_multiplier": 0.3},
    "efficientnet_b0": {"depth_multiplier": 0.3, "width_multiplier": 0.35},
    "regnet_x_400mf": {"depths": (1, 1, 1, 1), "stem_channels": 16, "widths": (16, 32, 48, 64)},
}
UNTRACEABLE = {"shufflenet_v2_x0_5"}  # its channel shuffle is beyond Torch-Pruning: leading-slice fallbacks


@pytest.fixture
def cheap_latency(monkeypatch):
    """1 ms per million parameters for prediction and measurement (``test_budget.params_latency_ms``)."""
    from vision_backbones.budget import calibrated_latency

    monkeypatch.setattr(
        calibrated_latency.LatencyModel, "raw_ms", lambda self, o: params_latency_ms(self, o, calibrate=False)
    )
    monkeypatch.setattr(calibrated_latency.LatencyModel, "measure", params_latency_ms)


@pytest.mark.parametrize("name", sorted(FAMILY_STARTS))
def test_one_netadapt_step_on_every_family(name: str, cheap_latency) -> None:
    from vision_backbones.budget.netadapt import adapt

    result = adapt(
        name,
        float("inf"),
        target_fraction=0.9,
        data="digits",
        image_size=32,
        step_fraction=0.05,
        tolerance=0.02,
        pretrain_epochs=0,
        final_epochs=0,
        proposal_images=64,
        repeats=1,
        clock="cpu",
        start_overrides=FAMILY_STARTS[name],
        max_steps=1,
    )
    step = result.steps[-1]
    assert len(result.steps) == 2 and step["stage"] is not None and step["proposals"] >= 1
    assert step["measured_ms"] == result.latency_ms < result.start_latency_ms  # the last step is measured
    assert step["predicted_ms"] < result.start_latency_ms and step["goal_ms"] < result.start_latency_ms
    rebuilt = create_model(name, num_classes=10, in_channels=1, **json.loads(json.dumps(result.overrides)))
    shapes = {k: v.shape for k, v in result.model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in rebuilt.state_dict().items()}
    fallbacks = [c["inherit_fallbacks"] for c in step["candidates"]]
    assert len(fallbacks) == step["proposals"] and (name in UNTRACEABLE or fallbacks == [0] * len(fallbacks))
