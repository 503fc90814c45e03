"""fp32 / bf16 / int8 export for ONNX Runtime, OpenVINO and torch: every path checked before it is written."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from vision_backbones import create_model
from vision_backbones.cli.export import main
from vision_backbones.deploy import precision as precision_module
from vision_backbones.deploy.calibration import load_images
from vision_backbones.deploy.checked_export import export_checked
from vision_backbones.deploy.precision import compare_outputs
from vision_backbones.deploy.runtimes import build, load

SIZE = 32
NORMALIZATION = {"resize_size": SIZE, "crop_size": SIZE, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, 2-thread kernels wait on descheduled threads (10x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(num_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(
        "resnet18", depths=(1, 1, 1, 1), widths=(8, 8, 16, 16), stem_channels=8, num_classes=num_classes
    ).eval()


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("calibration")
    for label in range(3):
        (root / f"class{label}").mkdir()
        for i in range(4):
            _image(10 * label + i).save(root / f"class{label}" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def calibration(image_folder: Path):
    return load_images(image_folder, **NORMALIZATION)


PATHS = [
    ("fp32", "onnxruntime", {}),
    ("fp32", "openvino", {"static_batch": 4}),  # dynamic shapes: the bf16 and int8 OpenVINO cases
    ("fp32", "torch", {"compile": False}),
    ("bf16", "openvino", {}),
    ("bf16", "torch", {"compile": False}),
    ("int8", "onnxruntime", {}),
    # int8 / openvino (NNCF): built, checked and timed in test_auto_keeps_the_fastest_passing_runtime
]
# bf16 is refused by design on a CPU that would only emulate it (test_bf16_refused_on_a_cpu_without_bf16)
NEEDS_NATIVE_BF16 = pytest.mark.skipif(
    not precision_module.has_native_bf16(),
    reason=f"this CPU has none of {', '.join(precision_module.BF16_FLAGS)}: bf16 export is refused here by design",
)


def _path_param(precision: str, runtime: str, options: dict) -> Any:
    marks = [NEEDS_NATIVE_BF16] if precision == "bf16" else []
    name = f"{precision}-{runtime}{'-static' if options.get('static_batch') else ''}"
    return pytest.param(precision, runtime, options, id=name, marks=marks)


@pytest.mark.parametrize(("precision", "runtime", "options"), [_path_param(*path) for path in PATHS])
def test_export_path_writes_checked_artefact(
    tmp_path: Path, calibration, precision: str, runtime: str, options: dict
) -> None:
    model = tiny_model()
    suffix = {"onnxruntime": ".onnx", "openvino": ".xml", "torch": ".pt2"}[runtime]
    path, check = export_checked(
        model,
        tmp_path / f"model{suffix}",
        precision=precision,
        runtime=runtime,
        image_size=SIZE,
        calibration=calibration,
        threads=1,
        **options,
    )
    assert check.passed and path.is_file()
    stored = json.loads((tmp_path / f"model{suffix}.check.json").read_text())
    assert stored["passed"] and stored["precision"] == precision and stored["runtime"] == runtime
    assert not list(tmp_path.glob(".*vbtmp*"))
    # the written file, loaded back, gives eager's outputs within the precision's tolerance
    batch = calibration.images[:4]
    with torch.no_grad():
        expected = model(batch)
    got = load(path, threads=1)(batch)[0]
    reloaded = compare_outputs([expected], [got], precision=precision, runtime=runtime)
    assert reloaded.passed, reloaded.summary()
    if precision == "fp32":
        assert reloaded.max_abs_diff <= 1e-4
    else:
        assert 0.9 < reloaded.min_cosine <= 1.0 + 1e-9


def test_auto_keeps_the_fastest_passing_runtime(tmp_path: Path, calibration) -> None:
    path, check = export_checked(
        tiny_model(),
        tmp_path / "model",
        precision="int8",
        runtime="auto",
        image_size=SIZE,
        calibration=calibration,
        threads=1,
    )
    candidates = check.extra["candidates"]
    assert set(candidates) == {"onnxruntime", "openvino"}
    assert all(c["passed"] and c["milliseconds"] > 0 for c in candidates.values()), candidates
    timed = {name: c["milliseconds"] for name, c in candidates.items() if c["passed"]}
    assert check.runtime == min(timed, key=timed.get)
    assert path.suffix == {"onnxruntime": ".onnx", "openvino": ".xml"}[check.runtime] and path.is_file()


def test_failed_check_writes_nothing(tmp_path: Path, calibration, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(precision_module.MIN_COSINE, "int8", 1.5)  # no artefact can reach a cosine above 1
    with pytest.raises(ValueError, match="no file written"):
        export_checked(
            tiny_model(),
            tmp_path / "model.onnx",
            precision="int8",
            runtime="onnxruntime",
            image_size=SIZE,
            calibration=calibration,
        )
    assert not list(tmp_path.iterdir())


def test_check_measures_top1_agreement_and_change() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 1, 0, 0])
    same = compare_outputs([logits], [logits + 0.01], precision="int8", runtime="test", labels=labels)
    assert same.passed and same.top1_agreement == 1.0 and same.top1_change_points == 0.0 and same.top1_eager == 0.75
    flipped = logits.clone()
    flipped[0] = torch.tensor([0.0, 2.0])  # one correct answer turned wrong: -25 points
    worse = compare_outputs([logits], [flipped], precision="int8", runtime="test", labels=labels)
    assert not worse.passed and worse.top1_change_points == pytest.approx(-25.0) and worse.top1_agreement == 0.75
    assert "top-1 dropped" in worse.reason
    off = compare_outputs([logits], [logits + 1e-3], precision="fp32", runtime="test")
    assert not off.passed and "max abs diff" in off.reason


def test_calibration_from_webdataset_shard(tmp_path: Path, image_folder: Path) -> None:
    shard = tmp_path / "train-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for i in range(3):
            buffer = io.BytesIO()
            _image(i).save(buffer, format="PNG")
            for name, data in ((f"{i:04d}.png", buffer.getvalue()), (f"{i:04d}.cls", str(i % 2).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    images = load_images(shard, **NORMALIZATION)
    assert images.images.shape == (3, 3, SIZE, SIZE) and images.labels.tolist() == [0, 1, 0]
    folder = load_images(image_folder, limit=3, **NORMALIZATION)
    assert folder.labels.tolist() == [0, 1, 2], "a limit spreads the images over every class"


def test_int8_keeps_top1_on_a_trained_classifier() -> None:
    """A small resnet18 trained on scikit-learn's digits (as the demo, shorter): int8 loses < 0.5 points."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.nn.functional.interpolate(
        torch.tensor(digits.images, dtype=torch.float32)[:, None] / 8.0 - 1.0, size=SIZE, mode="bilinear"
    )
    images = images.expand(-1, 3, -1, -1).contiguous()
    labels = torch.tensor(digits.target)
    train, val = train_test_split(np.arange(len(labels)), test_size=0.2, random_state=0, stratify=digits.target)
    torch.manual_seed(0)
    model = create_model("resnet18", depths=(1, 1, 1, 1), widths=(16, 16, 32, 32), stem_channels=16, num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    model.train()
    for _ in range(3):
        for batch in torch.from_numpy(train).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    model.eval()
    calibration = list(images[train[:32]].split(32))
    artefact = build(model, images[:1], precision="int8", runtime="onnxruntime", calibration=calibration, threads=1)
    from vision_backbones.deploy.checked_export import check_artefact

    check = check_artefact(artefact, model, images[val], labels[val])
    assert check.top1_eager > 0.9, f"the classifier must be trained for the check to mean something ({check.summary()})"
    assert check.top1_change_points > -0.5 and check.passed, check.summary()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--precision", "fp16", "--runtime", "onnxruntime"], "precision must be one of"),
        (["--precision", "fp32", "--runtime", "tensorrt"], "runtime must be one of"),
        (["--precision", "bf16", "--runtime", "onnxruntime"], "no bf16"),
        (["--precision", "int8", "--runtime", "onnxruntime"], "needs calibration images"),
        (["--precision", "int8", "--runtime", "onnxruntime", "--calibration", "/no/such/folder"], "does not exist"),
        (["--precision", "fp32", "--runtime", "openvino"], "expected a .xml path"),
    ],
)
def test_bad_deploy_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    from vision_backbones.cli import main as cli_main

    code = cli_main(["export", "resnet18", str(tmp_path / "model.onnx"), "--image-size", "32", *argv])
    error = capsys.readouterr().err
    assert code == 2 and message in error and len(error.strip().splitlines()) == 1, error
    assert not list(tmp_path.iterdir())


