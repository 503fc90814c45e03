"""``backbones demo``: train resnet18 on scikit-learn's bundled digits, end to end, on a CPU.

The digits are written as PNG class folders (:mod:`vision_backbones.train.demo`) and trained
through the very same ``backbones train fit`` path with ``configs/demo.yaml``; the best checkpoint
is exported to backbone weights and loaded back. Everything lands in ``runs/demo/``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from vision_backbones.cli.train import main as train_main
from vision_backbones.registry import create_model
from vision_backbones.train.backbone_export import export_backbone
from vision_backbones.train.demo import DATA_DIR, DEMO_DIR, clear_previous_run, find_config, write_digits


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
    parser.add_argument(
        "extra", nargs=argparse.REMAINDER, help="more `backbones train fit` overrides, e.g. --model.lr 2.0"
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 2) - 1))
    config = args.config or find_config()
    counts = write_digits()
    what = f"wrote {counts['written']} PNGs" if counts["written"] else "reusing the PNGs"
    print(f"demo: digits in {DATA_DIR}/ ({counts['train']} train, {counts['val']} val; {what}); config {config}")
    clear_previous_run(DEMO_DIR)

    fit_args = ["fit", "--config", str(config)]
    if args.epochs is not None:
        fit_args += ["--trainer.max_epochs", str(args.epochs)]
    code = train_main(fit_args + list(args.extra))
    if code:
        print(f"demo: training failed (exit {code})", file=sys.stderr)
        return code

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
    print(
        f"  val top-1        {100 * raw:.2f} % (raw weights), {100 * ema:.2f} % (EMA)   [best checkpoint: {best.name}]"
    )
    print(f"  wall time        {elapsed:.0f} s")
    print(f"  config           {DEMO_DIR / 'config.yaml'} (and {DEMO_DIR / 'checkpoints' / 'config.yaml'})")
    print(f"  checkpoints      {DEMO_DIR / 'checkpoints'}/")
    print(
        f"  metrics          {DEMO_DIR / 'metrics.csv'}, TensorBoard: tensorboard --logdir {DEMO_DIR / 'tensorboard'}"
    )
    print(f"  curves           {DEMO_DIR / 'curves.png'}")
    print(
        f"  backbone         {exported} ({summary['weights']} weights): create_model({summary['model']!r}, pretrained={str(exported)!r})"
    )
    if not accuracy >= args.min_accuracy:
        print(f"demo: val top-1 {100 * accuracy:.2f} % is below {100 * args.min_accuracy:.0f} %", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
