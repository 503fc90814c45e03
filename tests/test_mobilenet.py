"""What is special to MobileNetV2 / V3; registry-wide tests cover shapes, export, FLOPs and conversions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.layers.inverted_residual import InvertedResidual, MBConvRow
from vision_backbones.models.mobilenet_v2 import PAPER_ROWS, MobileNetV2Config
from vision_backbones.models.mobilenet_v3 import SMALL_ROWS
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


@pytest.mark.parametrize(
    ("name", "block_channels", "head_channels"), [("mobilenet_v3_large", 160, 960), ("mobilenet_v2", 320, 1280)]
)
def test_include_head_conv_false_ends_at_the_last_block(name: str, block_channels: int, head_channels: int) -> None:
    default = build_on_meta(name, features_only=True)
    bare = build_on_meta(name, features_only=True, include_head_conv=False)
    assert (default.out_channels[-1], bare.out_channels[-1], bare.strides[-1]) == (head_channels, block_channels, 32)
    assert sum(p.numel() for p in bare.parameters()) < sum(p.numel() for p in default.parameters())


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large"])
def test_include_head_conv_false_keeps_the_logits(name: str) -> None:
    # Same weights (head_conv.* in both state dicts): the conv only moves to the classifier path.
    default = create_model(name, num_classes=10).eval()
    moved = create_model(name, num_classes=10, include_head_conv=False).eval()
    moved.load_state_dict(default.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(moved(x), default(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride(name: str, output_stride: int) -> None:
    model = create_model(name, features_only=True, output_stride=output_stride).eval()
    assert model.strides[-1] == output_stride
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64))[-1].shape[-2:] == (64 // output_stride, 64 // output_stride)


def test_mobilenet_v3_rows_give_expanded_widths_explicitly() -> None:
    # Swapping an explicit expanded width for an expansion ratio is one override of one row.
    rows = list(SMALL_ROWS)
    rows[1] = rows[1]._replace(expand_ratio=6, expanded_channels=None, kernel_size=7)
    block = [
        m for m in build_on_meta("mobilenet_v3_small", rows=tuple(rows)).modules() if isinstance(m, InvertedResidual)
    ][1]
    assert block.expand.conv.out_channels == 16 * 6 and block.depthwise.conv.kernel_size == (7, 7)
    with pytest.raises(ValueError, match=r"rows\[1\]: give exactly one of expand_ratio and expanded_channels"):
        create_model("mobilenet_v3_small", rows=(rows[0], rows[1]._replace(expanded_channels=72)))


def test_rows_accept_plain_sequences_and_mappings() -> None:
    # JSON / YAML give rows back as lists in MBConvRow's field order, or as objects.
    as_lists = tuple(list(row) for row in PAPER_ROWS)
    as_dicts = tuple(row._asdict() for row in PAPER_ROWS)
    config = MobileNetV2Config(rows=as_lists)
    assert config.rows == PAPER_ROWS and all(isinstance(row, MBConvRow) for row in config.rows)
    assert MobileNetV2Config(rows=as_dicts) == MobileNetV2Config()
    assert build_on_meta("mobilenet_v2", features_only=True, rows=as_lists).out_channels == (16, 24, 32, 96, 1280)
    with pytest.raises(ValueError, match="rows must be a non-empty tuple"):
        MobileNetV2Config(rows=())


def test_inline_blocks_still_fire_hooks_on_their_containers() -> None:
    # InvertedResidual runs its ConvNormAct containers without their own __call__ (speed); a hook on one
    # must still fire, and the scripted block (which calls the modules) must give the same output.
    torch.manual_seed(0)
    block = InvertedResidual(16, 16, expanded_channels=48, kernel_size=3, squeeze_channels=8).eval()
    x = torch.randn(2, 16, 8, 8)
    seen: list[tuple[int, ...]] = []
    handle = block.depthwise.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape)))
    with torch.no_grad():
        hooked = block(x)
    handle.remove()
    assert seen == [(2, 48, 8, 8)]
    with torch.no_grad():
        inline, scripted = block(x), torch.jit.script(block)(x)
    torch.testing.assert_close(inline, hooked, rtol=0, atol=0)
    torch.testing.assert_close(scripted, inline, rtol=0, atol=0)
