"""Pre-activation ResNet: identity shortcuts are pure identities; final/stem norm options."""

import pytest
import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.layers import DropPath, drop_path_rates
from vision_backbones.models.preact_resnet import PreActBasicBlock, PreActBottleneck


def test_block_with_zero_branch_is_identity() -> None:
    # Nothing follows the sum: with its last conv at zero a block passes its input through unchanged,
    # negative values included (a post-activation block would ReLU them away).
    x = torch.randn(2, 16, 8, 8)
    for block in (PreActBasicBlock(16, 16), PreActBottleneck(16, 4, 16)):
        last = block.conv2 if isinstance(block, PreActBasicBlock) else block.conv3
        nn.init.zeros_(last.weight)
        torch.testing.assert_close(block.eval()(x), x)


def test_final_and_stem_norm_options() -> None:
    default = create_model("preact_resnet18", features_only=True)
    assert hasattr(default.stages[-1], "norm") and not hasattr(default.stages[0], "norm")
    variant = create_model("preact_resnet18", features_only=True, final_norm=False, stem_norm=True)
    assert not hasattr(variant.stages[-1], "norm") and hasattr(variant.stages[0], "norm")
    with torch.no_grad():
        last = default.eval().forward_features(torch.randn(1, 3, 64, 64))[-1]
    assert last.min() >= 0  # the final norm + ReLU closes the last level


@pytest.mark.parametrize("name", ["preact_resnet18", "preact_resnet50"])
@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride(name: str, output_stride: int) -> None:
    tiny = {"depths": (1, 1, 1, 1), "widths": (8, 8, 8, 8), "stem_channels": 8}
    plain = create_model(name, features_only=True, **tiny)
    model = create_model(name, features_only=True, output_stride=output_stride, **tiny).eval()
    assert model.strides == tuple(min(s, output_stride) for s in (2, 4, 8, 16, 32))
    model.load_state_dict(plain.state_dict())  # dilation changes no parameter
    with torch.no_grad():
        last = model(torch.randn(1, 3, 64, 64))[-1]
    assert last.shape[-2:] == (64 // output_stride, 64 // output_stride)


def test_drop_path_follows_the_one_schedule() -> None:
    model = create_model("preact_resnet18", features_only=True, drop_path_rate=0.3)
    blocks = [m for m in model.modules() if isinstance(m, PreActBasicBlock)]
    rates = [b.drop_path.p if isinstance(b.drop_path, DropPath) else 0.0 for b in blocks]
    assert rates == pytest.approx(drop_path_rates(0.3, len(blocks)))
