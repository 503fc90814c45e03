"""MnasNet: width multiplier rounding as torchvision's (multiples of 8, head conv not scaled)."""

from __future__ import annotations

import pytest

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
