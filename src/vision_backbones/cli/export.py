"""``backbones export``: to ONNX, ``torch.export`` ExportedProgram or TorchScript, or for a runtime and precision, with the outputs checked.

``backbones export NAME OUT.onnx --format onnx [--features] [--pretrained PATH]``. ONNX files get
dynamic batch and image size, are run with ONNX Runtime on a second input shape and compared with
eager PyTorch (max abs difference <= 1e-4 by default); a file that fails the check is not kept.

``backbones export NAME OUT --precision fp32|bf16|int8 --runtime onnxruntime|openvino|torch|auto
[--calibration PATH] [--check-data PATH]``: a deployed model for that runtime, checked against eager
PyTorch before it is written (:mod:`~vision_backbones.deploy.checked_export`), with the check result
in ``OUT.check.json``. ``--format`` combines with them only where the format is that runtime's file
(``onnx``: onnxruntime, ``exported-program``: torch); other pairs are refused in one line
(:func:`~vision_backbones.deploy.runtimes.deploy_target`). The arguments go through the checks
``export_checked`` runs (:func:`~vision_backbones.deploy.checked_export.check_export_arguments`)
before any image is read.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from vision_backbones.cli import ArgumentParser, int_at_least, run_command
from vision_backbones.deploy.formats import FORMATS, FeaturesWrapper, export_model
from vision_backbones.deploy.runtimes import deploy_target
from vision_backbones.io import check_overwrite


def main(argv: Sequence[str]) -> int:
    return run_command("backbones export", lambda: _run(argv))


def _run(argv: Sequence[str]) -> int:
    from vision_backbones.registry import create_model

    parser = ArgumentParser(prog="backbones export", description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("output", type=Path)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="plain fp32 export (default onnx); with --precision/--runtime: onnx = --runtime onnxruntime, "
        "exported-program = --runtime torch (other pairs are refused)",
    )
    parser.add_argument(
        "--features", action="store_true", help="export forward_features (all levels) instead of logits"
    )
    parser.add_argument("--pretrained", type=Path, help="weights to load (safetensors)")
    parser.add_argument("--num-classes", type=int_at_least(1), default=1000)
    parser.add_argument("--image-size", type=int_at_least(1), default=224)
    parser.add_argument("--dynamo", action="store_true", help="use the torch.export-based ONNX exporter")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    deploy = parser.add_argument_group("deployment (--precision / --runtime)")
    deploy.add_argument("--precision", help="fp32, bf16 or int8 (default fp32 when --runtime is given)")
    deploy.add_argument(
        "--runtime",
        help="onnxruntime, openvino, torch, or auto: measure them here and keep the fastest that passes its check",
    )
    deploy.add_argument(
        "--calibration", help="int8 calibration images: a folder of class folders or WebDataset .tar shard(s)"
    )
    deploy.add_argument(
        "--calibration-images", type=int_at_least(1), default=128, help="images taken from --calibration"
    )
    deploy.add_argument(
        "--check-data",
        help="labelled images for the check (top-1 agreement and change); default: the calibration images",
    )
    deploy.add_argument("--check-images", type=int_at_least(1), default=1000, help="images taken from --check-data")
    deploy.add_argument(
        "--resize-size",
        type=int_at_least(1),
        help="eval transform: shorter side before the center crop (default image-size * 232 / 224)",
    )
    deploy.add_argument("--mean", type=float, nargs=3, default=None, help="normalization mean (default ImageNet's)")
    deploy.add_argument("--std", type=float, nargs=3, default=None, help="normalization std (default ImageNet's)")
    deploy.add_argument(
        "--static-batch",
        type=int,
        help="OpenVINO: fix the input to this batch and --image-size (default: dynamic shapes)",
    )
    deploy.add_argument("--threads", type=int, help="inference threads of the runtime (default: the runtime's own)")
    deploy.add_argument(
        "--no-compile",
        action="store_true",
        help="torch runtime: do not torch.compile (faster export, slower inference)",
    )
    args = parser.parse_args(argv)
    plan = deploy_target(args.format, args.precision, args.runtime)  # --format with --precision: combined or refused
    if plan is not None:
        return _run_deploy(args, *plan)
    args.format = args.format or "onnx"
    check_overwrite(args.output, force=args.force)
    model = create_model(
        args.name, num_classes=args.num_classes, features_only=args.features, pretrained=args.pretrained
    )
    target = FeaturesWrapper(model) if args.features else model
    worst = export_model(target, args.output, fmt=args.format, image_size=args.image_size, dynamo=args.dynamo)
    print(f"wrote {args.output} ({args.format}); max abs difference to eager PyTorch {worst:.2e}")
    return 0


def _run_deploy(args: argparse.Namespace, precision: str, runtime: str) -> int:
    from vision_backbones.deploy.calibration import check_normalization, load_images
    from vision_backbones.deploy.checked_export import check_export_arguments, check_outputs, export_checked
    from vision_backbones.registry import create_model
    from vision_backbones.train.transforms import IMAGENET_MEAN, IMAGENET_STD

    # the checks export_checked runs, here before any image is read
    check_export_arguments(
        precision,
        runtime,
        image_size=args.image_size,
        static_batch=args.static_batch,
        threads=args.threads,
        calibration=args.calibration,
    )
    check_outputs(args.output, precision, runtime, force=args.force)
    mean, std = check_normalization(
        tuple(args.mean or IMAGENET_MEAN), tuple(args.std or IMAGENET_STD), names=("--mean", "--std")
    )
    transform = {
        "resize_size": args.resize_size or round(args.image_size * 232 / 224),
        "crop_size": args.image_size,
        "mean": mean,
        "std": std,
    }
    calibration = (
        load_images(args.calibration, limit=args.calibration_images, what="--calibration", **transform)
        if args.calibration
        else None
    )
    check_data = (
        load_images(args.check_data, limit=args.check_images, what="--check-data", **transform)
        if args.check_data
        else None
    )
    model = create_model(
        args.name, num_classes=args.num_classes, features_only=args.features, pretrained=args.pretrained
    )
    target = FeaturesWrapper(model) if args.features else model
    path, check = export_checked(
        target,
        args.output,
        precision=precision,
        runtime=runtime,
        image_size=args.image_size,
        calibration=calibration,
        check_data=check_data,
        static_batch=args.static_batch,
        threads=args.threads,
        compile=not args.no_compile,
        force=args.force,
    )
    print(
        f"wrote {path} ({check.precision}, {check.runtime}); check: {check.summary()}; stored in {path.name}.check.json"
    )
    return 0
