"""Export to ONNX, ``torch.export`` ExportedProgram or TorchScript, with the outputs checked.

``backbones export NAME --format onnx OUT.onnx [--features] [--pretrained PATH]``. ONNX files get
dynamic batch and image size, are run with ONNX Runtime on a second input shape and compared with
eager PyTorch (max abs difference <= 1e-4 by default); a file that fails the check is not kept.
"""

from __future__ import annotations

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
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--features", action="store_true", help="export forward_features (all levels) instead of logits")
    parser.add_argument("--pretrained", type=Path, help="weights to load (safetensors)")
    parser.add_argument("--num-classes", type=int_at_least(1), default=1000)
    parser.add_argument("--image-size", type=int_at_least(1), default=224)
    parser.add_argument("--dynamo", action="store_true", help="use the torch.export-based ONNX exporter")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    args = parser.parse_args(argv)
    check_overwrite(args.output, force=args.force)
    model = create_model(args.name, num_classes=args.num_classes, features_only=args.features, pretrained=args.pretrained)
    target = FeaturesWrapper(model) if args.features else model
    worst = export_model(target, args.output, fmt=args.format, image_size=args.image_size, dynamo=args.dynamo)
    print(f"wrote {args.output} ({args.format}); max abs difference to eager PyTorch {worst:.2e}")
    return 0
