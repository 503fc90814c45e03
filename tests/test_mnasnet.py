"""MnasNet: width multiplier rounding as torchvision's (multiples of 8, head conv not scaled)."""

from __future__ import annotations

import pytest
import torch

from vision_backbones import create_model
from vision_backbones.registry import build_on_meta


@pytest.mark.parametrize(
    ("name", "stem", "channels"),
    [
        ("mnasnet0_5", 16, (8, 16, 24, 48, 1280)),
        ("mnasnet0_75", 24, (16, 24, 32, 72, 1280)),
        ("mnasnet1_0", 32, (16, 24, 40, 96, 1280)),
        ("mnasnet1_3", 40, (24, 32, 56, 128, 1280)),
    ],
)
def test_level_channels(name: str, stem: int, channels: tuple[int, ...]) -> None:
    model = build_on_meta(name, features_only=True)
    assert model.stages[0][0].out_channels == stem
    assert model.level_channels == channels


def test_include_head_conv_false_ends_at_the_last_block() -> None:
    model = build_on_meta("mnasnet1_0", features_only=True, include_head_conv=False)
    assert (model.out_channels[-1], model.strides[-1], model.head_conv) == (320, 32, None)


@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride(output_stride: int) -> None:
    model = create_model("mnasnet0_5", features_only=True, output_stride=output_stride).eval()
    assert model.strides[-1] == output_stride
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64))[-1].shape[-2:] == (64 // output_stride, 64 // output_stride)
