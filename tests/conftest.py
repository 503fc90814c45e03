"""Shared test fixtures: one thread per xdist worker, the registry, and reference builders."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, torch.get_num_threads()))

@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def randomize_norm_stats(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BN running statistics, so a mis-mapped BN buffer shows in the outputs."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
            if module.affine:
                # Gains below 1 keep deep random networks' activations O(1), so an absolute
                # tolerance of 1e-4 stays meaningful in float32.
                module.weight.data.copy_(torch.rand(module.weight.shape, generator=generator) * 0.5 + 0.25)
                module.bias.data.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model


def assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor, tolerance: float = 1e-4) -> None:
    """Max abs difference within ``tolerance`` times the output's scale (at least 1).

    Randomly initialised deep networks can produce activations of 1e6 and more, where float32
    reordering alone (channels_last, folded batch norm, another runtime) moves the last digits.
    """
    scale = max(1.0, expected.abs().max().item())
    difference = (actual - expected).abs().max().item()
    assert difference <= tolerance * scale, f"max abs difference {difference:.3g} > {tolerance:g} x scale {scale:.3g}"
