"""What is special to ConvNeXt; registry-wide tests cover shapes, export, freezing and FX."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close_to_scale, build_reference
from torch import nn

from vision_backbones import create_model, model_info
from vision_backbones.convert import from_torchvision
from vision_backbones.layers import DropPath, LayerNorm2d
from vision_backbones.models.convnext import VARIANTS, CNBlock, ConvNeXtConfig
from vision_backbones.published import published_for
from vision_backbones.registry import build_on_meta

NAMES = ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large")


def randomize_layer_norms_and_scales(model: nn.Module, seed: int = 2) -> nn.Module:
    """Layer norm affines and layer scales away from 1/0 and 1e-6.

    With layer scale at its 1e-6 init every block is the identity to within 1e-6, so a mis-mapped
    block weight would never show in the logits; gains of 0.1-0.3 make every block count.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("layer_scale"):
                param.copy_(torch.rand(param.shape, generator=generator) * 0.2 + 0.1)
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) * 0.5 + 0.75)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("convnext_tiny", 64),
        ("convnext_small", 32),
        pytest.param("convnext_base", 32, marks=pytest.mark.giant),
        pytest.param("convnext_large", 32, marks=pytest.mark.giant),
    ],
)
def test_logits_equal_torchvision(name: str, size: int) -> None:
    reference = randomize_layer_norms_and_scales(build_reference("torchvision", name))
    ours = from_torchvision(name, reference.state_dict())
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = reference(x)
        got = ours(x)
        # The same weights reach every level: stage k's output is torchvision's features[2k+1].
        maps = ours.forward_features(x)
        stem_and_stages = [reference.features[: 2 * k + 2](x) for k in range(4)]
    assert got.shape == expected.shape == (2, 1000)
    assert_close_to_scale(got, expected, 1e-4)
    for ours_map, reference_map in zip(maps, stem_and_stages, strict=True):
        assert_close_to_scale(ours_map, reference_map, 1e-4)


def test_converted_features_model() -> None:
    reference = build_reference("torchvision", "convnext_tiny")
    model = from_torchvision("convnext_tiny", reference.state_dict(), features_only=True, out_strides=(8, 16))
    assert model.out_channels == (192, 384) and model.strides == (8, 16)
    assert len(model.stages) == 3  # stride-32 stage pruned
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = model(x)
        assert_close_to_scale(maps[-1], reference.features[:6](x))


@pytest.mark.parametrize("name", NAMES)
def test_levels_and_published_figures(name: str) -> None:
    model = build_on_meta(name, features_only=True)
    assert model.level_channels == VARIANTS[name].widths
    assert model.level_strides == (4, 8, 16, 32)
    assert model.level_names == ("stride4", "stride8", "stride16", "stride32")
    assert isinstance(model.stem.norm, LayerNorm2d) and model.stem.conv.stride == (4, 4)
    info = model_info(name)
    published = published_for(name)
    assert round(info["params"] / 1e6, 2) == published.params_m
    # torchvision's GFLOPS are multiply-adds of the whole model; ours 2 x MACs of the backbone.
    assert abs(info["flops_2x_macs"] / 1e9 - published.gflops) <= 0.01 * published.gflops


def test_full_parameter_count_equals_torchvision() -> None:
    import torchvision

    meta = torchvision.models.ConvNeXt_Tiny_Weights.IMAGENET1K_V1.meta
    assert sum(p.numel() for p in build_on_meta("convnext_tiny").parameters()) == meta["num_params"]


def test_block_starts_near_identity_and_layer_scale_can_be_off() -> None:
    block = CNBlock(16, layer_scale_init=1e-6).eval()
    x = torch.randn(2, 16, 8, 8)
    assert (block(x) - x).abs().max().item() < 1e-4
    assert torch.all(block.layer_scale == 1e-6) and block.layer_scale.shape == (16, 1, 1)
    plain = create_model("convnext_tiny", features_only=True, layer_scale_init=None)
    assert not any(name.endswith("layer_scale") for name, _ in plain.named_parameters())


def test_drop_path_schedule_is_torchvisions() -> None:
    import torchvision

    model = build_on_meta("convnext_tiny", features_only=True)
    blocks = [m for m in model.modules() if isinstance(m, CNBlock)]
    ours = [b.drop_path.p if isinstance(b.drop_path, DropPath) else 0.0 for b in blocks]
    with torch.device("meta"):
        reference = torchvision.models.convnext_tiny()
    theirs = [m.p for m in reference.modules() if type(m).__name__ == "StochasticDepth"]
    assert ours == pytest.approx(theirs) and ours[-1] == pytest.approx(0.1)


def test_head_pre_logits_and_reset() -> None:
    model = create_model("convnext_tiny", num_classes=10, drop_rate=0.2).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x)[-1], pre_logits=True)
    assert pooled.shape == (1, 768)
    assert model.get_classifier() is model.head.fc
    model.reset_classifier(3)
    with torch.no_grad():
        assert model(x).shape == (1, 3)


def test_output_stride_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="does not support dilation"):
        create_model("convnext_tiny", output_stride=16)


def test_config_errors_are_one_line() -> None:
    with pytest.raises(ValueError, match="widths must be 3 ints >= 1"):
        ConvNeXtConfig((3, 3, 9), (96, 192, 384, 768))
    with pytest.raises(ValueError, match="layer_scale_init"):
        ConvNeXtConfig((3, 3, 9, 3), layer_scale_init=0.0)
    with pytest.raises(ValueError, match="unknown override 'dims'"):
        create_model("convnext_tiny", dims=(64, 128, 256, 512))
