"""Inference path and export, checked for every registered model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import assert_close_to_scale, leftover_temp_files, randomize_norm_stats
from registry_cases import MECHANICS_CASES, input_size_for

from vision_backbones import create_model
from vision_backbones.cli.export import main
from vision_backbones.deploy import fuse
from vision_backbones.deploy.formats import FeaturesWrapper, check_onnx, export_model, onnx_bytes

# Models whose features backbone cannot go through the ONNX exporter, with the reason.
ONNX_UNSUPPORTED: dict[str, str] = {}


@pytest.mark.parametrize("name", MECHANICS_CASES)
def test_fused_model_matches(name: str) -> None:
    model = randomize_norm_stats(create_model(name, features_only=True)).eval()
    fused = fuse(model)
    size = input_size_for(model)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        pairs = list(zip(fused.forward_features(x), model.forward_features(x), strict=True))
    assert pairs, "no feature maps to compare"
    for a, b in pairs:
        assert_close_to_scale(a, b)


@pytest.mark.parametrize("name", MECHANICS_CASES)
def test_onnx_features_match_onnxruntime(name: str) -> None:
    model = randomize_norm_stats(create_model(name, features_only=True)).eval()
    size = input_size_for(model)
    wrapper = FeaturesWrapper(model)
    sample = torch.randn(1, 3, size, size)
    if name in ONNX_UNSUPPORTED:
        with pytest.raises(Exception):
            check_onnx(onnx_bytes(wrapper, sample), wrapper, [sample])
        return
    data = onnx_bytes(wrapper, sample)
    # A second batch size and image size checks the dynamic axes.
    check_onnx(data, wrapper, [sample, torch.randn(2, 3, size + 32, size + 32)])


def test_fuse_folds_batch_norm() -> None:
    model = create_model("resnet18", features_only=True).eval()
    fused = fuse(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()), "the original is left as it was"


@pytest.mark.parametrize("fmt", ["onnx", "exported-program", "torchscript"])
def test_export_command_writes_checked_file(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"model.{fmt}"
    assert main(["mobilenet_v3_small", str(out), "--format", fmt, "--features", "--image-size", "64"]) == 0
    assert out.is_file() and out.stat().st_size > 0
    assert leftover_temp_files(tmp_path) == []


def test_export_checks_outputs_and_keeps_no_bad_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vision_backbones.deploy.formats as export

    def corrupt(data: bytes, *args, **kwargs) -> float:
        raise ValueError("ONNX Runtime differs from PyTorch by 1.00e+00 (allowed 1e-04)")

    monkeypatch.setattr(export, "check_onnx", corrupt)
    model = create_model("resnet18", features_only=True)
    with pytest.raises(ValueError, match="differs"):
        export_model(FeaturesWrapper(model), tmp_path / "r.onnx", fmt="onnx", image_size=64)
    assert not list(tmp_path.iterdir())


def test_a_classifier_with_fixed_size_adaptive_pooling_exports_at_its_size(tmp_path: Path) -> None:
    """AlexNet and VGG pool adaptively to 6x6 / 7x7, which the ONNX exporter cannot write for a symbolic
    size: the export keeps a dynamic batch, fixes the size and says so (it used to fail with a graph dump)."""
    import onnxruntime

    from vision_backbones.deploy.formats import onnx_size_is_dynamic

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(7), torch.nn.Flatten(), torch.nn.Linear(4 * 49, 5)
    ).eval()
    output = tmp_path / "pooled.onnx"
    with pytest.warns(UserWarning, match="fixed 44x44 input"):
        worst = export_model(model, output, fmt="onnx", image_size=44)
    assert worst < 1e-4 and not onnx_size_is_dynamic(output.read_bytes())
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": torch.randn(3, 3, 44, 44).numpy()})[0].shape == (3, 5)  # any batch
    assert onnx_size_is_dynamic(onnx_bytes(create_model("resnet18").eval(), torch.randn(1, 3, 64, 64)))
