"""ShuffleNet V2: the unit's channel split keeps half its input untouched."""

from __future__ import annotations

import torch

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
