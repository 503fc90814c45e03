"""Export to ONNX, ``torch.export`` ExportedProgram or TorchScript, or for a runtime and precision, with the outputs checked.

``backbones export NAME OUT.onnx --format onnx [--features] [--pretrained PATH]``. ONNX files get
dynamic batch and image size, are run with ONNX Runtime on a second input shape and compared with
eager PyTorch (max abs difference <= 1e-4 by default); a file that fails the check is not kept.

``backbones export NAME OUT --precision fp32|bf16|int8 --runtime onnxruntime|openvino|torch|auto
[--calibration PATH] [--check-data PATH]``: a deployed model for that runtime, checked against eager
PyTorch before it is written (:mod:`~vision_backbones.deploy.checked_export`), with the check result
in ``OUT.check.json``.
"""

from __future__ import annotations

import argparse
import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from vision_backbones.io import atomic_write_bytes, atomic_write_stream

FORMATS = ("onnx", "exported-program", "torchscript")


def _outputs(result: Tensor | Sequence[Tensor]) -> list[Tensor]:
    return [result] if isinstance(result, Tensor) else list(result)


class FeaturesWrapper(nn.Module):
    """``forward`` = ``forward_features``, so exporters see the multi-scale outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.model.forward_features(x)


def onnx_bytes(model: nn.Module, sample: Tensor, *, opset: int = 18, dynamo: bool = False) -> bytes:
    """The ONNX model of ``model`` with dynamic batch, height and width."""
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height", min=sample.shape[2] // 2), 3: torch.export.Dim("width", min=sample.shape[3] // 2)}
            program = torch.onnx.export(model, (sample,), dynamo=True, verbose=False, dynamic_shapes={"x": dims}, opset_version=opset)
            return program.model_proto.SerializeToString()
        buffer = io.BytesIO()
        torch.onnx.export(
            model, (sample,), buffer, dynamo=False, opset_version=opset, input_names=["image"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}},
        )
        return buffer.getvalue()


def check_onnx(data: bytes, model: nn.Module, inputs: Sequence[Tensor], *, atol: float = 1e-4) -> float:
    """Run ``data`` in ONNX Runtime on each input; the max abs difference to eager PyTorch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            expected = _outputs(model(x))
            got = session.run(None, {input_name: x.numpy()})
            if len(got) != len(expected):
                raise ValueError(f"ONNX model gave {len(got)} outputs, PyTorch {len(expected)}")
            for a, b in zip(got, expected):
                if tuple(a.shape) != tuple(b.shape):
                    raise ValueError(f"ONNX output shape {tuple(a.shape)} != PyTorch {tuple(b.shape)} for input {tuple(x.shape)}")
                worst = max(worst, float((torch.from_numpy(a) - b).abs().max()))
    if worst > atol:
        raise ValueError(f"ONNX Runtime differs from PyTorch by {worst:.2e} (allowed {atol:.0e})")
    return worst


def check_exported_program(program: torch.export.ExportedProgram, model: nn.Module, inputs: Sequence[Tensor], *, atol: float = 1e-4) -> float:
    worst = 0.0
    module = program.module()
    with torch.no_grad():
        for x in inputs:
            for a, b in zip(_outputs(module(x)), _outputs(model(x))):
                worst = max(worst, float((a - b).abs().max()))
    if worst > atol:
        raise ValueError(f"ExportedProgram differs from eager PyTorch by {worst:.2e} (allowed {atol:.0e})")
    return worst


def export_model(model: nn.Module, output: Path, *, fmt: str, image_size: int, dynamo: bool = False) -> float:
    """Export ``model`` to ``output`` in ``fmt`` after checking it; returns the max abs difference."""
    from vision_backbones.validate import check_choice, check_int

    check_choice("fmt", fmt, FORMATS)
    check_int("image_size", image_size, min=1)
    minimum = getattr(getattr(model, "model", model), "min_input_size", 1)
    if image_size < minimum:
        raise ValueError(f"image_size {image_size} is smaller than this network takes; expected >= {minimum}")
    model = model.eval()
    sample = torch.randn(1, 3, image_size, image_size)
    other = torch.randn(2, 3, image_size + 32, image_size + 64)  # another batch and size
    if fmt == "onnx":
        data = onnx_bytes(model, sample, dynamo=dynamo)
        worst = check_onnx(data, model, [sample, other])
        atomic_write_bytes(output, data)
    elif fmt == "exported-program":
        dims = {0: torch.export.Dim("batch", min=1, max=1024)}
        # A batch of 2 to trace: torch.export specializes dimensions of size 1.
        program = torch.export.export(model, (sample.repeat(2, 1, 1, 1),), dynamic_shapes={"x": dims})
        worst = check_exported_program(program, model, [sample, torch.randn(2, 3, image_size, image_size)])
        atomic_write_stream(output, lambda file: torch.export.save(program, file))
    else:
        scripted = torch.jit.script(model)
        with torch.no_grad():
            worst = max(float((a - b).abs().max()) for x in (sample, other) for a, b in zip(_outputs(scripted(x)), _outputs(model(x))))
        if worst > 1e-4:
            raise ValueError(f"TorchScript differs from eager PyTorch by {worst:.2e}")
        # into memory first: torch.jit.save aborts the process (rc 134) when the disk fills up
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        atomic_write_bytes(output, buffer.getvalue())
    return worst


