"""``backbones export-backbone CKPT OUT.safetensors``: a training checkpoint -> backbone weights.

Strips the Lightning wrapper (``model.`` / ``ema.module.`` prefixes, optimizer and loop state) and
the classifier head, and writes a safetensors file with the architecture in its metadata, loadable
with ``create_model(name, pretrained=OUT)`` (any ``num_classes``, or ``features_only=True``).
"""

from __future__ import annotations

import os
import sys
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
    except Exception as error:  # noqa: BLE001
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


def export_backbone(checkpoint_path: str | Path, output: str | Path, *, weights: str = "auto", keep_head: bool = False) -> tuple[Path, dict[str, Any]]:
    """Write the backbone weights of a training checkpoint; returns the path and what was exported."""
    checkpoint = read_training_checkpoint(checkpoint_path)
    state = checkpoint.get("state_dict")
    info = checkpoint.get("vision_backbones")
    if not isinstance(state, dict) or not isinstance(info, dict):
        raise ValueError(f"{str(checkpoint_path)!r} is not a vision_backbones training checkpoint (no state_dict / model name)")
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


def main(argv: list[str]) -> int:
    from vision_backbones.cli import run_command

    return run_command("backbones export-backbone", lambda: _run(argv))


def _run(argv: list[str]) -> int:
    from vision_backbones.cli import ArgumentParser
    from vision_backbones.io import check_overwrite

    parser = ArgumentParser(prog="backbones export-backbone", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a .ckpt from `backbones train`")
    parser.add_argument("output", type=Path, help="output .safetensors")
    parser.add_argument("--weights", choices=["auto", "raw", "ema"], default="auto", help="raw or EMA weights (auto: the better on validation)")
    parser.add_argument("--keep-head", action="store_true", help="keep the classifier head")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    args = parser.parse_args(argv)
    if args.output.suffix != ".safetensors":
        raise ValueError(f"expected a .safetensors output path, got {str(args.output)!r}")
    check_overwrite(args.output, force=args.force)
    path, summary = export_backbone(args.checkpoint, args.output, weights=args.weights, keep_head=args.keep_head)
    print(
        f"wrote {path}: {summary['model']} backbone ({summary['weights']} weights, {summary['tensors']} tensors, "
        f"epoch {summary['epoch']}); load with create_model({summary['model']!r}, pretrained={str(path)!r})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
