"""What is special to the ResNet family; registry-wide tests cover shapes, export, FLOPs and conversions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.layers import DropPath
from vision_backbones.models.resnet import BasicBlock, Bottleneck, ResNetConfig
from vision_backbones.registry import build_on_meta


def _blocks(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]


@pytest.mark.parametrize(
    ("name", "groups", "mid_channels"),
    [("resnet50", 1, 64), ("resnext50_32x4d", 32, 128), ("resnext101_32x8d", 32, 256), ("wide_resnet50_2", 1, 128)],
)
def test_bottleneck_width_and_cardinality(name: str, groups: int, mid_channels: int) -> None:
    # The 3x3 of the first stage: int(64 * width_per_group / 64) * groups channels in `groups` paths.
    block = build_on_meta(name, features_only=True).stages[1].blocks[0]
    conv = block.conv2.conv
    assert (conv.groups, conv.in_channels, conv.out_channels) == (groups, mid_channels, mid_channels)
    assert block.conv3.conv.out_channels == 256  # the output width does not change


def test_basic_block_rejects_groups() -> None:
    with pytest.raises(ValueError, match="groups=1 and width_per_group=64"):
        ResNetConfig("basic", (2, 2, 2, 2), groups=32)
    with pytest.raises(ValueError, match="block must be"):
        ResNetConfig("bottle", (2, 2, 2, 2))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_zero_init_residual_makes_blocks_identity(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, features_only=True, zero_init_residual=True).eval()
    for block in _blocks(model):
        last = block.conv3 if isinstance(block, Bottleneck) else block.conv2
        assert torch.all(last.norm.weight == 0)
    # With the branch at zero, a block computes relu(shortcut(x)).
    block = model.stages[2].blocks[1]
    x = torch.randn(1, block.conv1.in_channels, 8, 8)
    assert torch.equal(block(x), torch.relu(x))
    default = create_model(name, features_only=True)
    assert all(torch.all(b.conv1.norm.weight == 1) for b in _blocks(default))


def test_frozen_stages_stay_frozen_after_train() -> None:
    model = create_model("resnet18", features_only=True, frozen_stages=2).train()
    for index, stage in enumerate(model.stages):
        frozen = index < 2
        assert all(p.requires_grad != frozen for p in stage.parameters())
        assert all(m.training != frozen for m in stage.modules() if isinstance(m, nn.BatchNorm2d))
    x = torch.randn(2, 3, 64, 64)
    mean_before = model.stages[1].blocks[0].conv1.norm.running_mean.clone()
    model(x)
    assert torch.equal(model.stages[1].blocks[0].conv1.norm.running_mean, mean_before)


def test_drop_path_grows_linearly_over_blocks() -> None:
    model = build_on_meta("resnet18", features_only=True, drop_path_rate=0.2)
    rates = [b.drop_path.p if isinstance(b.drop_path, DropPath) else 0.0 for b in _blocks(model)]
    assert rates == pytest.approx([0.2 * i / 7 for i in range(8)])
