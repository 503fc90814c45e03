"""The backbone contract, checked for every registered model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import assert_close_to_scale, randomize_norm_stats
from registry_cases import MODEL_CASES, input_size_for
from vision_backbones import Backbone, create_model


def _spatial_ok(size: int, image: int, stride: int) -> bool:
    # Padded convs give ceil(image / stride); unpadded Inception-style convs lose a few pixels.
    nominal = image / stride
    return math.ceil(nominal) >= size >= math.floor(nominal * 0.85) - 2


@pytest.mark.parametrize("name", MODEL_CASES)
def test_features_forward_backward(name: str) -> None:
    model = create_model(name, features_only=True)
    assert isinstance(model, Backbone) and model.head is None
    size = input_size_for(model)
    x = torch.randn(2, 3, size, size)
    features = model.forward_features(x)
    assert len(features) == len(model.out_channels) == len(model.strides) == len(model.level_channels)
    for feature, channels, stride in zip(features, model.out_channels, model.strides):
        assert feature.shape[:2] == (2, channels), (feature.shape, channels)
        assert _spatial_ok(feature.shape[-1], size, stride), (feature.shape, size, stride)
    assert list(model.strides) == sorted(model.strides)
    sum(f.float().mean() for f in features).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_features(x)[-1])


@pytest.mark.parametrize("name", MODEL_CASES)
def test_classifier_and_out_indices(name: str) -> None:
    model = create_model(name, num_classes=7).eval()
    size = input_size_for(model)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        assert model(x).shape == (1, 7)
        assert len(model.forward_features(x)) == len(model.level_channels)
    levels = len(model.level_channels)
    picked = (levels - 3, levels - 1)
    sub = create_model(name, features_only=True, out_indices=picked).eval()
    assert sub.out_channels == tuple(model.level_channels[i] for i in picked)
    assert sub.strides == tuple(model.level_strides[i] for i in picked)
    sub.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("head.")})
    with torch.no_grad():
        maps = sub.forward_features(x)
        full = model.forward_features(x)
    assert [m.shape[1] for m in maps] == list(sub.out_channels)
    torch.testing.assert_close(maps[-1], full[-1])


@pytest.mark.parametrize("name", MODEL_CASES)
def test_channels_last_matches(name: str) -> None:
    # Damped norms: fresh deep nets (SE-ResNet-152) amplify float32 reordering noise chaotically.
    model = randomize_norm_stats(create_model(name, features_only=True)).eval()
    size = input_size_for(model)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = model.forward_features(x)
        got = model.to(memory_format=torch.channels_last).forward_features(x.to(memory_format=torch.channels_last))
    for a, b in zip(expected, got):
        assert_close_to_scale(b, a)


@pytest.mark.parametrize("name", MODEL_CASES)
def test_frozen_stages_stay_frozen(name: str) -> None:
    model = create_model(name, features_only=True, frozen_stages=1, norm_eval=True)
    model.train()
    frozen = [model.stem, model.stages[0]]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules())
    frozen_params = {id(p) for module in frozen for p in module.parameters()}
    assert all(p.requires_grad for p in model.parameters() if id(p) not in frozen_params)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(not m.training for m in norms)


@pytest.mark.parametrize("name", MODEL_CASES)
def test_torch_export_features(name: str) -> None:
    model = create_model(name, features_only=True).eval()
    size = input_size_for(model)
    x = torch.randn(1, 3, size, size)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        expected = model(x)
    assert_close_to_scale(program.module()(x), expected)


# Models TorchScript cannot compile, with the reason (checked: each must really fail).
TORCHSCRIPT_UNSUPPORTED: dict[str, str] = {}


@pytest.mark.parametrize("name", MODEL_CASES)
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
        for a, b in zip(scripted.forward_features(x), model.forward_features(x)):
            assert_close_to_scale(a, b, 1e-5)
