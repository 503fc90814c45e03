"""The pieces of torchvision's classification recipe, as small pure functions.

Everything here is independent of Lightning so it can be unit-tested and reused: the parameter
groups (no weight decay on norm layers and biases, a lower learning rate for the backbone), the
per-step learning-rate factor (linear warm-up, then cosine), the linear learning-rate scaling
with the global batch, and the per-batch choice of CutMix or MixUp.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)
HEAD_PREFIX = "head."


def is_norm_module(module: nn.Module) -> bool:
    """Batch/instance/group/layer norms, and any custom layer whose class name says it is a norm."""
    return isinstance(module, NORM_TYPES) or "norm" in type(module).__name__.lower()


def param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    norm_weight_decay: float = 0.0,
    bias_weight_decay: float = 0.0,
    backbone_lr_scale: float = 1.0,
    head_prefixes: Iterable[str] = (HEAD_PREFIX,),
) -> list[dict[str, Any]]:
    """Optimizer parameter groups, as in torchvision's ``set_weight_decay``.

    Parameters of norm layers get ``norm_weight_decay`` (0 in the recipe), biases get
    ``bias_weight_decay`` (0), the rest ``weight_decay``. Parameters outside the head (names not
    starting with one of ``head_prefixes``) get ``lr * backbone_lr_scale`` (fine-tuning). Frozen
    parameters (``requires_grad=False``) are left out. Each group has a ``name`` for logging.
    """
    head_prefixes = tuple(head_prefixes)
    norm_params = {id(p) for m in model.modules() if is_norm_module(m) for p in m.parameters(recurse=False)}
    groups: dict[tuple[str, str], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "head" if name.startswith(head_prefixes) else "backbone"
        if id(param) in norm_params:
            kind = "norm"
        elif name.endswith("bias"):
            kind = "bias"
        else:
            kind = "weight"
        groups.setdefault((part, kind), []).append(param)
    decay = {"weight": weight_decay, "norm": norm_weight_decay, "bias": bias_weight_decay}
    result = []
    for (part, kind), params in sorted(groups.items()):
        scale = backbone_lr_scale if part == "backbone" else 1.0
        if scale == 0.0:
            continue
        result.append({"params": params, "lr": lr * scale, "weight_decay": decay[kind], "name": f"{part}/{kind}"})
    return result


def scaled_lr(base_lr: float, global_batch: int, reference_batch: int) -> float:
    """The linear scaling rule: ``base_lr`` was tuned for ``reference_batch`` images per step."""
    if global_batch < 1 or reference_batch < 1:
        raise ValueError(f"batch sizes must be >= 1, got global {global_batch}, reference {reference_batch}")
    return base_lr * global_batch / reference_batch


def lr_factor(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int,
    warmup_start_factor: float = 0.01,
    min_factor: float = 0.0,
) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based).

    Linear warm-up from ``warmup_start_factor`` to 1 over ``warmup_steps`` steps (torchvision's
    ``LinearLR``), then cosine annealing from 1 to ``min_factor`` at ``total_steps``.
    """
    if step < warmup_steps:
        return warmup_start_factor + (1.0 - warmup_start_factor) * step / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_batch_mix(num_classes: int, cutmix_alpha: float, mixup_alpha: float) -> nn.Module | None:
    """CutMix or MixUp, exactly one per batch (torchvision.transforms.v2), or ``None`` when both are off."""
    from torchvision.transforms import v2

    choices: list[nn.Module] = []
    if cutmix_alpha > 0:
        choices.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if mixup_alpha > 0:
        choices.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    if not choices:
        return None
    return choices[0] if len(choices) == 1 else v2.RandomChoice(choices)


def ema_decay_torchvision(decay: float, *, global_batch: int, every_n_steps: int, epochs: int) -> float:
    """torchvision's per-update EMA decay (``--model-ema-decay`` adjusted for batch, steps and epochs)."""
    adjust = global_batch * every_n_steps / epochs
    alpha = min(1.0, (1.0 - decay) * adjust)
    return 1.0 - alpha


@torch.no_grad()
def copy_into_average(ema: torch.optim.swa_utils.AveragedModel) -> None:
    """Make the next EMA update copy the live weights (used during the warm-up, as torchvision does)."""
    ema.n_averaged.zero_()
