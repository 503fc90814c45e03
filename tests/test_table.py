"""Parameters and FLOPs against the published tables (published.py)."""

from __future__ import annotations

import pytest

from vision_backbones import list_models, model_info
from vision_backbones.published import PUBLISHED


def test_every_published_name_is_registered() -> None:
    missing = sorted(set(PUBLISHED) - set(list_models()))
    assert not missing, f"published figures for unregistered models: {missing}"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_params_and_flops_match_published(name: str) -> None:
    published = PUBLISHED[name]
    info = model_info(name)
    if published.params_m is not None:
        assert abs(info["params"] / 1e6 - published.params_m) <= 0.01, (info["params"], published.params_m)
    if published.gflops is not None:
        gflops = info["flops"] / 1e9
        tolerance = max(0.01 * published.gflops, 0.5 * 10 ** -published.gflops_decimals)
        assert abs(gflops - published.gflops) <= tolerance, (gflops, published.gflops)


def test_flop_convention_on_torchvision_resnet50() -> None:
    """The convention itself, on torchvision's own ResNet-50 without its head: 8.22 G."""
    import torch
    import torchvision

    from vision_backbones.flops import count_flops

    with torch.device("meta"):
        reference = torchvision.models.resnet50()
    reference.avgpool, reference.fc = torch.nn.Identity(), torch.nn.Identity()
    flops = count_flops(reference, torch.empty(1, 3, 224, 224, device="meta"))
    assert round(flops.total / 1e9, 2) == 8.22
    assert round(flops.macs / 1e9, 2) == 4.09
