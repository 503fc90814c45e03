"""The bad-input registry of the deploy tools (issue 16): ``backbones export`` and its Python API.

The contract of ``test_bad_input_tools.py``: one line naming the bad value and what was expected;
API calls raise ``ValueError``, the CLI exits 2 with one stderr line; a refused call leaves nothing
behind (``{new}`` is a fresh path per case that must still not exist afterwards, and the files
folder is unchanged); every case fails before a model is exported (milliseconds, a tiny model).

Cases are grouped per tool: ``export`` (the command and ``export_checked``), ``calibration``
(``load_images``: calibration and check images) and ``fuse`` (``fuse``, ``choose_memory_format``,
``optimize_for_inference``), and by the class of issue 16 they cover: ``silent`` (a wrong result
once returned: an int8 OpenVINO ``.xml`` for ``--format torchscript``, a meaningless top-1,
non-finite images), ``ugly`` (a raw or misleading message), ``corrupt`` (a broken file read back,
named with what to do).
"""

from __future__ import annotations

import io
import math
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vision_backbones import create_model
from vision_backbones.cli import main as cli_main

CLASSES = ("silent", "ugly", "corrupt")
TINY = {"depths": (1, 1, 1, 1), "widths": (4, 8, 8, 8), "stem_channels": 4}
SIZE = 32


@dataclass(frozen=True)
class Case:
    id: str
    tool: str  # export / calibration / fuse
    kind: str  # one of CLASSES
    run: Any  # a callable taking the files folder, or a CLI argv ("{f}": the files folder, "{new}": a fresh path)
    expect: Any  # ValueError, or the CLI's exit code
    message: str


