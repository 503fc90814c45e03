"""Inference runtimes for a deployed model: ONNX Runtime, OpenVINO and PyTorch (fused, compiled).

Each builder turns an eval-mode model into an :class:`Artefact`: the bytes of its files and a
``predict`` function that runs *those bytes* (loaded back, not the model they came from), so the
check before writing tests exactly what will be on disk. Which precision each runtime offers:

=========== ===================================== ==================================== ===============================
runtime     fp32                                  bf16                                 int8
=========== ===================================== ==================================== ===============================
onnxruntime the verified ONNX export              refused: no bf16 kernels on CPU      static QDQ, per-channel
openvino    IR from the ONNX export, f32 hint     same IR, ``INFERENCE_PRECISION_HINT``  NNCF on the IR
torch       ExportedProgram of the fused model    + channels_last, autocast, compile   refused: use onnxruntime/openvino
=========== ===================================== ==================================== ===============================
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from vision_backbones.deploy.formats import onnx_bytes, outputs
from vision_backbones.io import read_json

RUNTIMES = ("onnxruntime", "openvino", "torch")
SUFFIXES = {"onnxruntime": ".onnx", "openvino": ".xml", "torch": ".pt2"}
# (precision, runtime) pairs that are not offered, with the reason given to the user.
UNSUPPORTED = {
    (
        "bf16",
        "onnxruntime",
    ): "ONNX Runtime's CPU provider has no bf16 convolution kernels; expected --runtime openvino or torch",
    ("int8", "torch"): "the torch runtime has no int8 path here; expected --runtime onnxruntime or openvino",
}
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}

Predict = Callable[[Tensor], list[Tensor]]


@dataclasses.dataclass
class Artefact:
    """The files of a deployed model (suffix -> bytes, written in this order) and a predictor running them."""

    runtime: str
    precision: str
    files: dict[str, bytes]
    predict: Predict
    settings: dict[str, Any]


def runtimes_for(precision: str) -> list[str]:
    """The runtimes that offer ``precision``, in the order ``--runtime auto`` tries them."""
    return [runtime for runtime in RUNTIMES if (precision, runtime) not in UNSUPPORTED]


# ------------------------------------------------------------------------------------ ONNX Runtime


def onnxruntime_predictor(data: bytes, *, threads: int | None = None) -> Predict:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    # no busy-waiting between runs: spinning worker threads would steal the cores of whatever runs next
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(x: Tensor) -> list[Tensor]:
        return [torch.from_numpy(array) for array in session.run(None, {name: x.contiguous().numpy()})]

    return predict


def build_onnxruntime(
    model: nn.Module,
    sample: Tensor,
    *,
    precision: str,
    calibration: Sequence[Tensor] = (),
    threads: int | None = None,
    onnx_model: bytes | None = None,
) -> Artefact:
    """fp32: the library's ONNX export (dynamic batch and size); int8: it quantized (static QDQ)."""
    from vision_backbones.deploy.quantize import onnxruntime_int8

    data = onnx_model if onnx_model is not None else onnx_bytes(model, sample)
    if precision == "int8":
        data = onnxruntime_int8(data, calibration)
    return Artefact("onnxruntime", precision, {".onnx": data}, onnxruntime_predictor(data, threads=threads), {})


# ------------------------------------------------------------------------------------ OpenVINO


def openvino_config(precision: str, threads: int | None) -> dict[str, Any]:
    """Compile options: the inference precision (int8 graphs keep their unquantized ops in fp32), latency, one stream."""
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION.get(precision, "f32"),
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


def openvino_predictor(xml: bytes, weights: bytes, config: dict[str, Any]) -> Predict:
    import openvino

    core = openvino.Core()
    compiled = core.compile_model(
        core.read_model(
            xml.decode(),
            openvino.Tensor(np.frombuffer(weights, dtype=np.uint8))
            if weights
            else openvino.Tensor(np.empty(0, np.uint8)),
        ),
        "CPU",
        config,
    )
    request = compiled.create_infer_request()

    def predict(x: Tensor) -> list[Tensor]:
        results = request.infer([x.contiguous().numpy()])
        return [torch.from_numpy(results[output].copy()) for output in compiled.outputs]

    return predict


