"""int8 accuracy on trained weights: the demo's resnet18 (digits) and the same recipe on MNIST 5,000.

``python -m vision_backbones.cli.int8_accuracy [--train-mnist] [--models demo mnist]`` (``make
mnist-int8``): trains the MNIST model first if asked, then quantizes each trained classifier on both
int8 runtimes (:mod:`vision_backbones.deploy.int8_accuracy`) and writes the figures to
``benchmarks/deploy_accuracy.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vision_backbones.cli.train import main as train_main
from vision_backbones.deploy.int8_accuracy import MNIST_DIR, RESULTS, RUNS, int8_accuracy, mnist_config, write_mnist
from vision_backbones.io import read_json, write_json
from vision_backbones.measure.machine import machine_info
from vision_backbones.train.demo import clear_previous_run


def train_mnist(threads: int = 1) -> int:
    """Train resnet18 on MNIST 5,000 through ``backbones train fit`` with the demo's recipe."""
    import torch

    torch.set_num_threads(threads)
    counts = write_mnist()
    print(f"mnist: {counts['train']} train, {counts['val']} val images in {MNIST_DIR / 'data'}")
    clear_previous_run(MNIST_DIR)
    MNIST_DIR.mkdir(parents=True, exist_ok=True)
    config = mnist_config(MNIST_DIR / "recipe.yaml")
    return train_main(["fit", "--config", str(config)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vision_backbones.cli.int8_accuracy", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--train-mnist", action="store_true", help="train the MNIST model first (about 2 minutes on 2 cores)"
    )
    parser.add_argument("--models", nargs="+", choices=tuple(RUNS), default=list(RUNS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.train_mnist and train_mnist(args.threads):
        print("mnist training failed", file=sys.stderr)
        return 1
    stored = read_json(args.output) if args.output.is_file() else {}
    for name in args.models:
        stored[name] = int8_accuracy(RUNS[name], threads=args.threads)
    stored["machine"] = machine_info()
    write_json(args.output, stored, sort_keys=True)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
