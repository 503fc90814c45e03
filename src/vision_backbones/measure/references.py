"""Reference models for comparisons: a torchvision/timm model and ours holding the same weights.

Tests (logits equal within 1e-4) and ``benchmarks/compare.py`` (same weights, then speed) build
their references here, so both compare against the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

LIBRARIES = ("torchvision", "timm")


def randomize_norm_stats(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial batch-norm statistics and affine parameters, so a mis-mapped BN buffer shows in the outputs.

    Gains below 1 (0.25-0.75) keep deep random networks' activations O(1), so an absolute
    tolerance of 1e-4 stays meaningful in float32. Returns ``model`` (changed in place).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if (
                isinstance(module, nn.modules.batchnorm._BatchNorm)
                and module.running_mean is not None
                and module.running_var is not None
            ):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(module.weight.shape, generator=generator) * 0.5 + 0.25)
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model


def build_reference(library: str, name: str, *, seed: int = 0, **kwargs: Any) -> nn.Module:
    """``library``'s model ``name`` with random weights and randomized batch-norm statistics, in eval mode.

    The weights are drawn after ``torch.manual_seed(seed)`` (the global generator, which both
    libraries' initializers use), so a reference is the same in every run. ``kwargs`` go to
    ``torchvision.models.get_model`` / ``timm.create_model`` (e.g. ``drop_path_rate``).
    """
    if library not in LIBRARIES:
        raise ValueError(f"unknown reference library {library!r}; expected one of {', '.join(LIBRARIES)}")
    torch.manual_seed(seed)
    if library == "torchvision":
        import torchvision

        model = torchvision.models.get_model(name, weights=None, **kwargs)
    else:
        import timm

        model = timm.create_model(name, pretrained=False, **kwargs)
    return randomize_norm_stats(model).eval()


def build_pair(
    library: str, name: str, *, seed: int = 0, reference_kwargs: Mapping[str, Any] | None = None
) -> tuple[nn.Module, nn.Module]:
    """``(ours, theirs)`` in eval mode: the reference from :func:`build_reference`, ours converted from its state dict."""
    from vision_backbones.convert import from_timm, from_torchvision

    theirs = build_reference(library, name, seed=seed, **dict(reference_kwargs or {}))
    convert = from_torchvision if library == "torchvision" else from_timm
    return convert(name, theirs.state_dict()).eval(), theirs