def build_openvino(
    model: nn.Module,
    sample: Tensor,
    *,
    precision: str,
    calibration: Sequence[Tensor] = (),
    threads: int | None = None,
    static_shape: Sequence[int] | None = None,
    onnx_model: bytes | None = None,
) -> Artefact:
    """An OpenVINO IR (``.xml`` + ``.bin``) converted from the library's verified ONNX export.

    ``static_shape`` fixes the input (``(batch, 3, H, W)``; OpenVINO then plans memory once);
    otherwise batch, height and width stay dynamic. int8: NNCF quantizes the dynamic model first,
    then the shape is fixed. Weights stay fp32 in the file; bf16 is a compile-time precision hint.
    """
    import openvino

    from vision_backbones.deploy.quantize import openvino_int8

    data = onnx_model if onnx_model is not None else onnx_bytes(model, sample)
    with tempfile.TemporaryDirectory(prefix="vb-openvino-") as folder:
        source = Path(folder) / "model.onnx"
        source.write_bytes(data)
        converted = openvino.convert_model(str(source))
        if precision == "int8":
            converted = openvino_int8(converted, calibration)
        if static_shape is not None:
            converted.reshape({converted.inputs[0]: openvino.PartialShape(list(static_shape))})
        config = openvino_config(precision, threads)
        # record the precision in the IR too, so a plain core.compile_model(path) can apply it
        converted.set_rt_info(config["INFERENCE_PRECISION_HINT"], ["runtime_options", "INFERENCE_PRECISION_HINT"])
        target = Path(folder) / "model.xml"
        openvino.save_model(converted, str(target), compress_to_fp16=False)
        xml, weights = target.read_bytes(), target.with_suffix(".bin").read_bytes()
    settings = {
        "openvino_config": {k: v for k, v in config.items() if k != "INFERENCE_NUM_THREADS"},
        "static_shape": list(static_shape) if static_shape else None,
    }
    # .bin first, .xml last: the .xml names the model, so it appears only once its weights are complete
    return Artefact(
        "openvino", precision, {".bin": weights, ".xml": xml}, openvino_predictor(xml, weights, config), settings
    )


# ------------------------------------------------------------------------------------ PyTorch


def torch_predictor(program_bytes: bytes, *, precision: str, channels_last: bool, compile: bool) -> Predict:
    """Load an ExportedProgram and run it: channels_last, bf16 autocast (for bf16) and ``torch.compile``."""
    from vision_backbones.measure.steps import autocast

    module: nn.Module = torch.export.load(io.BytesIO(program_bytes)).module()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        module = module.to(memory_format=memory_format)
    if compile:
        # torch.compile of a Module returns an OptimizedModule (a Module); torch types it as a callable
        module = cast(nn.Module, torch.compile(module))
    dtype = "bf16" if precision == "bf16" else "fp32"

    def predict(x: Tensor) -> list[Tensor]:
        with torch.inference_mode(), autocast(dtype):
            return [o.float() for o in outputs(module(x.contiguous(memory_format=memory_format)))]

    return predict


def build_torch(
    model: nn.Module,
    sample: Tensor,
    *,
    precision: str,
    compile: bool = True,
    channels_last: bool | None = None,
    **_: Any,
) -> Artefact:
    """``fuse`` (batch norm folded) -> ``torch.export`` with a dynamic batch (the image size is fixed) -> ``.pt2``.

    At load time the program runs in channels_last (measured on this machine unless given), under
    bf16 autocast for bf16, compiled with ``torch.compile`` (compiled code cannot be stored, so
    it is compiled where it runs).
    """
    from vision_backbones.deploy.fuse import choose_memory_format, fuse

    fused = fuse(model)
    if channels_last is None:
        channels_last = choose_memory_format(fused, sample.repeat(2, 1, 1, 1), repeats=3) == torch.channels_last
    batch = torch.export.Dim("batch", min=1, max=1024)
    with warnings_ignored():
        # traced with a batch of 2: torch.export specializes dimensions of size 1
        program = torch.export.export(fused, (sample.repeat(2, 1, 1, 1),), dynamic_shapes={"x": {0: batch}})
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    data = buffer.getvalue()
    settings = {"channels_last": channels_last, "compile": compile, "autocast": "bf16" if precision == "bf16" else None}
    return Artefact(
        "torch",
        precision,
        {".pt2": data},
        torch_predictor(data, precision=precision, channels_last=channels_last, compile=compile),
        settings,
    )


@contextlib.contextmanager
def warnings_ignored() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


BUILDERS: dict[str, Callable[..., Artefact]] = {
    "onnxruntime": build_onnxruntime,
    "openvino": build_openvino,
    "torch": build_torch,
}


def check_pair(precision: str, runtime: str) -> None:
    """Refuse an unknown precision or runtime, or a pair that is not offered, in one line."""
    from vision_backbones.deploy.precision import PRECISIONS
    from vision_backbones.validate import check_choice

    check_choice("precision", precision, PRECISIONS)
    check_choice("runtime", runtime, (*RUNTIMES, "auto"))
    if (precision, runtime) in UNSUPPORTED:
        raise ValueError(f"precision {precision!r} on runtime {runtime!r}: {UNSUPPORTED[precision, runtime]}")


