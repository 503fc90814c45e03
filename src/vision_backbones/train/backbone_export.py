"""A training checkpoint -> backbone weights (what ``backbones export-backbone CKPT OUT.safetensors`` does).

Strips the Lightning wrapper (``model.`` / ``ema.module.`` prefixes, optimizer and loop state) and
the classifier head, and writes a safetensors file with the architecture in its metadata, loadable
with ``create_model(name, pretrained=OUT)`` (any ``num_classes``, or ``features_only=True``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vision_backbones.validate import check_choice
from vision_backbones.weights import HEAD_PREFIX, save_weights

PREFIXES = {"raw": "model.", "ema": "ema.module."}


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    if not os.access(path, os.R_OK):
        raise ValueError(f"cannot read checkpoint {str(path)!r}: permission denied")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot read {str(path)!r} as a training checkpoint (weights_only=True): {first}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{str(path)!r} is not a training checkpoint (holds a {type(loaded).__name__}, not a dict)")
    return loaded


def choose_weights(checkpoint: dict[str, Any], weights: str) -> str:
    """``raw`` or ``ema``; ``auto`` takes the EMA when it was at least as good on the last validation."""
    check_choice("weights", weights, ("auto", "raw", "ema"))
    state = checkpoint.get("state_dict", {})
    has_ema = any(k.startswith(PREFIXES["ema"]) for k in state)
    if weights == "ema" and not has_ema:
        raise ValueError("the checkpoint has no EMA weights (trained with model.ema=false); use --weights raw")
    if weights != "auto":
        return weights
    if not has_ema:
        return "raw"
    last = checkpoint.get("vision_backbones", {}).get("last_val", {})
    raw, ema = last.get("val/acc1"), last.get("val_ema/acc1")
    return "ema" if raw is None or ema is None or ema >= raw else "raw"


def export_backbone(
    checkpoint_path: str | Path, output: str | Path, *, weights: str = "auto", keep_head: bool = False
) -> tuple[Path, dict[str, Any]]:
    """Write the backbone weights of a training checkpoint; returns the path and what was exported."""
    checkpoint = read_training_checkpoint(checkpoint_path)
    state = checkpoint.get("state_dict")
    info = checkpoint.get("vision_backbones")
    if not isinstance(state, dict) or not isinstance(info, dict):
        raise ValueError(
            f"{str(checkpoint_path)!r} is not a vision_backbones training checkpoint (no state_dict / model name)"
        )
    chosen = choose_weights(checkpoint, weights)
    prefix = PREFIXES[chosen]
    backbone = {
        key[len(prefix) :]: value
        for key, value in state.items()
        if key.startswith(prefix) and (keep_head or not key[len(prefix) :].startswith(HEAD_PREFIX))
    }
    if not backbone:
        raise ValueError(f"no {chosen} weights under {prefix!r} in {str(checkpoint_path)!r}")
    path = save_weights(backbone, output, model_name=info["model"], overrides=info.get("overrides") or {})
    summary = {
        "model": info["model"],
        "weights": chosen,
        "tensors": len(backbone),
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
        "val": info.get("last_val", {}),
    }
    return path, summary
