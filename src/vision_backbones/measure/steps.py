"""The work being timed: the dtype context of a call, and one training step (forward + backward + SGD)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_leaves

DTYPES = ("fp32", "bf16")


def autocast(dtype: str) -> contextlib.AbstractContextManager[Any]:
    """bf16: CPU autocast to bfloat16; fp32: nothing."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    return torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()


def classification_loss(output: Any, target: Tensor) -> Tensor:
    """Cross entropy summed over every ``(B, classes)`` tensor the model returned (aux heads too)."""
    logits = [t for t in tree_leaves(output) if isinstance(t, Tensor) and t.dim() == 2]
    if not logits:  # features only: a made-up scalar that still back-propagates through everything
        return sum(t.float().mean() for t in tree_leaves(output) if isinstance(t, Tensor))  # type: ignore[return-value]
    return sum(nn.functional.cross_entropy(t.float(), target) for t in logits)  # type: ignore[return-value]


def training_step(
    model: nn.Module, x: Tensor, target: Tensor, *, dtype: str = "fp32", lr: float = 1e-4
) -> Callable[[], None]:
    """A closure running one forward + backward + SGD step of ``model`` (which must be in train mode)."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(dtype):
            output = model(x)
        classification_loss(output, target).backward()
        optimizer.step()

    return step
