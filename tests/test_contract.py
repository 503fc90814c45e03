"""The backbone contract, checked for every registered model."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close_to_scale, randomize_norm_stats
from registry_cases import MECHANICS_CASES, MODEL_CASES, input_size_for
from torch import nn

from vision_backbones import Backbone, create_model
from vision_backbones.registry import build_on_meta


@pytest.mark.parametrize("name", MODEL_CASES)
def test_features_forward_backward(name: str) -> None:
    model = create_model(name, features_only=True)
    assert isinstance(model, Backbone) and model.head is None
    size = input_size_for(model)
    x = torch.randn(2, 3, size, size)
    features = model.forward_features(x)
    assert len(features) == len(model.out_channels) == len(model.strides) == len(model.level_channels)
    for feature, channels in zip(features, model.out_channels, strict=True):
        assert feature.shape[:2] == (2, channels), (feature.shape, channels)
    assert list(model.strides) == sorted(model.strides)
    sum(f.float().mean() for f in features).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    model.eval()
    with torch.no_grad():
        for a, b in zip(model(x), model.forward_features(x), strict=True):  # forward is forward_features
            torch.testing.assert_close(a, b)


def exact_stride_errors(model: Backbone) -> list[str]:
    """Levels whose declared stride disagrees with the measured one: two inputs 2 x the deepest
    stride apart must change each level's size by exactly that change over its stride."""
    base = -(-max(64, model.min_input_size) // 32) * 32
    step = 2 * max(model.level_strides)
    with torch.no_grad():
        small = model.forward_features(torch.empty(1, model.in_channels, base, base + step, device="meta"))
        large = model.forward_features(torch.empty(1, model.in_channels, base + step, base + 2 * step, device="meta"))
    errors = []
    for a, b, stride, channels in zip(small, large, model.strides, model.out_channels, strict=True):
        if (b.shape[-1] - a.shape[-1]) * stride != step or (b.shape[-2] - a.shape[-2]) * stride != step:
            errors.append(f"stride {stride}: {tuple(a.shape)} -> {tuple(b.shape)}")
        if a.shape[1] != channels:
            errors.append(f"channels {channels}: got {a.shape[1]}")
    return errors


@pytest.mark.parametrize("name", MODEL_CASES)
def test_strides_exact(name: str) -> None:
    model = build_on_meta(name, features_only=True).eval()
    assert exact_stride_errors(model) == []
    assert model.level_names == tuple(f"stride{s}" for s in model.level_strides)


def test_forged_stride_fails_the_check() -> None:
    model = build_on_meta("vovnet39", features_only=True).eval()
    model.level_strides = (2, 4, 8, 8, 16)
    assert exact_stride_errors(model)


@pytest.mark.parametrize("name", MECHANICS_CASES)
def test_fx_symbolic_trace(name: str) -> None:
    model = create_model(name, features_only=True).eval()
    graph = torch.fx.symbolic_trace(model)
    size = input_size_for(model)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        for a, b in zip(graph(x), model(x), strict=True):
            assert_close_to_scale(a, b, 1e-5)


@pytest.mark.parametrize("name", MECHANICS_CASES)
def test_classifier_and_out_indices(name: str) -> None:
    model = create_model(name, num_classes=7).eval()
    size = input_size_for(model)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        assert model(x).shape == (1, 7)
        assert len(model.forward_features(x)) == len(model.level_channels)
    levels = len(model.level_channels)
    picked = (levels - 3, levels - 2)  # drops the deepest level: its stages are not kept
    sub = create_model(name, features_only=True, out_indices=picked).eval()
    assert sub.out_channels == tuple(model.level_channels[i] for i in picked)
    assert sub.strides == tuple(model.level_strides[i] for i in picked)
    by_stride = create_model(name, features_only=True, out_strides=sub.strides)
    assert by_stride.out_indices == picked
    kept = {k: v for k, v in model.state_dict().items() if k in sub.state_dict()}
    sub.load_state_dict(kept)  # strict: the pruned model is exactly the kept prefix of the full one
    assert sum(p.numel() for p in sub.parameters()) == sum(v.numel() for k, v in model.named_parameters() if k in kept)
    assert sum(p.numel() for p in sub.parameters()) < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        maps = sub(x)
        full = model.forward_features(x)
    assert [m.shape[1] for m in maps] == list(sub.out_channels)
    torch.testing.assert_close(maps[-1], full[picked[-1]])
    info = sub.feature_info
    assert info.channels() == list(sub.out_channels) and info.reduction() == list(sub.strides)
    assert {k: (v.channels, v.stride) for k, v in sub.output_shape().items()} == {
        n: (c, s) for n, c, s in zip(sub.out_names, sub.out_channels, sub.strides, strict=True)
    }


@pytest.mark.parametrize("name", MECHANICS_CASES)
def test_channels_last_matches(name: str) -> None:
    # Damped norms: fresh deep nets (SE-ResNet-152) amplify float32 reordering noise chaotically.
    model = randomize_norm_stats(create_model(name, features_only=True)).eval()
    size = input_size_for(model)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = model.forward_features(x)
        got = model.to(memory_format=torch.channels_last).forward_features(x.to(memory_format=torch.channels_last))
    pairs = list(zip(expected, got, strict=True))
    assert pairs, "no feature maps to compare"
    for a, b in pairs:
        assert_close_to_scale(b, a)


@pytest.mark.parametrize("name", MODEL_CASES)
def test_frozen_stages_stay_frozen(name: str) -> None:
    model = create_model(name, features_only=True, frozen_stages=1, norm_eval=True)
    model.train()
    by_stride = create_model(name, features_only=True, freeze_until_stride=model.level_strides[0])
    assert by_stride.frozen_stages == 1
    frozen = [model.stem, model.stages[0]]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules())
    frozen_params = {id(p) for module in frozen for p in module.parameters()}
    assert all(p.requires_grad for p in model.parameters() if id(p) not in frozen_params)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(not m.training for m in norms)


@pytest.mark.parametrize("name", MECHANICS_CASES)
def test_torch_export_features(name: str) -> None:
    model = create_model(name, features_only=True).eval()
    size = input_size_for(model)
    x = torch.randn(1, 3, size, size)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        expected = model(x)
    got = program.module()(x)
    assert len(got) == len(expected) > 0, "no feature maps to compare"
    for a, b in zip(got, expected, strict=True):
        assert_close_to_scale(a, b)


# Models TorchScript cannot compile, with the reason (checked: each must really fail).
TORCHSCRIPT_UNSUPPORTED: dict[str, str] = {}


@pytest.mark.parametrize("name", MECHANICS_CASES)
def test_torchscript_features(name: str) -> None:
    model = create_model(name, features_only=True).eval()
    if name in TORCHSCRIPT_UNSUPPORTED:
        with pytest.raises(Exception):
            torch.jit.script(model)
        return
    scripted = torch.jit.script(model)
    size = input_size_for(model)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        pairs = list(zip(scripted.forward_features(x), model.forward_features(x), strict=True))
    assert pairs, "no feature maps to compare"
    for a, b in pairs:
        assert_close_to_scale(a, b, 1e-5)
