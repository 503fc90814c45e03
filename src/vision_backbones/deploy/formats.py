"""The export formats: ONNX bytes, ``torch.export`` ExportedProgram and TorchScript, each checked against eager PyTorch.

Nothing here parses arguments or picks a runtime: ``backbones export`` (:mod:`vision_backbones.cli.export`)
and the runtimes (:mod:`~vision_backbones.deploy.runtimes`) build on these functions. ONNX files get
dynamic batch and image size and are run with ONNX Runtime on a second input shape; a file that
fails its check is not written.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vision_backbones.io import atomic_write_bytes, atomic_write_stream
from vision_backbones.validate import check_choice, check_int

FORMATS = ("onnx", "exported-program", "torchscript")


def outputs(result: Any) -> list[Tensor]:
    """A model's output as a list of tensors: logits alone, or every level of ``forward_features``.

    Runtimes hand back numpy arrays; they become tensors here so every comparison is torch's.
    """
    if isinstance(result, Tensor):
        return [result]
    return [item if isinstance(item, Tensor) else torch.as_tensor(item) for item in result]


class FeaturesWrapper(nn.Module):
    """``forward`` = ``forward_features``, so exporters see the multi-scale outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> list[Tensor]:
        # The wrapped models are the registry's, which all have forward_features. A direct call (no
        # local alias, no cast) is what TorchScript can compile: "method cannot be used as a value".
        return self.model.forward_features(x)  # type: ignore[operator]


def onnx_bytes(model: nn.Module, sample: Tensor, *, opset: int = 18, dynamo: bool = False) -> bytes:
    """The ONNX model of ``model`` with dynamic batch, height and width.

    A model whose adaptive pooling has an output the exporter cannot compute for a symbolic input size
    (AlexNet's 6x6 and VGG's 7x7) is exported with a dynamic batch and ``sample``'s height and width,
    with a warning saying so (:func:`onnx_size_is_dynamic` tells the two apart)."""
    model = model.eval()
    try:
        return _onnx_bytes(model, sample, opset=opset, dynamo=dynamo, dynamic_size=True)
    except torch.onnx.errors.SymbolicValueError as error:
        if dynamo or "adaptive_avg_pool2d" not in str(error):
            raise
    warnings.warn(
        f"{type(model).__name__}: its adaptive pooling cannot be exported to ONNX for a symbolic image size; "
        f"exported with a dynamic batch and a fixed {sample.shape[2]}x{sample.shape[3]} input",
        stacklevel=2,
    )
    return _onnx_bytes(model, sample, opset=opset, dynamo=False, dynamic_size=False)


def onnx_size_is_dynamic(data: bytes) -> bool:
    """Whether the ONNX model's first input takes any height and width (else only the exported ones)."""
    import onnx

    dims = onnx.load_from_string(data).graph.input[0].type.tensor_type.shape.dim
    return all(bool(d.dim_param) for d in list(dims)[2:])


def _onnx_bytes(model: nn.Module, sample: Tensor, *, opset: int, dynamo: bool, dynamic_size: bool) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = {
                0: torch.export.Dim("batch"),
                2: torch.export.Dim("height", min=sample.shape[2] // 2),
                3: torch.export.Dim("width", min=sample.shape[3] // 2),
            }
            program = torch.onnx.export(
                model, (sample,), dynamo=True, verbose=False, dynamic_shapes={"x": dims}, opset_version=opset
            )
            if program is None:  # torch returns None only from the dynamo=False exporter
                raise RuntimeError("torch.onnx.export(dynamo=True) returned no ONNX program")
            return program.model_proto.SerializeToString()
        buffer = io.BytesIO()
        axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
        torch.onnx.export(
            model,
            (sample,),
            buffer,  # type: ignore[arg-type]  # torch annotates f as a path, but the dynamo=False exporter takes file objects
            dynamo=False,
            opset_version=opset,
            input_names=["image"],
            dynamic_axes={"image": axes},
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
            expected = outputs(model(x))
            got = session.run(None, {input_name: x.numpy()})
            if len(got) != len(expected):
                raise ValueError(f"ONNX model gave {len(got)} outputs, PyTorch {len(expected)}")
            for a, b in zip(got, expected):
                if tuple(a.shape) != tuple(b.shape):
                    raise ValueError(
                        f"ONNX output shape {tuple(a.shape)} != PyTorch {tuple(b.shape)} for input {tuple(x.shape)}"
                    )
                worst = max(worst, float((torch.from_numpy(a) - b).abs().max()))
    if worst > atol:
        raise ValueError(f"ONNX Runtime differs from PyTorch by {worst:.2e} (allowed {atol:.0e})")
    return worst


def check_exported_program(
    program: torch.export.ExportedProgram, model: nn.Module, inputs: Sequence[Tensor], *, atol: float = 1e-4
) -> float:
    """The max abs difference of ``program`` to eager ``model`` over ``inputs``; over ``atol`` raises."""
    worst = 0.0
    module = program.module()
    with torch.no_grad():
        for x in inputs:
            for a, b in zip(outputs(module(x)), outputs(model(x))):
                worst = max(worst, float((a - b).abs().max()))
    if worst > atol:
        raise ValueError(f"ExportedProgram differs from eager PyTorch by {worst:.2e} (allowed {atol:.0e})")
    return worst


def export_model(model: nn.Module, output: Path, *, fmt: str, image_size: int, dynamo: bool = False) -> float:
    """Export ``model`` to ``output`` in ``fmt`` after checking it; returns the max abs difference."""
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
        if not onnx_size_is_dynamic(data):  # fixed-size pooling (AlexNet, VGG): another batch, the same size
            other = torch.randn(2, 3, image_size, image_size)
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
            worst = max(
                float((a - b).abs().max())
                for x in (sample, other)
                for a, b in zip(outputs(scripted(x)), outputs(model(x)))
            )
        if worst > 1e-4:
            raise ValueError(f"TorchScript differs from eager PyTorch by {worst:.2e}")
        # into memory first: torch.jit.save aborts the process (rc 134) when the disk fills up
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        atomic_write_bytes(output, buffer.getvalue())
    return worst
