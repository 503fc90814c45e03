"""What is special to EfficientNet; registry-wide tests cover shapes, export, FLOPs and conversions."""

from __future__ import annotations

import pytest
import torch

from vision_backbones import create_model
from vision_backbones.layers import DropPath
from vision_backbones.layers.inverted_residual import InvertedResidual
from vision_backbones.models.efficientnet import VARIANTS, stage_repeats
from vision_backbones.registry import build_on_meta


def test_compound_scaling_of_depth() -> None:
    assert stage_repeats(VARIANTS["efficientnet_b0"]) == [1, 2, 2, 3, 3, 4, 1]
    assert stage_repeats(VARIANTS["efficientnet_b7"]) == [4, 7, 7, 10, 10, 13, 4]  # ceil(n * 3.1)


def test_compound_scaling_of_width() -> None:
    assert build_on_meta("efficientnet_b0", features_only=True).out_channels == (16, 24, 40, 112, 1280)
    assert build_on_meta("efficientnet_b7", features_only=True).out_channels == (32, 48, 80, 224, 2560)


def test_squeeze_is_a_quarter_of_the_block_input() -> None:
    blocks = [m for m in build_on_meta("efficientnet_b0").modules() if isinstance(m, InvertedResidual)]
    assert [b.se.reduce.out_channels for b in blocks[:3]] == [8, 4, 6]  # inputs 32, 16, 24


def test_stochastic_depth_grows_linearly_on_residual_blocks() -> None:
    blocks = [m for m in build_on_meta("efficientnet_b0").modules() if isinstance(m, InvertedResidual)]
    rates = [b.drop_path.p if isinstance(b.drop_path, DropPath) else 0.0 for b in blocks]
    expected = [0.2 * i / 16 if b.use_residual else 0.0 for i, b in enumerate(blocks)]
    assert rates == pytest.approx(expected)


def test_stochastic_depth_is_identity_in_eval_and_random_in_train() -> None:
    model = create_model("efficientnet_b0", features_only=True, stochastic_depth=0.5)
    plain = create_model("efficientnet_b0", features_only=True, stochastic_depth=0.0)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), plain.eval()(x), rtol=0, atol=0)
        model.train()
        torch.manual_seed(1)
        first = model(x)
        torch.manual_seed(2)
        assert not torch.equal(first, model(x))


def test_tf_batch_norm_settings_for_b5_to_b7() -> None:
    assert build_on_meta("efficientnet_b4").stages[0][0].norm.eps == 1e-5
    norm = build_on_meta("efficientnet_b5").stages[0][0].norm
    assert (norm.eps, norm.momentum) == (1e-3, 0.01)


def test_invalid_multiplier_is_rejected() -> None:
    with pytest.raises(ValueError, match="width_multiplier"):
        create_model("efficientnet_b0", width_multiplier=0.0)
