"""Every torchvision/timm reference converts to our model with equal logits."""

from __future__ import annotations

import pytest
import torch
from conftest import build_reference
from registry_cases import input_size_for

from vision_backbones.convert import from_timm, from_torchvision, list_references

BIG_REFERENCES = {
    "convnext_large",
    "convnext_base",
    "resnext101_32x8d",
    "wide_resnet101_2",
    "efficientnet_b7",
    "legacy_senet154",
    "nasnetalarge",
    "vgg19_bn",
    "vgg19",
    "regnet_y_16gf",
    "regnet_x_32gf",
    "regnet_y_32gf",
}


def _cases() -> list:
    cases = []
    for reference in list_references():
        marks = [pytest.mark.giant] if reference.name in BIG_REFERENCES else []
        cases.append(
            pytest.param(reference.library, reference.name, marks=marks, id=f"{reference.library}:{reference.name}")
        )
    return cases


@pytest.mark.parametrize(("library", "name"), _cases())
def test_logits_equal_reference(library: str, name: str) -> None:
    reference = build_reference(library, name)
    convert = from_torchvision if library == "torchvision" else from_timm
    ours = convert(name, reference.state_dict())
    size = input_size_for(ours)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = reference(x)
        got = ours(x)
        features = ours.forward_features(x)
    assert got.shape == expected.shape == (2, 1000)
    assert (got - expected).abs().max().item() <= 1e-4
    assert [f.shape[1] for f in features] == list(ours.out_channels)
