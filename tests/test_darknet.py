"""What is special about Darknet / CSPDarknet: the CSP split convs and the timm-layout options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.convert.rules.darknet import _split_csp_expansion
from vision_backbones.models.darknet import CSPStage, DarknetConfig, DarknetStage
from vision_backbones.registry import build_on_meta

TIMM_CSP = {"negative_slope": 0.01, "csp_wide_first_stage": True, "csp_block_transition": True}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_csp_stages_use_two_half_width_split_convs() -> None:
    model = build_on_meta("cspdarknet53", features_only=True)
    for stage, width in zip(model.stages, (64, 128, 256, 512, 1024)):
        assert isinstance(stage, CSPStage)
        for split in (stage.cross_conv, stage.block_conv):
            assert split.conv.kernel_size == (1, 1)
            assert (split.conv.in_channels, split.conv.out_channels) == (width, width // 2)
        assert isinstance(stage.block_transition, nn.Identity)


def test_stages_without_blocks_are_a_single_strided_conv() -> None:
    # Darknet-19's first stage is YOLOv2's max pool + 3x3 conv turned into one stride-2 conv.
    for name in ("darknet19", "cspdarknet19"):
        stage = build_on_meta(name, features_only=True).stages[0]
        assert isinstance(stage, DarknetStage) and len(stage.blocks) == 0
        assert stage.down.conv.stride == (2, 2)


def test_block_transition_adds_one_1x1_conv_norm_per_stage() -> None:
    plain = build_on_meta("cspdarknet53", features_only=True)
    extra = build_on_meta("cspdarknet53", features_only=True, csp_block_transition=True)
    half_widths = [w // 2 for w in (64, 128, 256, 512, 1024)]
    assert _params(extra) - _params(plain) == sum(s * s + 2 * s for s in half_widths)  # conv + norm affine


def test_timm_layout_matches_timm_parameter_count() -> None:
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        reference = timm.create_model("cspdarknet53", pretrained=False, num_classes=0)
    assert _params(build_on_meta("cspdarknet53", features_only=True, **TIMM_CSP)) == _params(reference)


def test_split_transform_gives_first_half_to_cross_path() -> None:
    weight = torch.arange(4.0).reshape(4, 1, 1, 1)
    out = _split_csp_expansion({"stages.1.conv_exp.conv.weight": weight, "stem.conv1.conv.weight": weight})
    assert out["stages.1.conv_exp_cross.conv.weight"].flatten().tolist() == [0.0, 1.0]
    assert out["stages.1.conv_exp_block.conv.weight"].flatten().tolist() == [2.0, 3.0]
    assert out["stem.conv1.conv.weight"] is weight


def test_negative_slope_selects_activation() -> None:
    tiny = {"widths": (8, 8, 8, 8, 8), "stem_channels": 8}
    leaky = create_model("darknet19", features_only=True, **tiny)
    assert isinstance(leaky.stem.act, nn.LeakyReLU) and leaky.stem.act.negative_slope == 0.1
    assert isinstance(create_model("cspdarknet19", features_only=True, **tiny).stem.act, nn.ReLU)


@pytest.mark.parametrize(
    "overrides",
    [{"csp_block_transition": True}, {"csp_wide_first_stage": True}, {"negative_slope": -0.1}, {"depths": (1, 2)}],
)
def test_invalid_configs_raise(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DarknetConfig(**overrides)  # type: ignore[arg-type]


def test_csp_needs_even_widths() -> None:
    with pytest.raises(ValueError, match="even widths"):
        DarknetConfig(csp=True, widths=(64, 128, 255, 512, 1024))


@pytest.mark.parametrize("name", ["darknet19", "cspdarknet53"])
@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride(name: str, output_stride: int) -> None:
    tiny = {"widths": (8, 8, 16, 16, 16), "stem_channels": 8}
    plain = create_model(name, features_only=True, **tiny)
    model = create_model(name, features_only=True, output_stride=output_stride, **tiny).eval()
    assert model.strides == tuple(min(s, output_stride) for s in (2, 4, 8, 16, 32))
    model.load_state_dict(plain.state_dict())  # dilation changes no parameter
    assert model.stages[-1].down.conv.stride == (1, 1)
    with torch.no_grad():
        last = model(torch.randn(1, 3, 64, 64))[-1]
    assert last.shape == (1, 16, 64 // output_stride, 64 // output_stride)
