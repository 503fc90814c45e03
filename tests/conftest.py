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
                module.weight.data.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.data.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model
