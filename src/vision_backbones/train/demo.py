"""The data and files of ``backbones demo``: resnet18 on scikit-learn's bundled digits, end to end, on a CPU.

The 1,797 8x8 digit images are written once as PNG files (upscaled to 32x32) into the same
``train/<class>/`` and ``val/<class>/`` layout ImageNet uses, then trained through the very same
``backbones train fit`` path (LightningCLI, ImageDataModule, ImageClassifier) with
``configs/demo.yaml``. Everything lands in ``runs/demo/``. The command is :mod:`vision_backbones.cli.demo`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DEMO_DIR = Path("runs/demo")
DATA_DIR = DEMO_DIR / "data"
IMAGE_SIZE = 32
MARKER = ".complete"


def write_digits(
    root: Path = DATA_DIR, *, size: int = IMAGE_SIZE, val_fraction: float = 0.2, seed: int = 0
) -> dict[str, int]:
    """Write the digits as ``root/{train,val}/<digit>/<index>.png`` once (atomically: a finished tree or none)."""
    counts_file = root / MARKER
    if counts_file.is_file():
        train = sum(1 for _ in (root / "train").glob("*/*.png"))
        val = sum(1 for _ in (root / "val").glob("*/*.png"))
        return {"train": train, "val": val, "written": 0}
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).clip(0, 255).astype(np.uint8)
    indices = np.arange(len(images))
    train_idx, val_idx = train_test_split(indices, test_size=val_fraction, random_state=seed, stratify=digits.target)
    tmp = root.with_name(root.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    for split, split_idx in (("train", train_idx), ("val", val_idx)):
        for i in split_idx:
            folder = tmp / split / str(int(digits.target[i]))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], mode="L").resize((size, size), Image.Resampling.BICUBIC).save(
                folder / f"{i:04d}.png"
            )
    (tmp / MARKER).write_text(f"{len(train_idx)} train, {len(val_idx)} val\n")
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, root)
    return {"train": len(train_idx), "val": len(val_idx), "written": len(indices)}


def find_config() -> Path:
    here = Path(__file__).resolve()
    for candidate in (Path("configs/demo.yaml"), here.parents[3] / "configs" / "demo.yaml", here.parent / "demo.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("configs/demo.yaml not found; run from the repository root or pass --config")


def clear_previous_run(run_dir: Path) -> None:
    """Remove the artifacts of an earlier demo (the written images are kept)."""
    for name in ("checkpoints", "tensorboard"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for name in ("metrics.csv", "hparams.yaml", "config.yaml", "curves.png", "backbone.safetensors"):
        (run_dir / name).unlink(missing_ok=True)
