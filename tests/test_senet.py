"""SENet: the SENet-154 modifications and the SE-ResNet stride placement."""

from __future__ import annotations

import pytest
from torch import nn

from vision_backbones import create_model
from vision_backbones.registry import build_on_meta


def test_senet154_options() -> None:
    model = build_on_meta("senet154")
    stem = model.stages[0]
    assert [m.conv.kernel_size for m in stem] == [(3, 3)] * 3 and [m.out_channels for m in stem] == [64, 64, 128]
    first, strided = model.stages[1].blocks[0], model.stages[2].blocks[0]
    # First 1x1 halved: 128 -> 256 (64 groups) -> 256 in stage 1.
    assert (first.conv1.out_channels, first.conv2.out_channels, first.conv2.conv.groups) == (128, 256, 64)
    # 3x3 projection only where the block strides; stage 1's projection stays 1x1.
    assert first.shortcut.conv.kernel_size == (1, 1) and strided.shortcut.conv.kernel_size == (3, 3)
    assert model.head.dropout.p == 0.2
    assert first.se.reduce.out_channels == 256 // 16


def test_stride_placement() -> None:
    resnet_block = build_on_meta("seresnet50").stages[2].blocks[0]
    resnext_block = build_on_meta("seresnext50_32x4d").stages[2].blocks[0]
    assert resnet_block.conv1.stride == 2 and resnet_block.conv2.stride == 1
    assert resnext_block.conv1.stride == 1 and resnext_block.conv2.stride == 2
    assert isinstance(build_on_meta("seresnet50").stages[1].pool, nn.MaxPool2d)


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="downsample_kernel_size"):
        create_model("seresnet50", downsample_kernel_size=5)
