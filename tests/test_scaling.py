"""Compound scaling (``vision_backbones.scaling``, ``backbones scale``): exact B1-B7, MobileNet v1's
alpha and rho, the strategies' multipliers, FLOP targets, override dicts that rebuild, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vision_backbones.cli import main as cli_main
from vision_backbones.registry import create_model, model_info
from vision_backbones.scaling import (
    EFFICIENTNET_TABLE,
    UNIFORM_EXPONENTS,
    activation_exponent,
    scale_model,
    strategy_multipliers,
)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("variant", sorted(EFFICIENTNET_TABLE))
def test_official_table_reproduces_efficientnet_variants_from_b0(variant: str) -> None:
    import torchvision

    width, depth, resolution = EFFICIENTNET_TABLE[variant]
    scaled = scale_model("efficientnet_b0", strategy="explicit", width=width, depth=depth, image_size=resolution)
    assert scaled.image_size == resolution
    with torch.device("meta"):
        ours = _params(scaled.create())
        registered = _params(create_model(variant))
        reference = _params(getattr(torchvision.models, variant)())
    assert ours == registered == reference


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.75])
def test_width_multiplier_reproduces_mobilenet_v1_alpha_variants(alpha: float) -> None:
    scaled = scale_model("mobilenet_v1", strategy="explicit", width=alpha, resolution=160 / 224)
    assert scaled.image_size == 160  # rho = 160 / 224: only the input size changes
    registered = f"mobilenet_v1_{str(alpha).replace('.', '_')}"
    assert model_info("mobilenet_v1", **scaled.overrides)["params"] == model_info(registered)["params"]


def test_efficientnet_strategy_follows_alpha_beta_gamma() -> None:
    multipliers = strategy_multipliers("efficientnet", 2.0)
    assert (multipliers.depth, multipliers.width, multipliers.resolution) == pytest.approx((1.44, 1.21, 1.3225))
    scaled = scale_model("efficientnet_b0", phi=1.0)
    assert scaled.overrides == {"width_multiplier": 1.1, "depth_multiplier": 1.2}
    assert scaled.image_size == 256  # 224 * 1.15 = 257.6, to a multiple of 8
    growth = scaled.info()["flops"] / model_info("efficientnet_b0")["flops"]
    assert 1.6 < growth < 2.6  # ~ alpha beta^2 gamma^2 = 1.92, plus the rounding of repeats


def test_dwr_splits_flops_growth_by_exponents() -> None:
    m = strategy_multipliers("dWr", 3.0)  # 8x FLOPs
    assert m.depth * m.width**2 * m.resolution**2 == pytest.approx(8.0)
    assert (m.depth, m.width, m.resolution) == pytest.approx((8**0.1, 8**0.4, 8**0.05))
    assert activation_exponent("dWr") == pytest.approx(0.6)
    assert activation_exponent("dWr", exponents=UNIFORM_EXPONENTS) == pytest.approx(5 / 6)
    assert activation_exponent("efficientnet") == pytest.approx(0.854, abs=1e-3)


def test_target_gflops_lands_near_the_target() -> None:
    base = model_info("resnet18")["flops"] / 1e9
    scaled = scale_model("resnet18", strategy="dWr", target_gflops=2 * base)
    assert abs(scaled.info()["flops"] / 1e9 / (2 * base) - 1) < 0.15
    assert scaled.phi is not None and scaled.phi > 0
    shrunk = scale_model("resnet18", strategy="efficientnet", target_gflops=0.5 * base)
    assert shrunk.phi < 0 and abs(shrunk.info()["flops"] / 1e9 / (0.5 * base) - 1) < 0.15


def test_channel_fields_are_rounded_to_eight_and_blocks_rounded_up() -> None:
    scaled = scale_model("vovnet39", strategy="explicit", width=1.3, depth=1.5)
    assert scaled.overrides["out_channels"] == (336, 664, 1000, 1328)  # make_divisible(256 * 1.3) = 336, ...
    assert all(c % 8 == 0 for field in ("stem_channels", "mid_channels", "out_channels") for c in scaled.overrides[field])
    assert scaled.overrides["depths"] == (2, 2, 3, 3)  # ceil((1, 1, 2, 2) * 1.5)
    assert model_info("vovnet39", **scaled.overrides)["out_channels"][-1] == 1328


def test_override_dict_survives_json_and_rebuilds_the_same_network() -> None:
    scaled = scale_model("resnet50", strategy="dWr", phi=1.0)
    stored = json.loads(json.dumps(scaled.to_json()))
    rebuilt = model_info(stored["base"], image_size=stored["image_size"], **stored["overrides"])
    assert rebuilt["params"] == scaled.info()["params"] and rebuilt["flops"] == scaled.info()["flops"]
    config = stored["training_config"]
    assert config["model"] == {"model": "resnet50", "model_overrides": stored["overrides"]}
    assert config["data"]["val_crop_size"] == scaled.image_size


def test_scale_cli_prints_overrides_and_writes_json(tmp_path, capsys) -> None:
    out = tmp_path / "b2.json"
    assert cli_main(["scale", "efficientnet_b0", "--width", "1.1", "--depth", "1.2", "--image-size", "260", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert '"width_multiplier": 1.1' in printed and "260" in printed
    assert json.loads(out.read_text())["params"] == model_info("efficientnet_b2")["params"]
    assert [p.name for p in tmp_path.iterdir()] == ["b2.json"]  # atomic: no temp file left


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["resnet50", "--phi", "-1"], "phi must be a finite number >= 0"),
        (["resnet50", "--strategy", "compound", "--phi", "1"], "unknown strategy 'compound'"),
        (["xception", "--phi", "1"], "has no width or depth fields"),
        (["inception_v4", "--strategy", "dWr", "--phi", "1"], "has no width field"),
        (["resnet18", "--target-gflops", "0.00001"], "below the"),
        (["resnet50", "--strategy", "dWr", "--exponents", "0.5", "0.5", "0.5", "--phi", "1"], "must sum to 1"),
        (["resnet50", "--strategy", "dWr"], "needs --phi or --target-gflops"),
    ],
)
def test_bad_input_is_one_line(argv: list[str], message: str, capsys) -> None:
    assert cli_main(["scale", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_negative_and_non_finite_phi_raise() -> None:
    for phi in (-0.5, math.inf, math.nan):
        with pytest.raises(ValueError, match="phi"):
            scale_model("resnet18", phi=phi)
