"""ShuffleNet v1: the channel shuffle, the variant table and the paper's complexity figures."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vision_backbones import create_model, list_models
from vision_backbones.layers import channel_shuffle
from vision_backbones.registry import build_on_meta

# Mult-adds (millions) at 224x224, whole network: Table 1 (1x, every g) and Table 5.
PAPER_MFLOPS = {
    "shufflenet_v1_g1_x1_0": 143,
    "shufflenet_v1_g2_x1_0": 140,
    "shufflenet_v1_g3_x1_0": 137,
    "shufflenet_v1_g4_x1_0": 133,
    "shufflenet_v1_g8_x1_0": 137,
    "shufflenet_v1_g3_x2_0": 524,
    "shufflenet_v1_g3_x1_5": 292,
    "shufflenet_v1_g4_x0_5": 38,
}


def test_channel_shuffle_interleaves_groups() -> None:
    # 6 channels in 3 groups [0 1 | 2 3 | 4 5] -> one from each group in turn: [0 2 4 1 3 5].
    x = torch.arange(6.0).view(1, 6, 1, 1).expand(2, 6, 3, 3)
    out = channel_shuffle(x, 3)
    assert out[0, :, 0, 0].tolist() == [0, 2, 4, 1, 3, 5]
    assert torch.equal(out[1], out[0])
    # Shuffling with g groups is undone by shuffling with C/g groups.
    y = torch.randn(1, 24, 2, 2)
    assert torch.equal(channel_shuffle(channel_shuffle(y, 3), 8), y)


def test_variant_table_covers_groups_and_scales() -> None:
    names = list_models("shufflenet_v1_*")
    assert len(names) == 20
    assert "shufflenet_v1_g3_x1_0" in names and "shufflenet_v1_g8_x0_5" in names


@pytest.mark.parametrize("name", sorted(PAPER_MFLOPS))
def test_complexity_matches_paper(name: str) -> None:
    model = build_on_meta(name).eval()  # with the classifier: the paper counts the whole network
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    macs = counter.get_total_flops() / 2 / 1e6  # the counter reports 2 FLOPs per mult-add
    assert abs(macs - PAPER_MFLOPS[name]) <= 0.02 * PAPER_MFLOPS[name], (macs, PAPER_MFLOPS[name])


def test_first_pointwise_conv_is_dense_and_groups_are_checked() -> None:
    model = build_on_meta("shufflenet_v1_g3_x1_0", features_only=True)
    first, second = model.stages[1][0], model.stages[1][1]
    assert first.conv1.conv.groups == 1 and second.conv1.conv.groups == 3
    with pytest.raises(ValueError, match="groups=3 must divide"):
        create_model("shufflenet_v1_g3_x1_0", stem_channels=25)


def test_width_multiplier_scales_table1() -> None:
    half = build_on_meta("shufflenet_v1_g3_x1_0", features_only=True, width_multiplier=0.5, stem_channels=12)
    reference = build_on_meta("shufflenet_v1_g3_x0_5", features_only=True)
    assert half.level_channels == reference.level_channels == (12, 120, 240, 480)
    with pytest.raises(ValueError, match="width_multiplier must be a finite number > 0"):
        create_model("shufflenet_v1_g3_x1_0", width_multiplier=0.0)


@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride_dilates_the_last_stages(output_stride: int) -> None:
    model = create_model("shufflenet_v1_g3_x0_5", features_only=True, output_stride=output_stride).eval()
    assert model.strides == tuple(min(s, output_stride) for s in (4, 8, 16, 32))
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64))[-1].shape[-1] == 64 // output_stride
    depthwise = [m for m in model.stages[-1].modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1]
    dilations = [conv.dilation[0] for conv in depthwise]  # the strided one keeps the previous dilation
    assert dilations[0] == 32 // output_stride // 2 and set(dilations[1:]) == {32 // output_stride}
