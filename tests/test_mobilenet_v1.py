"""MobileNet v1: the width multiplier alpha (``width_multiplier``) scales every layer; rho is just the input size."""

import pytest
import torch

from vision_backbones import create_model, model_info


def test_alpha_scales_channels() -> None:
    full = create_model("mobilenet_v1", features_only=True)
    assert full.out_channels == (64, 128, 256, 512, 1024)
    assert create_model("mobilenet_v1_0_5", features_only=True).out_channels == (32, 64, 128, 256, 512)
    assert create_model("mobilenet_v1", features_only=True, width_multiplier=1.25).out_channels == (
        80,
        160,
        320,
        640,
        1280,
    )
    # Cost falls roughly with alpha squared (paper, Table 6: 569M -> 149M mult-adds at alpha 0.5).
    ratio = model_info("mobilenet_v1_0_5")["flops"] / model_info("mobilenet_v1")["flops"]
    assert 0.2 < ratio < 0.3


@pytest.mark.parametrize("size", [128, 160, 192])
def test_resolution_multiplier_is_input_size(size: int) -> None:
    model = create_model("mobilenet_v1_0_25", features_only=True).eval()
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, size, size))[-1].shape[-1] == size // 32


def test_invalid_width_multiplier() -> None:
    with pytest.raises(ValueError, match="width_multiplier"):
        create_model("mobilenet_v1", width_multiplier=0.0)


@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride(output_stride: int) -> None:
    model = create_model("mobilenet_v1_0_25", features_only=True, output_stride=output_stride).eval()
    assert model.strides[-1] == output_stride
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64))[-1].shape[-2:] == (64 // output_stride, 64 // output_stride)
