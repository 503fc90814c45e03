"""Bad input gets one clear line naming the bad value and what was expected."""

from __future__ import annotations

import pytest
import torch

from vision_backbones import create_model, list_models, model_info


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    return create_model("resnet18", features_only=True).eval()


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'resnet05'.*'resnet50'"):
        create_model("resnet05")


def test_unknown_override_names_valid_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown override 'widht'.*expected one of"):
        create_model("resnet18", widht=2)


def test_list_models_wildcards() -> None:
    assert "resnet50" in list_models("resnet*")
    assert all(name.startswith("efficientnet_b") for name in list_models("efficientnet_b?"))
    assert list_models("no_such_*") == []


@pytest.mark.parametrize(
    ("shape", "dtype", "message"),
    [
        ((1, 1, 64, 64), torch.float32, r"expected 3 input channels, got 1"),
        ((1, 3, 16, 16), torch.float32, r"input 16x16 is smaller than this network takes; expected .* >= 32"),
        ((1, 3, 64, 64), torch.uint8, r"expected a floating-point tensor, got dtype torch.uint8"),
        ((3, 64, 64), torch.float32, r"expected a 4-D batch"),
    ],
)
def test_bad_input(resnet: torch.nn.Module, shape: tuple, dtype: torch.dtype, message: str) -> None:
    x = torch.zeros(shape, dtype=dtype)
    with pytest.raises(ValueError, match=message):
        resnet(x)
    with pytest.raises(ValueError, match=message):
        resnet.forward_features(x)


def test_in_channels_option() -> None:
    model = create_model("resnet18", features_only=True, in_channels=1).eval()
    assert len(model.forward_features(torch.randn(1, 1, 64, 64))) == 5


@pytest.mark.parametrize(
    ("out_indices", "message"),
    [
        ((0, 5), r"\[5\] out of range; this model has levels 0..4"),
        ((1, 1), r"duplicates"),
        ((3, 1), r"not sorted"),
        ((), r"empty"),
    ],
)
def test_bad_out_indices(out_indices: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model("resnet18", features_only=True, out_indices=out_indices)


def test_negative_out_indices_count_from_the_end() -> None:
    model = create_model("resnet18", features_only=True, out_indices=(-2, -1))
    assert model.strides == (16, 32)


def test_bad_frozen_stages() -> None:
    with pytest.raises(ValueError, match=r"frozen_stages must be an int in -1..5, got 9"):
        create_model("resnet18", frozen_stages=9)


def test_model_info_needs_no_weights() -> None:
    info = model_info("resnet50")
    assert info["strides"] == (2, 4, 8, 16, 32)
    assert info["out_channels"] == (64, 256, 512, 1024, 2048)
