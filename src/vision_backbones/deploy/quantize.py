"""int8 post-training quantization with calibration images: ONNX Runtime static QDQ and NNCF for OpenVINO.

Both take the library's verified fp32 ONNX export and calibration batches already passed through
the eval transform (:mod:`~vision_backbones.deploy.calibration`), so the activation ranges are those
the deployed model sees.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

# VNNI (AVX-512 or AVX) has a u8 x s8 dot product without the 16-bit overflow of plain AVX2/AVX-512
# (vpmaddubsw saturates), so only CPUs without it need ONNX Runtime's 7-bit reduced weight range.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def _reduce_range(flags: Sequence[str] | None) -> bool:
    if flags is None:
        from vision_backbones.measure.machine import isa_flags

        flags = isa_flags()
    return not any(flag in flags for flag in VNNI_FLAGS)


def onnxruntime_int8(onnx_model: bytes, calibration: Sequence[Tensor], *, flags: Sequence[str] | None = None) -> bytes:
    """Static QDQ quantization, per-channel int8 weights and uint8 activations (MinMax calibration).

    ``quant_pre_process`` (symbolic shape inference + ONNX Runtime's graph optimizations: BN
    folding, constant folding) runs first, as ONNX Runtime's quantization guide prescribes: it lets
    the quantizer see fused conv + activation patterns.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("int8 quantization needs calibration images; expected at least one batch")

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self.batches = iter([{name: batch.numpy()} for batch in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    import onnx

    input_name = onnx.load_from_string(onnx_model).graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="vb-quantize-") as folder:
        source, prepared, quantized = (Path(folder) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(onnx_model)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False)
        quantize_static(
            str(prepared),
            str(quantized),
            Reader(input_name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=_reduce_range(flags),
        )
        return quantized.read_bytes()


def openvino_int8(model: Any, calibration: Sequence[Tensor]) -> Any:
    """``nncf.quantize`` of an ``openvino.Model`` (the PERFORMANCE preset: symmetric int8, fast bias correction)."""
    import nncf

    if not calibration:
        raise ValueError("int8 quantization needs calibration images; expected at least one batch")
    # one image per item: NNCF's subset_size counts items, and a batch dimension of 1 fits any input shape
    images = [image[None].numpy() for batch in calibration for image in batch]
    return nncf.quantize(
        model, nncf.Dataset(images), subset_size=len(images), preset=nncf.QuantizationPreset.PERFORMANCE
    )