# ``backbones export --format F``: the runtime whose file that format is (TorchScript runs on none of them)
FORMAT_RUNTIMES: dict[str, str | None] = {"onnx": "onnxruntime", "exported-program": "torch", "torchscript": None}


def deploy_target(fmt: str | None, precision: str | None, runtime: str | None) -> tuple[str, str] | None:
    """What ``backbones export --format F --precision P --runtime R`` writes: ``(precision, runtime)`` of a
    deployed artefact, or ``None`` for the plain fp32 export in ``fmt`` (``--format`` alone, or nothing).

    ``--format`` and ``--precision`` / ``--runtime`` combine where the format is that runtime's file
    (``--format onnx --precision int8``: ONNX Runtime's int8 ``.onnx``); every other pair is refused in
    one line naming both, so an int8 OpenVINO ``.xml`` is never written for ``--format torchscript``.
    """
    from vision_backbones.deploy.precision import PRECISIONS
    from vision_backbones.validate import check_choice

    if fmt is not None:
        check_choice("format", fmt, tuple(FORMAT_RUNTIMES))
    if precision is not None:
        check_choice("precision", precision, PRECISIONS)
    if runtime is not None:
        check_choice("runtime", runtime, (*RUNTIMES, "auto"))
    if precision is None and runtime is None:
        return None
    if fmt is None:
        resolved = (precision or "fp32", runtime or "auto")
        check_pair(*resolved)
        return resolved
    own = FORMAT_RUNTIMES[fmt]
    if own is None:  # TorchScript: the plain fp32 export, on no deploy runtime
        if runtime is None and precision == "fp32":
            return None
        asked = " ".join(
            f"--{flag} {value}" for flag, value in (("precision", precision), ("runtime", runtime)) if value
        )
        raise ValueError(
            f"--format {fmt} with {asked}: TorchScript is exported in fp32 only and runs on none of the deploy "
            "runtimes; expected --format onnx or exported-program, or --runtime without --format"
        )
    if runtime is not None and runtime != own:
        raise ValueError(
            f"--format {fmt} with --runtime {runtime}: --format {fmt} is the {SUFFIXES[own]} file of --runtime {own}; "
            f"expected --runtime {own}, or --runtime {runtime} without --format"
        )
    chosen = precision or "fp32"
    if (chosen, own) in UNSUPPORTED:
        offered = [f for f, r in FORMAT_RUNTIMES.items() if r is not None and (chosen, r) not in UNSUPPORTED]
        others = [r for r in runtimes_for(chosen) if r not in FORMAT_RUNTIMES.values()]
        raise ValueError(
            f"--format {fmt} with --precision {chosen}: {fmt} files here hold no {chosen} model ({own} offers none); "
            f"expected --format {' or '.join(offered)}"
            + (f", or --runtime {' or '.join(others)} without --format" if others else "")
        )
    return chosen, own


def build(model: nn.Module, sample: Tensor, *, precision: str, runtime: str, **options: Any) -> Artefact:
    """The artefact of ``model`` for ``precision`` on ``runtime`` (``options``: the builder's keywords)."""
    check_pair(precision, runtime)
    if runtime == "auto":
        raise ValueError(
            "runtime 'auto' chooses among several artefacts; expected one of " + ", ".join(RUNTIMES) + " here"
        )
    return BUILDERS[runtime](model, sample, precision=precision, **options)


def load(path: str | Path, *, threads: int | None = None) -> Predict:
    """A predictor for an exported file, with the settings stored in its ``.check.json``."""
    path = Path(path)
    sidecar = check_file_for(path)
    if not sidecar.is_file():
        raise ValueError(
            f"{str(path)!r} has no {sidecar.name} beside it; expected a file written by `backbones export --precision`"
        )
    info = read_json(sidecar)
    runtime, precision, settings = info["runtime"], info["precision"], info.get("settings", {})
    if runtime == "onnxruntime":
        return onnxruntime_predictor(path.read_bytes(), threads=threads)
    if runtime == "openvino":
        config = {**settings.get("openvino_config", {}), **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
        return openvino_predictor(path.read_bytes(), path.with_suffix(".bin").read_bytes(), config)
    return torch_predictor(
        path.read_bytes(),
        precision=precision,
        channels_last=settings.get("channels_last", False),
        compile=settings.get("compile", True),
    )


def check_file_for(path: str | Path) -> Path:
    """Where the check result of ``path`` is stored: ``model.onnx`` -> ``model.onnx.check.json``."""
    path = Path(path)
    return path.with_name(path.name + ".check.json")