def test_bf16_refused_on_a_cpu_without_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vision_backbones.measure import machine

    monkeypatch.setattr(machine, "isa_flags", lambda: ["avx2", "fma", "avx512f"])
    assert (
        main(
            [
                "resnet18",
                str(tmp_path / "model.xml"),
                "--precision",
                "bf16",
                "--runtime",
                "openvino",
                "--image-size",
                "32",
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "bf16 would be emulated" in error and len(error.strip().splitlines()) == 1
    monkeypatch.setattr(machine, "isa_flags", lambda: ["avx512f", "avx512_bf16"])
    assert precision_module.has_native_bf16()
    assert not list(tmp_path.iterdir())


def test_export_command_deploys(tmp_path: Path, image_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model.onnx"
    argv = [
        "mobilenet_v1_0_25",
        str(out),
        "--precision",
        "int8",
        "--runtime",
        "onnxruntime",
        "--image-size",
        str(SIZE),
        "--features",
        "--calibration",
        str(image_folder),
        "--resize-size",
        str(SIZE),
        "--threads",
        "1",
        "--mean",
        "0.5",
        "0.5",
        "0.5",
        "--std",
        "0.5",
        "0.5",
        "0.5",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    stored = json.loads((tmp_path / "model.onnx.check.json").read_text())
    assert out.is_file() and "int8/onnxruntime: passed" in printed and stored["passed"] and stored["samples"] == 12
    assert main(argv) == 2 and "exists" in capsys.readouterr().err, "an existing output is refused without --force"