# ---------------------------------------------------------------------------------------------
# files: image folders of 3 and 20 classes, broken shards (once per module)


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((20, 20, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _shard(path: Path, labels: list[int]) -> bytes:
    with tarfile.open(path, "w") as tar:
        for i, label in enumerate(labels):
            for name, data in ((f"{i:04d}.png", _png(10 * i)), (f"{i:04d}.cls", str(label).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path.read_bytes()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    import gzip

    folder = tmp_path_factory.mktemp("deploy_bad_input")
    (folder / "new").mkdir()
    for classes in (3, 20):
        for label in range(classes):
            (folder / f"classes{classes}" / f"c{label:02d}").mkdir(parents=True)
            (folder / f"classes{classes}" / f"c{label:02d}" / "0.png").write_bytes(_png(5 * label))
    (folder / "no_class_folders").mkdir()
    (folder / "only_text" / "a").mkdir(parents=True)
    (folder / "only_text" / "a" / "notes.txt").write_text("x")
    (folder / "images.zip").write_bytes(b"PK\x03\x04 not a folder")
    data = _shard(folder / "good.tar", [0, 1, 2, 0])
    (folder / "truncated.tar").write_bytes(data[: len(data) // 2 + 100])
    with tarfile.open(folder / "good.tar") as tar:
        first = tar.getmembers()[0]
    end = -(-(first.offset_data + first.size) // 512) * 512
    (folder / "cut_at_member.tar").write_bytes(data[:end])  # ends right after the first member: no end marker
    (folder / "garbage.tar").write_bytes(b"\x01garbage" * 200)
    (folder / "empty.tar").write_bytes(b"")
    (folder / "a_folder.tar").mkdir()
    (folder / "truncated.tgz").write_bytes(gzip.compress(data)[:200])
    _shard(folder / "labels_to_12.tar", [3, 12])  # no meta file: only the labels tell the class count
    (folder / "a_folder.onnx").mkdir()
    return folder


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine a multi-threaded forward waits on descheduled threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return create_model("resnet18", num_classes=10, **TINY).eval()


# ---------------------------------------------------------------------------------------------
# helpers


def _images(classes: int | None, labels: list[int] | None, count: int = 2) -> Any:
    from vision_backbones.deploy.calibration import LabelledImages

    return LabelledImages(
        torch.zeros(count, 3, SIZE, SIZE),
        None if labels is None else torch.tensor(labels),
        "check-images",
        classes,
    )


def _export(output: str = "{new}.onnx", target: Any = "model", **kwargs: Any) -> Callable[..., Any]:
    def run(f: Path, new: Path, model: nn.Module) -> Any:
        from vision_backbones.deploy.checked_export import export_checked

        options = {"precision": "fp32", "runtime": "onnxruntime", "image_size": SIZE, "report": lambda line: None}
        options.update(kwargs)
        path = output.replace("{new}", str(new)).replace("{f}", str(f))
        return export_checked(model if target == "model" else target, path, **options)

    return run


def _load(path: str = "{f}/classes3", **kwargs: Any) -> Callable[..., Any]:
    def run(f: Path, new: Path, model: nn.Module) -> Any:
        from vision_backbones.deploy.calibration import load_images

        options = {"resize_size": SIZE, "crop_size": SIZE, **kwargs}
        return load_images(path.replace("{f}", str(f)) if isinstance(path, str) else path, **options)

    return run


def _fuse(target: Any) -> Callable[..., Any]:
    def run(f: Path, new: Path, model: nn.Module) -> Any:
        from vision_backbones.deploy import fuse

        return fuse(model if target == "model" else target)

    return run


def _memory_format(sample: Any, target: Any = "model", **kwargs: Any) -> Callable[..., Any]:
    def run(f: Path, new: Path, model: nn.Module) -> Any:
        from vision_backbones.deploy import choose_memory_format

        return choose_memory_format(model if target == "model" else target, sample, **kwargs)

    return run


def _optimize(sample: Any, target: Any = "model") -> Callable[..., Any]:
    def run(f: Path, new: Path, model: nn.Module) -> Any:
        from vision_backbones.deploy import optimize_for_inference

        return optimize_for_inference(model if target == "model" else target, sample)

    return run


def _cli(kind: str, *argv: str, message: str, code: int = 2, name: str = "resnet18", tag: str = "") -> Case:
    shown = " ".join(a.replace("{f}/", "").replace("{new}", "OUT") for a in argv) + tag
    return Case(shown, "export", kind, ["export", name, *argv, "--image-size", str(SIZE)], code, message)


INT8 = ["--precision", "int8", "--calibration", "{f}/classes3"]
FP32_ORT = ["--precision", "fp32", "--runtime", "onnxruntime"]
X = torch.randn(1, 3, SIZE, SIZE)

# ---------------------------------------------------------------------------------------------
# the cases

EXPORT_CLI = [
    # --format and --precision / --runtime: combined where the format is that runtime's file, else refused
    _cli("silent", "{new}.pt", "--format", "torchscript", *INT8, message="--format torchscript with --precision int8"),
    _cli("silent", "{new}.pt", "--format", "torchscript", "--precision", "bf16", message="TorchScript is exported in"),
    _cli(
        "silent",
        "{new}.pt",
        "--format",
        "torchscript",
        "--runtime",
        "openvino",
        message="--format torchscript with --runtime openvino",
    ),
    _cli(
        "silent",
        "{new}.pt",
        "--format",
        "torchscript",
        "--precision",
        "fp32",
        "--runtime",
        "torch",
        message="--format torchscript with --precision fp32 --runtime torch",
    ),
    _cli(
        "silent",
        "{new}.onnx",
        "--format",
        "onnx",
        "--runtime",
        "openvino",
        message="--format onnx with --runtime openvino: --format onnx is the .onnx file of --runtime onnxruntime",
    ),
    _cli("silent", "{new}.onnx", "--format", "onnx", "--runtime", "auto", message="--format onnx with --runtime auto"),
    _cli("silent", "{new}.onnx", "--format", "onnx", "--runtime", "torch", message="expected --runtime onnxruntime"),
    _cli(
        "silent",
        "{new}.pt2",
        "--format",
        "exported-program",
        "--runtime",
        "onnxruntime",
        message="--format exported-program with --runtime onnxruntime",
    ),
    _cli(
        "silent",
        "{new}.pt2",
        "--format",
        "exported-program",
        *INT8,
        message="--format exported-program with --precision int8: exported-program files here hold no int8 model",
    ),
    _cli(
        "silent",
        "{new}.onnx",
        "--format",
        "onnx",
        "--precision",
        "bf16",
        message="--format onnx with --precision bf16",
    ),
    _cli(
        "ugly",
        "{new}.onnx",
        "--format",
        "onnx",
        "--precision",
        "fp16",
        message="precision must be one of 'fp32', 'bf16', 'int8', got 'fp16'",
    ),
    _cli("ugly", "{new}.onnx", "--runtime", "tflite", message="runtime must be one of"),
    # --check-data whose classes are not the model's: a meaningless top-1 once reported
    _cli(
        "silent",
        "{new}.onnx",
        *FP32_ORT,
        "--num-classes",
        "10",
        "--check-data",
        "{f}/classes3",
        message="has 3 classes, the model 10 outputs; expected labelled images of the model's 10 classes",
        name="mobilenet_v1_0_25",  # a small model: the refusal needs one forward
    ),
    _cli(
        "silent",
        "{new}.onnx",
        *FP32_ORT,
        "--num-classes",
        "10",
        "--check-data",
        "{f}/classes20",
        message="has 20 classes, the model 10 outputs",
        name="mobilenet_v1_0_25",  # a small model: the refusal needs one forward
    ),
    _cli(
        "silent",
        "{new}.onnx",
        *FP32_ORT,
        "--num-classes",
        "10",
        "--check-data",
        "{f}/labels_to_12.tar",
        message="has labels 3..12, the model 10 outputs; expected labels in 0..9",
        name="mobilenet_v1_0_25",  # a small model: the refusal needs one forward
    ),
    # check data named as check data, not as calibration data
    _cli("ugly", "{new}.onnx", *FP32_ORT, "--check-data", "/nonexistent", message="--check-data '/nonexistent' does"),
    _cli("ugly", "{new}.onnx", *FP32_ORT, "--check-data", "{f}/images.zip", message="is a file, not a folder"),
    _cli("ugly", "{new}.onnx", *INT8[:2], "--calibration", "{f}/images.zip", message="--calibration '"),
    _cli("ugly", "{new}.onnx", *INT8[:2], "--calibration", "/nonexistent", message="--calibration '/nonexistent'"),
    _cli("ugly", "{new}.onnx", *FP32_ORT, "--check-data", "{f}/a_folder.tar", message="a_folder.tar' is a folder"),
    _cli("ugly", "{new}.onnx", *FP32_ORT, "--check-data", "{f}/missing.tar", message="missing.tar' does not exist"),
    _cli("ugly", "{new}.onnx", *FP32_ORT, "--check-data", "{f}/only_text", message="has no images with extensions"),
    # corrupt shards: one line naming the file
    _cli(
        "corrupt",
        "{new}.onnx",
        *INT8[:2],
        "--calibration",
        "{f}/garbage.tar",
        message="--calibration shard '",
    ),
    _cli(
        "corrupt",
        "{new}.onnx",
        *INT8[:2],
        "--calibration",
        "{f}/garbage.tar",
        message="garbage.tar' is not a readable tar file (invalid header)",
        tag=" (the reason)",
    ),
    _cli("corrupt", "{new}.onnx", *INT8[:2], "--calibration", "{f}/empty.tar", message="(empty file)"),
    _cli("corrupt", "{new}.onnx", *INT8[:2], "--calibration", "{f}/truncated.tar", message="truncated.tar' is trunc"),
    _cli("corrupt", "{new}.onnx", *INT8[:2], "--calibration", "{f}/cut_at_member.tar", message="is truncated"),
    _cli("corrupt", "{new}.onnx", *INT8[:2], "--calibration", "{f}/truncated.tgz", message="Compressed file ended"),
    _cli("corrupt", "{new}.onnx", *FP32_ORT, "--check-data", "{f}/truncated.tar", message="--check-data shard '"),
    # normalization: std 0 once gave non-finite images
    _cli("silent", "{new}.onnx", *FP32_ORT, "--std", "0", "0", "0", message="--std must be 3 finite numbers > 0"),
    _cli("silent", "{new}.onnx", *FP32_ORT, "--std", "1", "-1", "1", message="got [1.0, -1.0, 1.0]"),
    _cli("silent", "{new}.onnx", *FP32_ORT, "--std", "nan", "1", "1", message="got [nan, 1.0, 1.0]"),
    _cli("silent", "{new}.onnx", *FP32_ORT, "--mean", "inf", "0", "0", message="--mean must be 3 finite numbers"),
    # the arguments export_checked refuses, refused by the command through the same check
    _cli("silent", "{new}.onnx", *FP32_ORT, "--threads", "0", message="--threads (threads) must be an int >= 1"),
    _cli("silent", "{new}.onnx", *FP32_ORT, "--threads", "-2", message="got -2"),
    _cli(
        "silent", "{new}.xml", "--runtime", "openvino", "--static-batch", "0", message="--static-batch (static_batch)"
    ),
    _cli(
        "silent",
        "{new}.onnx",
        *FP32_ORT,
        "--static-batch",
        "4",
        message="only OpenVINO takes a static input shape",
    ),
    _cli("ugly", "{new}.onnx", "--precision", "int8", "--runtime", "onnxruntime", message="needs calibration images"),
    _cli("ugly", "{f}/a_folder.onnx", *FP32_ORT, message="a_folder.onnx' is a folder; expected a file path"),
    _cli("ugly", "{new}.onnx", "--precision", "fp32", "--runtime", "torch", message="expected a .pt2 path"),
]

EXPORT_API = [
    Case("threads-0", "export", "silent", _export(threads=0), ValueError, "threads) must be an int >= 1, got 0"),
    Case("threads-negative", "export", "silent", _export(threads=-2), ValueError, "got -2"),
    Case("threads-str", "export", "silent", _export(threads="2"), ValueError, "got '2'"),
    Case("threads-bool", "export", "silent", _export(threads=True), ValueError, "got True"),
    Case(
        "static-batch-0",
        "export",
        "silent",
        _export("{new}.xml", runtime="openvino", static_batch=0),
        ValueError,
        "--static-batch (static_batch) must be an int >= 1, got 0",
    ),
    Case(
        "static-batch-float",
        "export",
        "silent",
        _export("{new}.xml", runtime="openvino", static_batch=2.0),
        ValueError,
        "got 2.0",
    ),
    Case(
        "static-batch-torch",
        "export",
        "silent",
        _export("{new}.pt2", runtime="torch", static_batch=2),
        ValueError,
        "with runtime 'torch': only OpenVINO",
    ),
    Case("image-size-0", "export", "ugly", _export(image_size=0), ValueError, "image_size) must be an int >= 1"),
    Case("image-size-float", "export", "ugly", _export(image_size=32.0), ValueError, "got 32.0"),
    Case(
        "image-size-small",
        "export",
        "ugly",
        _export(image_size=8),
        ValueError,
        "image_size 8 is smaller than this network takes",
    ),
    Case("compile-str", "export", "silent", _export(compile="no"), ValueError, "compile must be True or False"),
    Case("force-str", "export", "silent", _export(force="yes"), ValueError, "force must be True or False"),
    Case("precision-fp16", "export", "ugly", _export(precision="fp16"), ValueError, "precision must be one of"),
    Case("runtime-tflite", "export", "ugly", _export(runtime="tflite"), ValueError, "runtime must be one of"),
    Case("int8-no-calibration", "export", "ugly", _export(precision="int8"), ValueError, "needs calibration images"),
    Case(
        "model-linear",
        "export",
        "ugly",
        _export(target=nn.Linear(4, 2)),
        ValueError,
        "model Linear cannot run a (1, 3, 32, 32) image batch",
    ),
    Case(
        "model-linear-expected",
        "export",
        "ugly",
        _export(target=nn.Linear(4, 2)),
        ValueError,
        "expected a Backbone or another model taking 4-D (N, 3, H, W) images",
    ),
    Case(
        "model-str",
        "export",
        "ugly",
        _export(target="resnet18"),
        ValueError,
        "model must be an nn.Module taking (N, 3, H, W) images",
    ),
    Case("model-none", "export", "ugly", _export(target=None), ValueError, "got NoneType"),
    Case(
        "calibration-tensor",
        "export",
        "ugly",
        _export(precision="int8", calibration=torch.zeros(2, 3, SIZE, SIZE)),
        ValueError,
        "calibration must be LabelledImages",
    ),
    Case(
        "check-data-list",
        "export",
        "ugly",
        _export(check_data=[1, 2]),
        ValueError,
        "check_data must be LabelledImages",
    ),
    Case(
        "check-data-3-classes",
        "export",
        "silent",
        _export(check_data=_images(3, [0, 1])),
        ValueError,
        "has 3 classes, the model 10 outputs",
    ),
    Case(
        "check-data-20-classes",
        "export",
        "silent",
        _export(check_data=_images(20, [0, 19])),
        ValueError,
        "has 20 classes, the model 10 outputs",
    ),
    Case(
        "check-data-label-12",
        "export",
        "silent",
        _export(check_data=_images(None, [0, 12])),
        ValueError,
        "has labels 0..12, the model 10 outputs",
    ),
    Case(
        "check-data-label-negative",
        "export",
        "silent",
        _export(check_data=_images(None, [-1, 2])),
        ValueError,
        "expected labels in 0..9",
    ),
    Case(
        "output-suffix",
        "export",
        "ugly",
        _export("{new}.onnx", runtime="openvino"),
        ValueError,
        "for runtime 'openvino': expected a .xml path",
    ),
    Case(
        "output-folder",
        "export",
        "ugly",
        _export("{f}/a_folder.onnx"),
        ValueError,
        "is a folder; expected a file path",
    ),
]

CALIBRATION = [
    Case("std-0", "calibration", "silent", _load(std=0), ValueError, "std must be 3 finite numbers > 0"),
    Case("std-zero-channel", "calibration", "silent", _load(std=(0.5, 0, 0.5)), ValueError, "got [0.5, 0, 0.5]"),
    Case("std-negative", "calibration", "silent", _load(std=(-1, 1, 1)), ValueError, "std must be 3 finite numbers"),
    Case("std-nan", "calibration", "silent", _load(std=(1, math.nan, 1)), ValueError, "got [1, nan, 1]"),
    Case("std-str", "calibration", "ugly", _load(std="abc"), ValueError, "std must be 3 finite numbers > 0"),
    Case("std-bool", "calibration", "silent", _load(std=(True, 1, 1)), ValueError, "got [True, 1, 1]"),
    Case(
        "mean-two",
        "calibration",
        "ugly",
        _load(mean=(0.5, 0.5)),
        ValueError,
        "mean must be 3 finite numbers (one per RGB channel), got [0.5, 0.5]",
    ),
    Case("mean-four", "calibration", "ugly", _load(mean=(0.5,) * 4), ValueError, "mean must be 3 finite numbers"),
    Case("mean-inf", "calibration", "silent", _load(mean=(math.inf, 0, 0)), ValueError, "got [inf, 0, 0]"),
    Case("mean-none", "calibration", "ugly", _load(mean=None), ValueError, "got None"),
    Case("limit-0", "calibration", "ugly", _load(limit=0), ValueError, "limit must be an int >= 1, got 0"),
    Case("limit-float", "calibration", "ugly", _load(limit=2.5), ValueError, "got 2.5"),
    Case("resize-0", "calibration", "ugly", _load(resize_size=0), ValueError, "resize_size must be an int >= 1"),
    Case("crop-negative", "calibration", "ugly", _load(crop_size=-1), ValueError, "crop_size must be an int >= 1"),
    Case("path-none", "calibration", "ugly", _load(None), ValueError, "calibration data must be a path, got NoneType"),
    Case("path-int", "calibration", "ugly", _load(3), ValueError, "must be a path, got int 3"),
    Case(
        "file-not-folder",
        "calibration",
        "ugly",
        _load("{f}/images.zip"),
        ValueError,
        "calibration data '",
    ),
    Case(
        "file-not-folder-says-so",
        "calibration",
        "ugly",
        _load("{f}/images.zip"),
        ValueError,
        "images.zip' is a file, not a folder; expected a folder of class folders or a WebDataset shard",
    ),
    Case("missing", "calibration", "ugly", _load("{f}/nope"), ValueError, "nope' does not exist"),
    Case(
        "check-data-named",
        "calibration",
        "ugly",
        _load("{f}/nope", what="--check-data"),
        ValueError,
        "--check-data '",
    ),
    Case("no-class-folders", "calibration", "ugly", _load("{f}/no_class_folders"), ValueError, "no class sub-folders"),
    Case("folder-shard", "calibration", "ugly", _load("{f}/a_folder.tar"), ValueError, "a_folder.tar' is a folder"),
    Case("missing-shard", "calibration", "ugly", _load("{f}/missing.tar"), ValueError, "missing.tar' does not exist"),
    Case(
        "missing-in-pattern",
        "calibration",
        "ugly",
        _load("{f}/{good,missing}.tar", limit=100),
        ValueError,
        "missing.tar' does not exist",
    ),
    Case(
        "garbage-shard",
        "calibration",
        "corrupt",
        _load("{f}/garbage.tar"),
        ValueError,
        "calibration data shard '",
    ),
    Case(
        "garbage-shard-fix",
        "calibration",
        "corrupt",
        _load("{f}/garbage.tar"),
        ValueError,
        "expected a WebDataset .tar file (write one with `backbones data shard`)",
    ),
    Case("empty-shard", "calibration", "corrupt", _load("{f}/empty.tar"), ValueError, "empty.tar' is not a readable"),
    Case(
        "truncated-shard",
        "calibration",
        "corrupt",
        _load("{f}/truncated.tar"),
        ValueError,
        "truncated.tar' is truncated",
    ),
    Case(
        "cut-at-member",
        "calibration",
        "corrupt",
        _load("{f}/cut_at_member.tar"),
        ValueError,
        "cut_at_member.tar' is truncated",
    ),
    Case(
        "truncated-tgz",
        "calibration",
        "corrupt",
        _load("{f}/truncated.tgz"),
        ValueError,
        "truncated.tgz' is not a readable tar file",
    ),
]

FUSE = [
    Case("fuse-str", "fuse", "ugly", _fuse("resnet18"), ValueError, "fuse expects an nn.Module"),
    Case("fuse-str-fix", "fuse", "ugly", _fuse("resnet18"), ValueError, "build it first: create_model(name)"),
    Case("fuse-none", "fuse", "ugly", _fuse(None), ValueError, "got NoneType None"),
    Case("fuse-int", "fuse", "ugly", _fuse(3), ValueError, "got int 3"),
    Case("fuse-state-dict", "fuse", "ugly", _fuse({}), ValueError, "got dict {}"),
    Case(
        "format-3d",
        "fuse",
        "ugly",
        _memory_format(torch.randn(3, SIZE, SIZE)),
        ValueError,
        "sample must be a 4-D (N, C, H, W) image batch, got (3, 32, 32)",
    ),
    Case("format-5d", "fuse", "ugly", _memory_format(torch.randn(1, 1, 3, 8, 8)), ValueError, "got (1, 1, 3, 8, 8)"),
    Case(
        "format-half",
        "fuse",
        "ugly",
        _memory_format(X.half()),
        ValueError,
        "sample dtype torch.float16 differs from the model's torch.float32",
    ),
    Case("format-int", "fuse", "ugly", _memory_format(X.long()), ValueError, "sample dtype torch.int64"),
    Case("format-list", "fuse", "ugly", _memory_format([1, 2]), ValueError, "image batch, got list"),
    Case("format-model-str", "fuse", "ugly", _memory_format(X, "resnet18"), ValueError, "choose_memory_format expects"),
    Case("format-repeats-0", "fuse", "ugly", _memory_format(X, repeats=0), ValueError, "repeats must be an int >= 1"),
    Case("format-margin", "fuse", "ugly", _memory_format(X, margin=1.5), ValueError, "margin must be a finite number"),
    Case("optimize-str", "fuse", "ugly", _optimize(X, "resnet18"), ValueError, "fuse expects an nn.Module"),
    Case("optimize-3d", "fuse", "ugly", _optimize(X[0]), ValueError, "sample must be a 4-D"),
]

CASES = EXPORT_CLI + EXPORT_API + CALIBRATION + FUSE


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.tool}-{c.kind}-{c.id}") for c in CASES])
def test_bad_input(case: Case, files: Path, model: nn.Module, capsys) -> None:
    before = sorted(p.name for p in files.iterdir())
    new = files / "new" / f"case{CASES.index(case)}"
    if isinstance(case.run, list):
        argv = [a.replace("{f}", str(files)).replace("{new}", str(new)) for a in case.run]
        try:
            code = cli_main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
        captured = capsys.readouterr()
        assert code == case.expect, captured.err
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one line, got {len(lines)}: {captured.err}"
        assert "Traceback" not in captured.err
        assert case.message in lines[0], lines[0]
    else:
        with pytest.raises(case.expect) as info:
            case.run(files, new, model)
        text = str(info.value)
        assert "\n" not in text.strip(), f"not one line: {text}"
        assert case.message in text, text
    left = sorted(p.name for p in (files / "new").iterdir() if p.name.split(".")[0] == new.name)
    assert left == [], f"a refused call left {left} behind"
    assert sorted(p.name for p in files.iterdir()) == before, "a refused call created or removed a file"


def test_registry_counts() -> None:
    """Every deploy tool has cases of at least two classes; ids are unique per tool."""
    counts: dict[str, dict[str, int]] = {}
    for case in CASES:
        assert case.kind in CLASSES, case
        counts.setdefault(case.tool, {}).setdefault(case.kind, 0)
        counts[case.tool][case.kind] += 1
    assert set(counts) == {"export", "calibration", "fuse"}
    assert sum(sum(c.values()) for c in counts.values()) >= 100
    assert all(len(c) >= 1 for c in counts.values()), counts
    for tool in counts:
        ids = [c.id for c in CASES if c.tool == tool]
        assert len(ids) == len(set(ids)), tool


# ---------------------------------------------------------------------------------------------
# the pairs that combine (the refusals above must not refuse these)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("onnx", None, None), None),
        ((None, None, None), None),
        (("torchscript", "fp32", None), None),
        (("onnx", "int8", None), ("int8", "onnxruntime")),
        (("onnx", None, "onnxruntime"), ("fp32", "onnxruntime")),
        (("exported-program", "bf16", None), ("bf16", "torch")),
        (("exported-program", "fp32", "torch"), ("fp32", "torch")),
        ((None, "int8", None), ("int8", "auto")),
        ((None, None, "openvino"), ("fp32", "openvino")),
    ],
)
def test_format_and_precision_combine(argv: tuple, expected: tuple | None) -> None:
    from vision_backbones.deploy.runtimes import deploy_target

    assert deploy_target(*argv) == expected


def test_format_onnx_with_int8_writes_onnxruntime_int8(files: Path, tmp_path: Path, capsys) -> None:
    """``--format onnx --precision int8``: ONNX Runtime's int8 ``.onnx`` (before: whatever ``auto`` chose)."""
    out = tmp_path / "m.onnx"
    argv = ["export", "mobilenet_v1_0_25", str(out), "--format", "onnx", *INT8, "--image-size", str(SIZE), "--features"]
    argv = [a.replace("{f}", str(files)) for a in [*argv, "--threads", "1"]]
    assert cli_main(argv) == 0, capsys.readouterr().err
    assert "int8/onnxruntime: passed" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.check.json"]
