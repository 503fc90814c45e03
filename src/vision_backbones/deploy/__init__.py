"""Inference-time tools: batch-norm folding, memory-format choice, verified export, profiling."""

from vision_backbones.deploy.fuse import choose_memory_format, fuse, optimize_for_inference

__all__ = ["choose_memory_format", "fuse", "optimize_for_inference"]
