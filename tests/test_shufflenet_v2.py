"""ShuffleNet V2: the unit's channel split keeps half its input untouched."""

from __future__ import annotations

import pytest
import torch

from vision_backbones import create_model
from vision_backbones.models.shufflenet_v2 import ShuffleV2Block


def test_basic_unit_passes_half_the_channels_through() -> None:
    block = ShuffleV2Block(8, 8, stride=1).eval()
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        out = block(x)
    # cat(first half, branch(second half)) shuffled with 2 groups: the first half lands on even channels.
    torch.testing.assert_close(out[:, 0::2], x[:, :4], rtol=0, atol=0)


def test_downsampling_unit_doubles_channels() -> None:
    block = ShuffleV2Block(24, 48, stride=2).eval()
    with torch.no_grad():
        assert block(torch.randn(1, 24, 8, 8)).shape == (1, 48, 4, 4)


def test_conv5_is_the_head_conv() -> None:
    full = create_model("shufflenet_v2_x1_0", features_only=True)
    assert full.level_channels == (24, 116, 232, 1024)  # conv5 ends the last level by default
    assert any(k.startswith("head_conv.") for k in full.state_dict())
    bare = create_model("shufflenet_v2_x1_0", features_only=True, include_head_conv=False).eval()
    assert bare.level_channels == (24, 116, 232, 464) and bare.strides == (4, 8, 16, 32)
    assert not any(k.startswith("head_conv.") for k in bare.state_dict())  # pruned: no classifier to feed
    with torch.no_grad():
        assert bare(torch.randn(1, 3, 64, 64))[-1].shape == (1, 464, 2, 2)
    classifier = create_model("shufflenet_v2_x1_0", include_head_conv=False)
    assert classifier.state_dict().keys() == create_model("shufflenet_v2_x1_0").state_dict().keys()
    assert classifier.num_features == 1024 and classifier.level_channels[-1] == 464


def test_output_stride_dilates_both_branches() -> None:
    model = create_model("shufflenet_v2_x0_5", features_only=True, output_stride=8)
    assert model.strides == (4, 8, 8, 8)
    first = model.stages[2].blocks[0]  # the block that used to downsample to stride 16
    dilations = [m.dilation for m in first.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert dilations == [(1, 1), (1, 1)]  # each branch's former strided conv keeps the previous dilation
    later = [
        m.dilation
        for m in model.stages[2].blocks[1].modules()
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    assert later == [(2, 2)]
    assert model(torch.randn(1, 3, 64, 64))[-1].shape[-1] == 8


@pytest.mark.parametrize("stride", [1, 2])
def test_opened_branches_still_fire_hooks_and_match_the_scripted_block(stride: int) -> None:
    # The eager block calls its branches' layers itself (run_chain); a hook on a branch, or on a
    # ConvNormAct inside it, must still fire, and TorchScript (which calls the modules) must agree.

    torch.manual_seed(0)
    block = ShuffleV2Block(24 if stride == 2 else 48, 48, stride=stride).eval()
    x = torch.randn(2, block.branch[0].in_channels * (1 if stride == 2 else 2), 8, 8)
    seen: list[str] = []
    handles = [
        block.branch.register_forward_hook(lambda *_: seen.append("branch")),
        block.branch[1].register_forward_hook(lambda *_: seen.append("depthwise")),
    ]
    with torch.no_grad():
        hooked = block(x)
    for handle in handles:
        handle.remove()
    assert seen == ["depthwise", "branch"]
    with torch.no_grad():
        plain, scripted = block(x), torch.jit.script(block)(x)
    torch.testing.assert_close(plain, hooked, rtol=0, atol=0)
    torch.testing.assert_close(scripted, plain, rtol=0, atol=0)
