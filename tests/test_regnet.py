"""What is special to RegNet; registry-wide tests cover shapes, export, freezing, FX and output_stride."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import assert_close_to_scale, build_reference
from torch import nn

from vision_backbones import create_model, model_info
from vision_backbones.convert import from_torchvision
from vision_backbones.flops import count_flops
from vision_backbones.layers import DropPath, SqueezeExcite
from vision_backbones.models.regnet import PUBLISHED, VARIANTS, RegNetConfig, XBlock
from vision_backbones.registry import build_on_meta, get_entry

# The paper's parameters in torchvision's builders: depth, w_0, w_a, w_m, group width (SE 0.25 for Y).
DESIGN_SPACE = {
    "regnet_x_400mf": (22, 24, 24.48, 2.54, 16),
    "regnet_x_800mf": (16, 56, 35.73, 2.28, 16),
    "regnet_x_1_6gf": (18, 80, 34.01, 2.25, 24),
    "regnet_x_3_2gf": (25, 88, 26.31, 2.25, 48),
    "regnet_x_8gf": (23, 80, 49.56, 2.88, 120),
    "regnet_x_16gf": (22, 216, 55.59, 2.1, 128),
    "regnet_x_32gf": (23, 320, 69.86, 2.0, 168),
    "regnet_y_400mf": (16, 48, 27.89, 2.09, 8),
    "regnet_y_800mf": (14, 56, 38.84, 2.4, 16),
    "regnet_y_1_6gf": (27, 48, 20.71, 2.65, 24),
    "regnet_y_3_2gf": (21, 80, 42.63, 2.66, 24),
    "regnet_y_8gf": (17, 192, 76.82, 2.19, 56),
    "regnet_y_16gf": (18, 200, 106.23, 2.48, 112),
    "regnet_y_32gf": (20, 232, 115.89, 2.53, 232),
}


def _weights_meta(name: str) -> dict:
    return torchvision.models.get_model_weights(name).IMAGENET1K_V1.meta


def test_every_torchvision_variant_is_registered() -> None:
    assert set(VARIANTS) == set(DESIGN_SPACE) == set(PUBLISHED)


@pytest.mark.parametrize("name", sorted(DESIGN_SPACE))
def test_quantized_linear_rule_gives_torchvisions_stages(name: str) -> None:
    from torchvision.models.regnet import BlockParams

    depth, w_0, w_a, w_m, group_width = DESIGN_SPACE[name]
    theirs = BlockParams.from_init_params(depth=depth, w_0=w_0, w_a=w_a, w_m=w_m, group_width=group_width)
    config = VARIANTS[name]
    assert config.depths == tuple(theirs.depths) and config.widths == tuple(theirs.widths)
    assert config.group_width == group_width and config.se_ratio == (0.25 if name.startswith("regnet_y") else 0.0)
    # torchvision clamps the group width to the stage's width (RegNetX-8GF's first stage: 80 < 120); so do the blocks.
    model = build_on_meta(name, features_only=True)
    for stage, clamped in zip(model.stages[1:], theirs.group_widths, strict=True):
        conv = stage.blocks[0].conv2.conv
        assert conv.in_channels // conv.groups == clamped


@pytest.mark.parametrize("name", ["regnet_x_400mf", "regnet_y_400mf"])
def test_logits_and_levels_equal_torchvision(name: str) -> None:
    reference = build_reference("torchvision", name)
    ours = from_torchvision(name, reference.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        got = ours(x)
        maps = ours.forward_features(x)
        stem = reference.stem(x)
        stages = [reference.trunk_output[: k + 1](stem) for k in range(4)]
    assert got.shape == expected.shape == (2, 1000)
    assert_close_to_scale(got, expected, 1e-4)
    for ours_map, reference_map in zip(maps, [stem, *stages], strict=True):
        assert_close_to_scale(ours_map, reference_map, 1e-4)


def test_converted_features_model_is_pruned() -> None:
    reference = build_reference("torchvision", "regnet_y_400mf")
    model = from_torchvision("regnet_y_400mf", reference.state_dict(), features_only=True, out_strides=(8, 16))
    assert model.out_channels == (104, 208) and model.strides == (8, 16)
    assert len(model.stages) == 4  # stride-32 stage pruned
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert_close_to_scale(model(x)[-1], reference.trunk_output[:3](reference.stem(x)))


@pytest.mark.parametrize("name", sorted(DESIGN_SPACE))
def test_params_and_flops_equal_torchvision_metadata(name: str) -> None:
    """Full parameters equal ``num_params``; 2 x MACs of the backbone plus the ``fc`` equal ``2 x _ops``."""
    meta = _weights_meta(name)
    assert sum(p.numel() for p in build_on_meta(name).parameters()) == meta["num_params"]
    info = model_info(name)
    fc_macs = 1000 * VARIANTS[name].widths[-1]
    assert abs((info["flops_2x_macs"] / 2 + fc_macs) / 1e9 - meta["_ops"]) <= 0.0005  # _ops has 3 decimals
    published = PUBLISHED[name]
    assert round(info["params"] / 1e6, 2) == published.params_m
    assert abs(info["flops"] / 1e9 - published.gflops) <= 0.0005
    assert published.top1 == meta["_metrics"]["ImageNet-1K"]["acc@1"]


def test_seed_convention_counted_on_torchvisions_model() -> None:
    """The published GFLOPs are torchvision's model counted in the seed's convention: ours count the same."""
    reference = build_reference("torchvision", "regnet_y_400mf")
    reference.avgpool, reference.fc = nn.Identity(), nn.Identity()
    theirs = count_flops(reference, torch.empty(1, 3, 224, 224))
    assert theirs.total == model_info("regnet_y_400mf")["flops"]
    assert round(theirs.total / 1e9, 3) == PUBLISHED["regnet_y_400mf"].gflops


def test_levels_and_preprocessing() -> None:
    model = build_on_meta("regnet_y_400mf", features_only=True)
    assert model.level_strides == (2, 4, 8, 16, 32)
    assert model.level_channels == (32, *VARIANTS["regnet_y_400mf"].widths)
    transform = torchvision.models.RegNet_Y_400MF_Weights.IMAGENET1K_V1.transforms()
    preprocessing = get_entry("regnet_y_400mf").preprocessing
    assert [preprocessing.resize_size] == transform.resize_size and [preprocessing.input_size] == transform.crop_size
    assert (preprocessing.mean, preprocessing.std) == (tuple(transform.mean), tuple(transform.std))


def test_squeeze_excite_only_in_regnet_y_and_sized_by_the_block_input() -> None:
    x_blocks = [m for m in build_on_meta("regnet_x_400mf").modules() if isinstance(m, XBlock)]
    assert not any(isinstance(m, SqueezeExcite) for b in x_blocks for m in b.modules())
    block = next(m for m in build_on_meta("regnet_y_400mf").modules() if isinstance(m, XBlock))
    assert block.se.reduce.out_channels == round(0.25 * 32)  # a quarter of the stem's 32, not of the inner 48


def test_design_fields_and_any_multiple_of_eight_builds() -> None:
    design = get_entry("regnet_y_400mf").design
    assert design.channels == ("stem_channels", "widths") and design.depths == ("depths",)
    assert design.divisor(VARIANTS["regnet_y_400mf"]) == 8
    # Widths a design tool may pick (multiples of 8, not of the group width 24): the inner width rounds to 24s.
    model = create_model("regnet_y_1_6gf", features_only=True, widths=(40, 112, 328, 880), depths=(1, 2, 3, 1))
    assert model.out_channels == (32, 40, 112, 328, 880)
    inner = [stage.blocks[0].conv2.conv for stage in model.stages[1:]]
    assert [c.out_channels for c in inner] == [48, 120, 336, 888]
    assert all(c.in_channels // c.groups == 24 for c in inner)
    with torch.no_grad():
        assert [m.shape[1] for m in model(torch.randn(1, 3, 64, 64))] == [32, 40, 112, 328, 880]


def test_drop_rate_and_drop_path_rate() -> None:
    model = create_model("regnet_x_400mf", num_classes=10, drop_rate=0.2, drop_path_rate=0.1)
    assert model.head.dropout.p == 0.2
    rates = [
        b.drop_path.p if isinstance(b.drop_path, DropPath) else 0.0 for b in model.modules() if isinstance(b, XBlock)
    ]
    assert len(rates) == sum(VARIANTS["regnet_x_400mf"].depths)
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1) and rates == sorted(rates)
    # torchvision's RegNet has no stochastic depth and no dropout: both are off by default.
    plain = build_on_meta("regnet_x_400mf")
    assert not any(isinstance(m, DropPath) for m in plain.modules()) and plain.head.dropout.p == 0.0


def test_output_stride_dilates_the_last_stages() -> None:
    model = create_model("regnet_y_400mf", features_only=True, output_stride=8)
    assert model.strides == (2, 4, 8, 8, 8)
    assert model.stages[4].blocks[1].conv2.conv.dilation == (4, 4)


def test_config_errors_are_one_line() -> None:
    with pytest.raises(ValueError, match="widths must be 2 ints"):
        RegNetConfig(depths=(1, 2), widths=(32,), group_width=8)
    with pytest.raises(ValueError, match="se_ratio"):
        RegNetConfig(depths=(1,), widths=(32,), group_width=8, se_ratio=1.5)
    with pytest.raises(ValueError, match="w_m > 1"):
        RegNetConfig.from_design_space(depth=16, w_0=48, w_a=27.89, w_m=1.0, group_width=8)
    with pytest.raises(ValueError, match="unknown override 'w_0'"):
        create_model("regnet_y_400mf", w_0=48)
