"""What is special about VoVNet: V1/V2 options, eSE placement, the timm stem/pool layout."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.layers import ConvNormAct, EffectiveSqueezeExcite
from vision_backbones.models.vovnet import VARIANTS, OSABlock
from vision_backbones.registry import build_on_meta  # structure only: no weights allocated

NAME = "vovnet19_slim"  # the smallest variant: one block per stage
TIMM_LAYOUT = {"fold_pool_into_stem": True, "pool_ceil_mode": True}


def _blocks(model: nn.Module) -> list[OSABlock]:
    return [m for m in model.modules() if isinstance(m, OSABlock)]


def _num_ese(model: nn.Module) -> int:
    return sum(isinstance(m, EffectiveSqueezeExcite) for m in model.modules())


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_v2_default_has_ese_everywhere_and_residual_where_shapes_match() -> None:
    model = build_on_meta("vovnet39", features_only=True)
    blocks = _blocks(model)
    assert len(blocks) == sum(VARIANTS["vovnet39"].depths) == _num_ese(model)
    # Every stage's first block changes the width, so only the later blocks add their input.
    stage_firsts = {id(stage.blocks[0]) for stage in model.stages[1:]}
    assert [b.residual for b in blocks] == [id(b) not in stage_firsts for b in blocks]


def test_v1_has_no_ese_and_no_residual() -> None:
    v2 = build_on_meta("vovnet39", features_only=True)
    v1 = build_on_meta("vovnet39", features_only=True, residual=False, ese=False)
    assert _num_ese(v1) == 0 and not any(b.residual for b in _blocks(v1))
    ese_params = sum(_num_params(m) for m in v2.modules() if isinstance(m, EffectiveSqueezeExcite))
    assert _num_params(v2) - _num_params(v1) == ese_params


def test_ese_last_block_only_puts_one_per_stage() -> None:
    model = build_on_meta("vovnet57", features_only=True, ese_last_block_only=True)
    for stage in model.stages[1:]:
        has_ese = [isinstance(block.ese, EffectiveSqueezeExcite) for block in stage.blocks]
        assert has_ese == [False] * (len(stage.blocks) - 1) + [True]


def test_fold_pool_into_stem_moves_the_stride2_level_as_declared() -> None:
    paper = create_model(NAME, features_only=True)
    folded = create_model(NAME, features_only=True, fold_pool_into_stem=True)
    stem_channels = VARIANTS[NAME].stem_channels
    assert isinstance(paper.stages[1].downsample, nn.MaxPool2d)
    assert isinstance(folded.stages[1].downsample, ConvNormAct) and folded.stages[1].downsample.stride == 2
    # Same convs, regrouped: the stride-2 level is the stem's second conv (timm's feature_info).
    assert paper.level_channels[0] == stem_channels[-1] and folded.level_channels[0] == stem_channels[-2]
    assert paper.level_strides == folded.level_strides == (2, 4, 8, 16, 32)
    assert _num_params(paper) == _num_params(folded)
    x = torch.randn(1, 3, 64, 64)
    for model in (paper, folded):
        for feature, channels, stride in zip(model.forward_features(x), model.out_channels, model.strides):
            assert feature.shape[1:] == (channels, 64 // stride, 64 // stride)


def test_pool_ceil_mode_shifts_the_pooling_windows() -> None:
    padded = create_model(NAME, features_only=True, **{**TIMM_LAYOUT, "pool_ceil_mode": False}).eval()
    ceil = create_model(NAME, features_only=True, **TIMM_LAYOUT).eval()
    ceil.load_state_dict(padded.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = padded.forward_features(x), ceil.forward_features(x)
    torch.testing.assert_close(a[1], b[1])  # stage 1 opens with the strided conv, no pool
    assert a[2].shape == b[2].shape and not torch.allclose(a[2], b[2])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ese": False, "ese_last_block_only": True}, "ese_last_block_only"),
        ({"depths": (1, 1, 1)}, r"mid_widths must be 3 ints >= 1 \(one per stage\)"),
        ({"num_layers": 0}, "num_layers"),
        ({"stem_channels": (64,), "fold_pool_into_stem": True}, "at least 2 stem convs"),
    ],
)
def test_bad_config_raises(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(VARIANTS[NAME], **overrides)


@pytest.mark.parametrize("layout", [{}, TIMM_LAYOUT], ids=["paper", "timm"])
@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride(layout: dict, output_stride: int) -> None:
    plain = create_model(NAME, features_only=True, **layout)
    model = create_model(NAME, features_only=True, output_stride=output_stride, **layout).eval()
    assert model.strides == tuple(min(s, output_stride) for s in (2, 4, 8, 16, 32))
    model.load_state_dict(plain.state_dict())  # dilation changes no parameter
    kept = 5 - {16: 1, 8: 2}[output_stride]
    assert sum(isinstance(m, nn.MaxPool2d) and m.stride == 2 for m in model.modules()) == kept - 1 - bool(layout)
    with torch.no_grad():
        last = model(torch.randn(1, 3, 64, 64))[-1]
    assert last.shape == (1, 512, 64 // output_stride, 64 // output_stride)
