"""SENet: the SENet-154 modifications and the SE-ResNet stride placement."""

from __future__ import annotations

import pytest
import torch
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


TINY = {"depths": (1, 1, 1, 2), "widths": (32, 32, 32, 32)}  # two blocks: one after the stride


@pytest.mark.parametrize("name", ["seresnet50", "seresnext50_32x4d", "senet154"])
@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride(name: str, output_stride: int) -> None:
    # SE-ResNet strides in its 1x1 conv, SE-ResNeXt in its 3x3, SENet-154 also in its 3x3 shortcut.
    plain = create_model(name, features_only=True, **TINY)
    model = create_model(name, features_only=True, output_stride=output_stride, **TINY).eval()
    assert model.strides == tuple(min(s, output_stride) for s in (2, 4, 8, 16, 32))
    model.load_state_dict(plain.state_dict())  # same weights: dilation changes no parameter
    with torch.no_grad():
        last = model(torch.randn(1, 3, 64, 64))[-1]
    assert last.shape == (1, 128, 64 // output_stride, 64 // output_stride)
    dilations = {m.dilation for m in model.stages[-1].modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)}
    assert max(dilations) == (32 // output_stride, 32 // output_stride)
