"""``backbones demo``: train resnet18 on scikit-learn's bundled digits, end to end, on a CPU.

The 1,797 8x8 digit images are written once as PNG files (upscaled to 32x32) into the same
``train/<class>/`` and ``val/<class>/`` layout ImageNet uses, then trained through the very same
``backbones train fit`` path (LightningCLI, ImageDataModule, ImageClassifier) with
``configs/demo.yaml``. Everything lands in ``runs/demo/``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

DEMO_DIR = Path("runs/demo")
DATA_DIR = DEMO_DIR / "data"
IMAGE_SIZE = 32
MARKER = ".complete"


def write_digits(root: Path = DATA_DIR, *, size: int = IMAGE_SIZE, val_fraction: float = 0.2, seed: int = 0) -> dict[str, int]:
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
            Image.fromarray(images[i], mode="L").resize((size, size), Image.BICUBIC).save(folder / f"{i:04d}.png")
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="backbones demo", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="demo config (default: configs/demo.yaml)")
    parser.add_argument("--epochs", type=int, default=None, help="override trainer.max_epochs")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads (default: CPU cores minus the one data worker; on a busy machine fewer threads are faster)",
    )
    parser.add_argument("--min-accuracy", type=float, default=0.95, help="exit 1 below this val top-1")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="more `backbones train fit` overrides, e.g. --model.lr 2.0")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 2) - 1))
    config = args.config or find_config()
    counts = write_digits()
    what = f"wrote {counts['written']} PNGs" if counts["written"] else "reusing the PNGs"
    print(f"demo: digits in {DATA_DIR}/ ({counts['train']} train, {counts['val']} val; {what}); config {config}")
    clear_previous_run(DEMO_DIR)

    from vision_backbones.train.cli import main as train_main

    fit_args = ["fit", "--config", str(config)]
    if args.epochs is not None:
        fit_args += ["--trainer.max_epochs", str(args.epochs)]
    code = train_main(fit_args + list(args.extra))
    if code:
        print(f"demo: training failed (exit {code})", file=sys.stderr)
        return code

    from vision_backbones.registry import create_model
    from vision_backbones.train.export import export_backbone

    checkpoints = sorted((DEMO_DIR / "checkpoints").glob("epoch*.ckpt"))
    best = checkpoints[-1] if checkpoints else DEMO_DIR / "checkpoints" / "last.ckpt"
    exported, summary = export_backbone(best, DEMO_DIR / "backbone.safetensors")
    create_model(summary["model"], pretrained=exported, features_only=True)  # proves it loads
    val = summary["val"]
    raw, ema = val.get("val/acc1", float("nan")), val.get("val_ema/acc1", float("nan"))
    accuracy = max(raw, ema)
    elapsed = time.perf_counter() - start
    print()
    print("demo summary")
    print(f"  val top-1        {100 * raw:.2f} % (raw weights), {100 * ema:.2f} % (EMA)   [best checkpoint: {best.name}]")
    print(f"  wall time        {elapsed:.0f} s")
    print(f"  config           {DEMO_DIR / 'config.yaml'} (and {DEMO_DIR / 'checkpoints' / 'config.yaml'})")
    print(f"  checkpoints      {DEMO_DIR / 'checkpoints'}/")
    print(f"  metrics          {DEMO_DIR / 'metrics.csv'}, TensorBoard: tensorboard --logdir {DEMO_DIR / 'tensorboard'}")
    print(f"  curves           {DEMO_DIR / 'curves.png'}")
    print(f"  backbone         {exported} ({summary['weights']} weights): create_model({summary['model']!r}, pretrained={str(exported)!r})")
    if not accuracy >= args.min_accuracy:
        print(f"demo: val top-1 {100 * accuracy:.2f} % is below {100 * args.min_accuracy:.0f} %", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
