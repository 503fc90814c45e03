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


# The README's claim: measured FLOPs within 4.4 % of --target-gflops (benchmarks/budget/scaling.md's worst row).
TARGET_TOLERANCE = 0.044


def test_target_gflops_lands_near_the_target() -> None:
    base = model_info("resnet18")["flops"] / 1e9
    scaled = scale_model("resnet18", strategy="dWr", target_gflops=2 * base)
    assert abs(scaled.info()["flops"] / 1e9 / (2 * base) - 1) <= TARGET_TOLERANCE
    assert scaled.phi is not None and scaled.phi > 0
    shrunk = scale_model("resnet18", strategy="efficientnet", target_gflops=0.5 * base)
    assert shrunk.phi < 0 and abs(shrunk.info()["flops"] / 1e9 / (0.5 * base) - 1) <= TARGET_TOLERANCE


def test_channel_fields_are_rounded_to_eight_and_blocks_rounded_up() -> None:
    scaled = scale_model("vovnet39", strategy="explicit", width=1.3, depth=1.5)
    assert scaled.overrides["widths"] == (336, 664, 1000, 1328)  # make_divisible(256 * 1.3) = 336, ...
    assert all(c % 8 == 0 for field in ("stem_channels", "mid_widths", "widths") for c in scaled.overrides[field])
    assert scaled.overrides["depths"] == (2, 2, 3, 3)  # ceil((1, 1, 2, 2) * 1.5)
    assert model_info("vovnet39", **scaled.overrides)["out_channels"][-1] == 1328


