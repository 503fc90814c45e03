"""``backbones data``: prepare ImageNet's validation folder, write WebDataset shards and downscaled copies.

- ``backbones data prepare-imagenet --val-solution LOC_val_solution.csv --val-dir .../CLS-LOC/val``
  sorts the flat validation images into class folders, checked first and safe to interrupt
  (:mod:`vision_backbones.train.imagenet_val`);
- ``backbones data shard --root DIR --out DIR [--max-side 320 --quality 90]`` writes WebDataset
  shards and ``backbones data resize --root DIR --out DIR --max-side 320`` downscaled class folders
  (:mod:`vision_backbones.train.image_storage`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from vision_backbones.cli import ArgumentParser, int_at_least, run_command
from vision_backbones.train.image_storage import JPEG_QUALITY, resize_class_folders, shard_pattern, write_shards
from vision_backbones.train.imagenet_val import prepare_imagenet_val


def main(argv: list[str]) -> int:
    return run_command("backbones data", lambda: _run(argv))


def _run(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="backbones data", description="prepare ImageNet folders, WebDataset shards and downscaled copies"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare-imagenet", help="sort the flat ImageNet val images into class folders")
    prep.add_argument("--val-solution", type=Path, required=True, help="LOC_val_solution.csv")
    prep.add_argument("--val-dir", type=Path, required=True, help="ILSVRC/Data/CLS-LOC/val")
    prep.add_argument("--extension", default=".JPEG")
    prep.add_argument("--dry-run", action="store_true", help="check everything, move nothing")
    shard = commands.add_parser("shard", help="write WebDataset tar shards from class folders")
    shard.add_argument("--root", type=Path, required=True, help="folder with <split>/<class>/<image>")
    shard.add_argument("--out", type=Path, required=True, help="output folder for the shards")
    shard.add_argument("--splits", nargs="+", default=["train", "val"])
    shard.add_argument("--max-count", type=int_at_least(1), default=1000, help="samples per shard")
    shard.add_argument("--seed", type=int, default=0)
    shard.add_argument("--force", action="store_true", help="overwrite existing shards of the same split")
    shard.add_argument(
        "--max-side",
        type=int_at_least(16),
        default=None,
        help="store images downscaled to this longer side (FFCV-style)",
    )
    shard.add_argument(
        "--quality", type=int_at_least(1), default=JPEG_QUALITY, help="JPEG quality of the downscaled images (1-100)"
    )
    resize = commands.add_parser("resize", help="write class folders downscaled to a longer side (FFCV-style storage)")
    resize.add_argument("--root", type=Path, required=True, help="folder with <split>/<class>/<image>")
    resize.add_argument("--out", type=Path, required=True, help="output folder: <out>/<split>/<class>/<image>")
    resize.add_argument("--splits", nargs="+", default=["train", "val"])
    resize.add_argument(
        "--max-side", type=int_at_least(16), required=True, help="longer side of the stored images (e.g. 320)"
    )
    resize.add_argument(
        "--quality", type=int_at_least(1), default=JPEG_QUALITY, help="JPEG quality of the downscaled images (1-100)"
    )
    resize.add_argument("--force", action="store_true", help="overwrite an existing <out>/<split>")
    args = parser.parse_args(argv)
    if args.command == "prepare-imagenet":
        summary = prepare_imagenet_val(args.val_solution, args.val_dir, extension=args.extension, dry_run=args.dry_run)
        print(("dry run: would have " if args.dry_run else "") + str(summary))
        return 0
    if args.command == "resize":
        for split in args.splits:
            meta = resize_class_folders(
                args.root, args.out, split=split, max_side=args.max_side, quality=args.quality, force=args.force
            )
            print(
                f"{split}: {meta['num_samples']} images ({meta['resized']} downscaled to longer side {args.max_side} at JPEG quality "
                f"{args.quality}, {meta['kept']} kept), {meta['bytes_in'] / 2**20:.1f} -> {meta['bytes_out'] / 2**20:.1f} MiB in {args.out / split}"
            )
        return 0
    for split in args.splits:
        meta = write_shards(
            args.root,
            args.out,
            split=split,
            max_count=args.max_count,
            seed=args.seed,
            force=args.force,
            max_side=args.max_side,
            quality=args.quality,
        )
        count = len(meta["shards"])
        print(
            f"{split}: {meta['num_samples']} images, {len(meta['classes'])} classes -> {count} shards; "
            f"use data.{split}_shards: {shard_pattern(args.out, split, count)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
