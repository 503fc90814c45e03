"""Safe, strict, atomic weight files.

Weights are read from safetensors, or from PyTorch files with ``torch.load(weights_only=True)``:
nothing is ever unpickled. A checkpoint that does not fit is reported key by key before the model
is touched. Files are written to a temporary name and renamed, so an interrupted save never leaves
a half-written file behind.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vision_backbones.io import atomic_write

logger = logging.getLogger(__name__)

MODEL_KEY = "vision_backbones.model"
OVERRIDES_KEY = "vision_backbones.overrides"
HEAD_PREFIX = "head."


def _untuple(value: Any) -> Any:
    return tuple(_untuple(v) for v in value) if isinstance(value, list) else value


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state_dict, stored_overrides)`` from a safetensors or PyTorch weights file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}
        overrides = {k: _untuple(v) for k, v in json.loads(metadata.get(OVERRIDES_KEY, "{}")).items()}
        return state_dict, overrides
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (re-raised with the file name, first line only)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot read {str(path)!r} as plain tensors (weights_only=True): {first_line}") from None
    for wrapper in ("state_dict", "model", "model_ema"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
            break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise ValueError(f"{str(path)!r} holds no state dict of tensors")
    return dict(loaded), {}


def save_weights(
    state_dict: Mapping[str, Tensor],
    path: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``state_dict`` to a safetensors file atomically, with the architecture in its metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"expected a .safetensors output path, got {str(path)!r}")
    metadata = {"format": "pt", OVERRIDES_KEY: json.dumps(dict(overrides or {}))}
    if model_name:
        metadata[MODEL_KEY] = model_name
    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


def _adapt_input_channels(weight: Tensor, in_channels: int) -> Tensor:
    """RGB stem weights for another channel count: summed for 1 channel, tiled and rescaled otherwise."""
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)


def check_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor], *, source: str) -> dict[str, Tensor]:
    """The tensors to load into ``model``, or a ``ValueError`` naming every key that does not fit.

    Head weights are optional: a features-only model ignores them, and a model whose head does not
    match the checkpoint's (another number of classes, or none stored) keeps its fresh head: the
    fine-tuning case. Every other key must be present, expected and of the right shape.
    """
    expected = model.state_dict()
    in_channels = getattr(model, "in_channels", 3)
    # A features model built only up to some level ignores the weights of the levels it left out.
    pruned = tuple(getattr(model, "pruned_prefixes", lambda: ())())
    body = {k: v for k, v in state_dict.items() if not k.startswith(HEAD_PREFIX) and not k.startswith(pruned or ("\0",))}
    usable: dict[str, Tensor] = {}
    unexpected, misshaped = [], []
    for key, value in body.items():
        if key not in expected:
            unexpected.append(key)
            continue
        target = expected[key].shape
        if value.shape != target:
            adaptable = value.dim() == 4 and value.shape[1] == 3 and target[1] == in_channels
            if adaptable and value.shape[0] == target[0] and value.shape[2:] == target[2:]:
                value = _adapt_input_channels(value, in_channels)
            else:
                misshaped.append(f"{key} (checkpoint {tuple(value.shape)}, model {tuple(target)})")
                continue
        usable[key] = value
    missing = [k for k in expected if not k.startswith(HEAD_PREFIX) and k not in body]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys: {', '.join(misshaped)}")
    if problems:
        raise ValueError(f"checkpoint {source!r} does not fit {type(model).__name__}: " + "; ".join(problems))

    model_head = {k: v for k, v in expected.items() if k.startswith(HEAD_PREFIX)}
    stored_head = {k: v for k, v in state_dict.items() if k.startswith(HEAD_PREFIX)}
    head_fits = bool(stored_head) and all(k in model_head and v.shape == model_head[k].shape for k, v in stored_head.items())
    if model_head and head_fits:
        usable.update(stored_head)
        fresh = sorted(set(model_head) - set(stored_head))
        if fresh:  # e.g. auxiliary classifiers, which torchvision drops from its pretrained GoogLeNet
            logger.warning("%s: no weights for %s; they keep their initialisation", source, ", ".join(fresh))
    elif model_head:
        logger.warning("%s: no head weights fit this head (other num_classes?); keeping a fresh head", source)
    return usable


def load_pretrained(model: nn.Module, state_dict: Mapping[str, Tensor], *, source: str) -> nn.Module:
    """Load after ``check_state_dict`` accepted every key; the model is untouched otherwise."""
    usable = check_state_dict(model, state_dict, source=source)
    model.load_state_dict(usable, strict=False)
    return model
