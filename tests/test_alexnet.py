"""AlexNet: the first conv strides by 4, so there is no stride-2 level, and the unpadded pools need 63 pixels."""

import pytest
import torch

from vision_backbones import create_model


def test_levels_start_at_stride_4() -> None:
    model = create_model("alexnet", features_only=True)
    assert model.strides == (4, 8, 16, 32)
    assert model.out_channels == (64, 192, 256, 256)


def test_minimum_input_size() -> None:
    model = create_model("alexnet").eval()
    assert model.min_input_size == 63
    with torch.no_grad():
        assert model(torch.randn(1, 3, 63, 63)).shape == (1, 1000)  # last level is 1x1, pooled up to 6x6
    with pytest.raises(ValueError, match="63"):
        model(torch.randn(1, 3, 62, 62))


def test_head_exposes_fc_and_pre_logits() -> None:
    model = create_model("alexnet", num_classes=5, hidden_channels=32).eval()
    assert model.get_classifier() is model.head.fc
    x = torch.randn(1, 3, 63, 63)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x)[-1], pre_logits=True)
        assert pooled.shape == (1, 32)
        torch.testing.assert_close(model.head.fc(pooled), model(x))


def test_output_stride_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="AlexNet does not support dilation") as error:
        create_model("alexnet", output_stride=16)
    assert "\n" not in str(error.value)
