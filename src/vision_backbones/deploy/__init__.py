"""Inference-time tools: batch-norm folding, memory-format choice, verified export.

The export formats (ONNX, ExportedProgram, TorchScript, each checked against eager PyTorch):
:mod:`~vision_backbones.deploy.formats`. Deployment at reduced precision:
:mod:`~vision_backbones.deploy.checked_export` (``export_checked``: build, check against eager,
choose, write), :mod:`~vision_backbones.deploy.runtimes` (ONNX Runtime,
OpenVINO, torch; ``load`` a written file), :mod:`~vision_backbones.deploy.precision` (the check and
its thresholds, bf16 support), :mod:`~vision_backbones.deploy.quantize` (int8 PTQ) and
:mod:`~vision_backbones.deploy.calibration` (calibration images through the eval transform).
"""

from vision_backbones.deploy.fuse import choose_memory_format, fuse, optimize_for_inference

__all__ = ["choose_memory_format", "fuse", "optimize_for_inference"]