def main(argv: Sequence[str]) -> int:
    from vision_backbones.cli import run_command

    return run_command("backbones export", lambda: _run(argv))


def _run(argv: Sequence[str]) -> int:
    from vision_backbones.cli import ArgumentParser, int_at_least
    from vision_backbones.io import check_overwrite
    from vision_backbones.registry import create_model

    parser = ArgumentParser(prog="backbones export", description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("output", type=Path)
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="plain fp32 export (when neither --precision nor --runtime is given)")
    parser.add_argument("--features", action="store_true", help="export forward_features (all levels) instead of logits")
    parser.add_argument("--pretrained", type=Path, help="weights to load (safetensors)")
    parser.add_argument("--num-classes", type=int_at_least(1), default=1000)
    parser.add_argument("--image-size", type=int_at_least(1), default=224)
    parser.add_argument("--dynamo", action="store_true", help="use the torch.export-based ONNX exporter")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    deploy = parser.add_argument_group("deployment (--precision / --runtime)")
    deploy.add_argument("--precision", help="fp32, bf16 or int8 (default fp32 when --runtime is given)")
    deploy.add_argument("--runtime", help="onnxruntime, openvino, torch, or auto: measure them here and keep the fastest that passes its check")
    deploy.add_argument("--calibration", help="int8 calibration images: a folder of class folders or WebDataset .tar shard(s)")
    deploy.add_argument("--calibration-images", type=int_at_least(1), default=128, help="images taken from --calibration")
    deploy.add_argument("--check-data", help="labelled images for the check (top-1 agreement and change); default: the calibration images")
    deploy.add_argument("--check-images", type=int_at_least(1), default=1000, help="images taken from --check-data")
    deploy.add_argument("--resize-size", type=int_at_least(1), help="eval transform: shorter side before the center crop (default image-size * 232 / 224)")
    deploy.add_argument("--mean", type=float, nargs=3, default=None, help="normalization mean (default ImageNet's)")
    deploy.add_argument("--std", type=float, nargs=3, default=None, help="normalization std (default ImageNet's)")
    deploy.add_argument("--static-batch", type=int_at_least(1), help="OpenVINO: fix the input to this batch and --image-size (default: dynamic shapes)")
    deploy.add_argument("--threads", type=int_at_least(1), help="inference threads of the runtime (default: the runtime's own)")
    deploy.add_argument("--no-compile", action="store_true", help="torch runtime: do not torch.compile (faster export, slower inference)")
    args = parser.parse_args(argv)
    if args.precision is not None or args.runtime is not None:
        return _run_deploy(args)
    check_overwrite(args.output, force=args.force)
    model = create_model(args.name, num_classes=args.num_classes, features_only=args.features, pretrained=args.pretrained)
    target = FeaturesWrapper(model) if args.features else model
    worst = export_model(target, args.output, fmt=args.format, image_size=args.image_size, dynamo=args.dynamo)
    print(f"wrote {args.output} ({args.format}); max abs difference to eager PyTorch {worst:.2e}")
    return 0


def _run_deploy(args: argparse.Namespace) -> int:
    from vision_backbones.deploy.calibration import load_images
    from vision_backbones.deploy.checked_export import export_checked
    from vision_backbones.deploy.runtimes import check_pair
    from vision_backbones.registry import create_model
    from vision_backbones.train.transforms import IMAGENET_MEAN, IMAGENET_STD

    precision, runtime = args.precision or "fp32", args.runtime or "auto"
    check_pair(precision, runtime)  # before anything slow
    if args.std is not None and any(s <= 0 for s in args.std):
        raise ValueError(f"--std must be three numbers > 0, got {args.std}")
    transform = {
        "resize_size": args.resize_size or round(args.image_size * 232 / 224),
        "crop_size": args.image_size,
        "mean": tuple(args.mean or IMAGENET_MEAN),
        "std": tuple(args.std or IMAGENET_STD),
    }
    calibration = load_images(args.calibration, limit=args.calibration_images, **transform) if args.calibration else None
    check_data = load_images(args.check_data, limit=args.check_images, **transform) if args.check_data else None
    model = create_model(args.name, num_classes=args.num_classes, features_only=args.features, pretrained=args.pretrained)
    target = FeaturesWrapper(model) if args.features else model
    path, check = export_checked(
        target, args.output, precision=precision, runtime=runtime, image_size=args.image_size, calibration=calibration,
        check_data=check_data, static_batch=args.static_batch, threads=args.threads, compile=not args.no_compile, force=args.force,
    )
    print(f"wrote {path} ({check.precision}, {check.runtime}); check: {check.summary()}; stored in {path.name}.check.json")
    return 0
