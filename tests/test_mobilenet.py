"""What is special to MobileNetV2 / V3; registry-wide tests cover shapes, export, FLOPs and conversions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.layers.inverted_residual import InvertedResidual
from vision_backbones.registry import build_on_meta


@pytest.mark.parametrize(
    ("width", "out_channels"),
    [(1.0, (16, 24, 32, 96, 1280)), (0.5, (8, 16, 16, 48, 1280)), (1.4, (24, 32, 48, 136, 1792))],
)
def test_mobilenet_v2_width_multiplier(width: float, out_channels: tuple[int, ...]) -> None:
    # Channels scale and round to multiples of 8; the final 1x1 conv only grows (paper, section 5.1).
    assert build_on_meta("mobilenet_v2", features_only=True, width_multiplier=width).out_channels == out_channels


def test_mobilenet_v3_width_multiplier_scales_blocks_and_hidden_layer() -> None:
    model = build_on_meta("mobilenet_v3_large", width_multiplier=0.75)
    assert model.out_channels == (16, 24, 32, 88, 720)  # the last conv stays 6x the last block
    assert model.head.hidden[0].out_features == 960  # 1280 * 0.75


def test_mobilenet_v3_head_has_hidden_hardswish_layer() -> None:
    model = build_on_meta("mobilenet_v3_small", num_classes=10)
    linear, act = model.head.hidden
    assert (linear.in_features, linear.out_features, type(act)) == (576, 1024, nn.Hardswish)
    assert model.head.fc.in_features == 1024


def test_mobilenet_v3_small_first_level_is_the_stem_conv() -> None:
    # Small strides in its first block, so level 0 (stride 2) holds only the stem conv.
    model = build_on_meta("mobilenet_v3_small", features_only=True)
    assert len(model.stages[0]) == 1 and not isinstance(model.stages[0][0], InvertedResidual)


def test_mobilenet_v3_blocks_follow_the_table() -> None:
    blocks = [m for m in build_on_meta("mobilenet_v3_large").modules() if isinstance(m, InvertedResidual)]
    first, fourth = blocks[0], blocks[3]
    assert isinstance(first.expand, nn.Identity)  # 16 -> 16: no expansion conv
    assert isinstance(first.se, nn.Identity) and isinstance(first.depthwise.act, nn.ReLU)
    assert fourth.se.reduce.out_channels == 24  # make_divisible(72 // 4 = 18) -> 24
    assert isinstance(fourth.se.gate, nn.Hardsigmoid) and fourth.depthwise.conv.kernel_size == (5, 5)
    assert isinstance(blocks[-1].depthwise.act, nn.Hardswish)
    assert [b.use_residual for b in blocks[:3]] == [True, False, True]


def test_batch_norm_settings_are_config() -> None:
    model = create_model("mobilenet_v3_small", features_only=True, bn_eps=1e-5, bn_momentum=0.1)
    norm = model.stages[0][0].norm
    assert (norm.eps, norm.momentum) == (1e-5, 0.1)
    assert build_on_meta("mobilenet_v3_small").stages[0][0].norm.eps == 1e-3  # torchvision's default
    with pytest.raises(ValueError, match="bn_eps"):
        create_model("mobilenet_v3_small", bn_eps=0.0)


def test_inverted_residual_shapes_and_residual() -> None:
    block = InvertedResidual(16, 16, expanded_channels=64, kernel_size=5).eval()
    x = torch.randn(1, 16, 8, 8)
    assert block(x).shape == (1, 16, 8, 8) and block.use_residual
    down = InvertedResidual(16, 24, expanded_channels=64, stride=2, squeeze_channels=8)
    assert down(x).shape == (1, 24, 4, 4) and not down.use_residual
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        InvertedResidual(16, 16, expanded_channels=64, stride=3)
