"""Xception: unpadded stem, the three flows' shapes at 299 px and the block layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.registry import build_on_meta


def test_feature_sizes_at_299() -> None:
    model = build_on_meta("xception", features_only=True)
    features = model.forward_features(torch.empty(1, 3, 299, 299, device="meta"))
    # 299 -> 149 -> 147 (valid convs), then halved by each max pool (paper Fig. 5: 19x19x728 middle flow).
    shapes = [tuple(f.shape[1:]) for f in features]
    assert shapes == [(64, 147, 147), (128, 74, 74), (256, 37, 37), (728, 19, 19), (2048, 10, 10)]


def test_block_layout() -> None:
    model = build_on_meta("xception")
    entry1, middle = model.stages[1][0], model.stages[3][1]
    assert isinstance(entry1.units[0].pre_act, nn.Identity)  # follows the stem's ReLU
    assert isinstance(middle.units[0].pre_act, nn.ReLU) and not middle.units[0].pre_act.inplace  # shortcut reads x
    assert isinstance(middle.shortcut, nn.Identity) and len(middle.units) == 3
    assert len(model.stages[3]) == 1 + 8  # last entry block + middle flow
    assert model.head.dropout.p == 0.5


@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride(output_stride: int) -> None:
    tiny = {
        "stem_channels": (8, 8),
        "entry_channels": (8, 16, 16),
        "middle_blocks": 1,
        "exit_channels": (16, 16),
        "head_channels": (16,),
    }
    plain = create_model("xception", features_only=True, **tiny)
    model = create_model("xception", features_only=True, output_stride=output_stride, **tiny).eval()
    assert model.strides == tuple(min(s, output_stride) for s in (2, 4, 8, 16, 32))
    model.load_state_dict(plain.state_dict())  # dilation changes no parameter
    with torch.no_grad():
        last = model(torch.randn(1, 3, 96, 96))[-1]
    assert last.shape == (1, 16, 96 // output_stride, 96 // output_stride)
    # The separable convs after the exit block's pool see the dilation it gave up.
    head_unit = model.stages[-1][-1].conv.depthwise
    assert head_unit.dilation == (32 // output_stride, 32 // output_stride)
