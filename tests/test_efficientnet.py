"""What is special to EfficientNet; registry-wide tests cover shapes, export, FLOPs and conversions."""

from __future__ import annotations

import pytest
import torch

from vision_backbones import create_model
from vision_backbones.layers import DropPath, drop_path_rates
from vision_backbones.layers.inverted_residual import InvertedResidual, row_repeats
from vision_backbones.models.efficientnet import VARIANTS
from vision_backbones.registry import build_on_meta


def test_compound_scaling_of_depth() -> None:
    b0, b7 = VARIANTS["efficientnet_b0"], VARIANTS["efficientnet_b7"]
    assert row_repeats(b0.rows, b0.depth_multiplier) == [1, 2, 2, 3, 3, 4, 1]
    assert row_repeats(b7.rows, b7.depth_multiplier) == [4, 7, 7, 10, 10, 13, 4]  # ceil(n * 3.1)


def test_compound_scaling_of_width() -> None:
    assert build_on_meta("efficientnet_b0", features_only=True).out_channels == (16, 24, 40, 112, 1280)
    assert build_on_meta("efficientnet_b7", features_only=True).out_channels == (32, 48, 80, 224, 2560)


def test_squeeze_is_a_quarter_of_the_block_input() -> None:
    blocks = [m for m in build_on_meta("efficientnet_b0").modules() if isinstance(m, InvertedResidual)]
    assert [b.se.reduce.out_channels for b in blocks[:3]] == [8, 4, 6]  # inputs 32, 16, 24


def test_drop_path_grows_linearly_on_residual_blocks() -> None:
    blocks = [m for m in build_on_meta("efficientnet_b0").modules() if isinstance(m, InvertedResidual)]
    rates = [b.drop_path.p if isinstance(b.drop_path, DropPath) else 0.0 for b in blocks]
    # The one schedule (layers.drop_path_rates), counted over every block, applied on residual ones.
    expected = [rate if b.use_residual else 0.0 for rate, b in zip(drop_path_rates(0.2, len(blocks)), blocks)]
    assert rates == pytest.approx(expected)


def test_drop_path_is_identity_in_eval_and_random_in_train() -> None:
    model = create_model("efficientnet_b0", features_only=True, drop_path_rate=0.5)
    plain = create_model("efficientnet_b0", features_only=True, drop_path_rate=0.0)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), plain.eval()(x), rtol=0, atol=0)
        model.train()
        torch.manual_seed(1)
        first = model(x)[-1]  # a features model returns every level
        torch.manual_seed(2)
        assert not torch.equal(first, model(x)[-1])


def test_tf_batch_norm_settings_for_b5_to_b7() -> None:
    assert build_on_meta("efficientnet_b4").stages[0][0].norm.eps == 1e-5
    norm = build_on_meta("efficientnet_b5").stages[0][0].norm
    assert (norm.eps, norm.momentum) == (1e-3, 0.01)


def test_invalid_multiplier_is_rejected() -> None:
    with pytest.raises(ValueError, match="width_multiplier"):
        create_model("efficientnet_b0", width_multiplier=0.0)


def test_include_head_conv_false_reaches_the_320_channel_map() -> None:
    default = build_on_meta("efficientnet_b0", features_only=True)
    bare = build_on_meta("efficientnet_b0", features_only=True, include_head_conv=False)
    assert (default.out_channels[-1], bare.out_channels[-1], bare.strides[-1]) == (1280, 320, 32)
    assert bare.head_conv is None  # the 1x1 conv to 1280 is not built into a features model
    assert sum(p.numel() for p in bare.parameters()) < sum(p.numel() for p in default.parameters())


def test_include_head_conv_false_keeps_the_logits() -> None:
    # Same weights, the head conv only moves from the last level to the classifier path.
    default = create_model("efficientnet_b0", num_classes=10).eval()
    moved = create_model("efficientnet_b0", num_classes=10, include_head_conv=False).eval()
    moved.load_state_dict(default.state_dict())
    assert any(k.startswith("head_conv.") for k in default.state_dict())
    assert moved.level_channels[-1] == 320 and moved.num_features == 1280
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(moved(x), default(x), rtol=0, atol=0)


@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride(output_stride: int) -> None:
    model = create_model("efficientnet_b0", features_only=True, output_stride=output_stride).eval()
    assert model.strides[-1] == output_stride
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64))[-1].shape[-2:] == (64 // output_stride, 64 // output_stride)


def test_rows_are_overridable_data() -> None:
    # A row may come as a mapping (JSON / YAML); per-row kernel, expansion, SE and repeats vary.
    rows = [dict(row._asdict()) for row in VARIANTS["efficientnet_b0"].rows]
    rows[1].update(kernel_size=7, expand_ratio=3, se_ratio=0.0, repeats=3)
    model = build_on_meta("efficientnet_b0", features_only=True, rows=tuple(rows))
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17 and blocks[1].depthwise.conv.kernel_size == (7, 7)
    assert blocks[1].expand.conv.out_channels == 16 * 3 and not blocks[1].has_se


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"expand_ratio": 6, "kernel_size": 4, "stride": 1, "out_channels": 16}, r"rows\[0\]\.kernel_size must be odd"),
        ({"expand_ratio": 6, "kernel_size": 3, "stride": 3, "out_channels": 16}, r"rows\[0\]\.stride"),
        ({"expand_ratio": 6, "kernel_size": 3, "stride": 1, "out_channels": 16, "repeats": 0}, r"rows\[0\]\.repeats"),
        (
            {"expand_ratio": 6, "kernel_size": 3, "stride": 1, "out_channels": 16, "se_ratio": 2.0},
            r"rows\[0\]\.se_ratio",
        ),
        (
            {"expand_ratio": 6, "kernel_size": 3, "stride": 1, "out_channels": 16, "activation": "gelu"},
            r"rows\[0\]\.activation",
        ),
        (
            {"expand_ratio": 6, "kernel": 3, "stride": 1, "out_channels": 16},
            r"rows\[0\] has unknown fields \['kernel'\]",
        ),
        (
            {"expand_ratio": 6, "kernel_size": 3, "stride": 1, "out_channels": 16, "expanded_channels": 96},
            "exactly one of",
        ),
    ],
)
def test_bad_rows_are_one_line_errors(row: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as error:
        create_model("efficientnet_b0", rows=(row,))
    assert "\n" not in str(error.value)
