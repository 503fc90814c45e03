"""``backbones export-backbone CKPT OUT.safetensors``: a training checkpoint -> backbone weights.

Strips the Lightning wrapper and the classifier head (:mod:`vision_backbones.train.backbone_export`)
and writes a safetensors file loadable with ``create_model(name, pretrained=OUT)``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vision_backbones.cli import ArgumentParser, run_command
from vision_backbones.io import check_overwrite
from vision_backbones.train.backbone_export import export_backbone


def main(argv: list[str]) -> int:
    return run_command("backbones export-backbone", lambda: _run(argv))


def _run(argv: list[str]) -> int:
    parser = ArgumentParser(prog="backbones export-backbone", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a .ckpt from `backbones train`")
    parser.add_argument("output", type=Path, help="output .safetensors")
    parser.add_argument(
        "--weights",
        choices=["auto", "raw", "ema"],
        default="auto",
        help="raw or EMA weights (auto: the better on validation)",
    )
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
