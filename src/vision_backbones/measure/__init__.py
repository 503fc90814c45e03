"""Measuring models: timing, memory, the machine, and reference models to compare against.

Shared by ``backbones profile`` (:mod:`~vision_backbones.measure.profile`), ``benchmarks/compare.py``
and the tests. Imports torch only; torchvision/timm are imported when a reference is built.

- :mod:`~vision_backbones.measure.timing`: warm-up + repeats, interleaved A/B rounds, medians and spreads;
- :mod:`~vision_backbones.measure.ruler`: ruled timings (a fixed network timed in the same rounds cancels a
  shared machine's swings); :mod:`~vision_backbones.measure.allocator`: fixed glibc malloc thresholds;
- :mod:`~vision_backbones.measure.steps`: the dtype context and the training step being timed;
- :mod:`~vision_backbones.measure.memory`: peak activation bytes, bytes saved for backward;
- :mod:`~vision_backbones.measure.machine`: CPU model, ISA flags, cores and versions, recorded with every result;
- :mod:`~vision_backbones.measure.references`: torchvision/timm references with our weights, ``randomize_norm_stats``;
- :mod:`~vision_backbones.measure.profile`: parameters, FLOPs per level, memory and speed of a model (``backbones profile``),
  drawn by :mod:`~vision_backbones.measure.profile_plot`;
- :mod:`~vision_backbones.measure.predictor` (built by :mod:`~vision_backbones.measure.predictor_build`): the
  kernel-level latency predictor, its kernels from :mod:`~vision_backbones.measure.kernels` (eager PyTorch, a
  meta trace) or :mod:`~vision_backbones.measure.onnx_kernels` (ONNX Runtime, the optimized graph's nodes).
"""

from vision_backbones.measure.machine import cpu_model, isa_flags, machine_info
from vision_backbones.measure.memory import LiveActivationMemory, SavedForBackward
from vision_backbones.measure.references import build_pair, build_reference, randomize_norm_stats
from vision_backbones.measure.steps import DTYPES, autocast, classification_loss, training_step
from vision_backbones.measure.timing import (
    call_seconds,
    interleaved_times,
    num_threads,
    ratio_summary,
    summarize,
    time_calls,
)

__all__ = [
    "DTYPES",
    "LiveActivationMemory",
    "SavedForBackward",
    "autocast",
    "build_pair",
    "build_reference",
    "call_seconds",
    "classification_loss",
    "cpu_model",
    "interleaved_times",
    "isa_flags",
    "machine_info",
    "num_threads",
    "randomize_norm_stats",
    "ratio_summary",
    "summarize",
    "time_calls",
    "training_step",
]