def test_grouped_families_round_to_their_declared_divisor() -> None:
    """ResNeXt 32x4d keeps whole channels per group: widths in multiples of 64 / width_per_group = 16."""
    scaled = scale_model("resnext50_32x4d", strategy="explicit", width=0.3)
    assert scaled.overrides["widths"] == (32, 48, 80, 160)  # 64 * 0.3 = 19.2: 16 would drop > 10 %; divisor 8 gave 24
    assert model_info("resnext50_32x4d", **scaled.overrides)["params"] < model_info("resnext50_32x4d")["params"]


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
    assert (
        cli_main(
            ["scale", "efficientnet_b0", "--width", "1.1", "--depth", "1.2", "--image-size", "260", "--json", str(out)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert '"width_multiplier": 1.1' in printed and "260" in printed
    assert json.loads(out.read_text())["params"] == model_info("efficientnet_b2")["params"]
    assert [p.name for p in tmp_path.iterdir()] == ["b2.json"]  # atomic: no temp file left


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["resnet50", "--phi", "-1"], "phi must be a finite number >= 0"),
        (["resnet50", "--strategy", "compound", "--phi", "1"], "unknown strategy 'compound'"),
        (
            ["inception_v3", "--phi", "1"],
            "(family 'inception_v3') declares no channel or depth fields: its branch widths are hand-written",
        ),
        (
            ["inception_v4", "--strategy", "dWr", "--phi", "1"],
            "declares no channel fields: its branch widths are hand-written",
        ),
        (["alexnet", "--depth", "2"], "declares no depth fields: it has one conv per level"),
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


# ----------------------------------------------------------------------- what each family declares

# Families that cannot be scaled in one dimension; each says why in its own file (``fixed_because``).
NOT_WIDTH_SCALABLE = {"bninception", "googlenet", "inception_resnet_v2", "inception_v3", "inception_v4"}
# nasbench_mb: depth is chosen per layer by its ops (skip), not by a count to multiply
NOT_DEPTH_SCALABLE = {"alexnet", "bninception", "googlenet", "inception_v3", "nasbench_mb", "zoph_le"}


# The variant that stands for its family: small, and grouped or CSP where the family has such variants
# (their channel divisors are what can go wrong). A family not listed is tested with its first variant.
REPRESENTATIVE = {
    "convnext": "convnext_tiny", "darknet": "cspdarknet53", "nasnet": "nasnet_a_mobile", "preact_resnet": "preact_resnet18",
    "regnet": "regnet_y_400mf", "resnet": "resnext50_32x4d", "senet": "seresnext50_32x4d", "shufflenet_v1": "shufflenet_v1_g3_x1_0",
    "vovnet": "vovnet19_slim",
}  # fmt: skip


def representative_variants() -> dict[str, str]:
    """family -> the variant the registry-wide design tests build."""
    from vision_backbones.registry import get_entry, list_models

    found: dict[str, str] = {}
    for name in list_models():
        family = get_entry(name).family
        if REPRESENTATIVE.get(family, name) == name:
            found.setdefault(family, name)
    return found


FAMILIES = representative_variants()


def test_every_family_declares_what_scaling_may_change_or_says_why_not() -> None:
    from vision_backbones.registry import get_family

    for family in FAMILIES:
        design = get_family(family).design
        assert design.scalable_width != (family in NOT_WIDTH_SCALABLE), family
        assert design.scalable_depth != (family in NOT_DEPTH_SCALABLE), family
        if not (design.scalable_width and design.scalable_depth):
            assert design.fixed_because, f"{family} declares no width or depth fields and gives no reason"


@pytest.mark.parametrize("family", sorted(set(FAMILIES) - (NOT_WIDTH_SCALABLE & NOT_DEPTH_SCALABLE)))
def test_declared_fields_scale_every_family(family: str) -> None:
    """Half the width shrinks the network, twice the depth grows it (built on meta, through the declaration)."""
    from vision_backbones.registry import build_on_meta, get_entry
    from vision_backbones.scaling import Multipliers, scaled_overrides

    name = FAMILIES[family]
    design = get_entry(name).design
    base = _params(build_on_meta(name, features_only=True))
    if design.scalable_width:
        assert (
            _params(build_on_meta(name, features_only=True, **scaled_overrides(name, Multipliers(width=0.5))))
            < 0.6 * base
        )
    if design.scalable_depth:
        assert (
            _params(build_on_meta(name, features_only=True, **scaled_overrides(name, Multipliers(depth=2.0))))
            > 1.1 * base
        )


@pytest.mark.parametrize("name", ["vovnet39", "shufflenet_v2_x1_0", "darknet53", "regnet_y_400mf"])
def test_scale_cli_runs_on_families_without_multipliers(name: str, tmp_path, capsys) -> None:
    from vision_backbones.registry import list_models

    if name not in list_models():
        pytest.skip(f"{name} is not registered yet")
    out = tmp_path / "scaled.json"
    assert cli_main(["scale", name, "--width", "0.5", "--depth", "1.5", "--image-size", "160", "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["params"] < model_info(name)["params"] and written["overrides"]
    rebuilt = model_info(name, image_size=160, **written["overrides"])
    assert (rebuilt["params"], rebuilt["flops"]) == (written["params"], written["flops"])
    assert "params" in capsys.readouterr().out


# Modules that must change a config only through what families declare (``family.DesignFields``).
DESIGN_TOOL_MODULES = ("scaling.py", "config_paths.py", "budget", "cli/scale.py", "cli/adapt.py")
# Words of the library's own API that happen to be config fields of some family as well.
API_WORDS = {"image_size", "repeats", "stride", "activation", "layers", "block"}


def _config_field_names() -> set[str]:
    """Every config field of every registered family, every attribute of their rows, and every field
    name retired by the vocabulary change (``weights.RENAMED_FIELDS``: ``stage_channels``, ...)."""
    import dataclasses

    from vision_backbones.registry import get_entry, list_models
    from vision_backbones.weights import RENAMED_FIELDS

    names: set[str] = {old for renamed in RENAMED_FIELDS.values() for old in renamed}
    for model in list_models():
        config = get_entry(model).config
        for field in dataclasses.fields(config):
            names.add(field.name)
            value = getattr(config, field.name)
            if isinstance(value, tuple) and value and hasattr(value[0], "_fields"):
                names.update(value[0]._fields)
    return names


def test_design_tools_name_no_family_field() -> None:
    """Scaling, NetAdapt and their command lines read ``get_entry(name).design``: a string or keyword
    that is a family's config field (``"stage_channels"``, ``widths=``) means a family was hard-coded."""
    import ast
    from pathlib import Path

    import vision_backbones

    root = Path(vision_backbones.__file__).parent
    files = [
        p
        for entry in DESIGN_TOOL_MODULES
        for p in ((root / entry).rglob("*.py") if (root / entry).is_dir() else [root / entry])
    ]
    forbidden = _config_field_names() - API_WORDS
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            word = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                word = node.value
            elif isinstance(node, ast.keyword):
                word = node.arg
            if word in forbidden:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {word!r}")
    assert len(files) > 8 and not found, found
