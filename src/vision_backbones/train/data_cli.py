"""``backbones data``: prepare ImageNet's validation folder, write WebDataset shards.

``backbones data prepare-imagenet --val-solution LOC_val_solution.csv --val-dir .../CLS-LOC/val``
moves each flat ``ILSVRC2012_val_XXXXXXXX.JPEG`` into its class folder ``val/<wnid>/``, as the
seed's ``scripts/imagenet.py`` does, but safely:

- the whole CSV is checked first (header, every row, every image present) and nothing is moved
  when something is wrong, with the line or the image named;
- a file is moved with a hard link then an unlink (or a rename where links are not supported) and
  never over an existing file: an interruption at any point leaves every image in its old place,
  its new place or both (the same file twice, which the next run resolves), so a re-run finishes
  the job and running it again changes nothing;
- files the CSV does not name are left alone; a summary says what was done.

``backbones data shard --root DIR --out DIR`` writes ``{split}-000000.tar, ...`` WebDataset
shards (the original encoded bytes, no re-encoding) and a ``{split}-meta.json`` that training
reads (``data.train_shards: DIR/train-{000000..000012}.tar``).

``--max-side 320 [--quality 90]`` (on ``shard``, and ``backbones data resize --root DIR --out DIR``
for class folders) stores the images downscaled, FFCV-style: every image whose longer side
exceeds ``max_side`` is resized (antialiased) to that longer side and re-encoded as a baseline
JPEG at ``quality``; smaller ones are kept byte for byte. Decoding then touches 2-6x fewer pixels.
Both the size and the quality are recorded in the meta file (``{split}-meta.json`` or
``resize-meta.json``) so a run's data can be told apart.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

VAL_HEADER = ("ImageId", "PredictionString")


class PrepareError(ValueError):
    """A problem found before anything was moved."""


def read_val_solution(csv_path: Path) -> dict[str, str]:
    """``{image_id: wnid}`` from ``LOC_val_solution.csv``; raises naming the first bad line."""
    if not csv_path.is_file():
        raise PrepareError(f"--val-solution {str(csv_path)!r} does not exist")
    labels: dict[str, str] = {}
    with open(csv_path, newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[:2]) != VAL_HEADER:
            raise PrepareError(f"{csv_path}:1: expected the header 'ImageId,PredictionString', got {','.join(header or [])!r}")
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise PrepareError(f"{csv_path}:{line}: expected 2 columns (ImageId,PredictionString), got {len(row)}: {','.join(row)!r}")
            image_id, prediction = row[0].strip(), row[1].split()
            if not image_id or "/" in image_id or image_id.startswith("."):
                raise PrepareError(f"{csv_path}:{line}: bad ImageId {row[0]!r}")
            if not prediction or len(prediction) % 5 != 0:
                raise PrepareError(
                    f"{csv_path}:{line}: PredictionString must be groups of 'wnid xmin ymin xmax ymax', got {row[1]!r}"
                )
            wnid = prediction[0]
            if not wnid.startswith("n") or not wnid[1:].isdigit():
                raise PrepareError(f"{csv_path}:{line}: {wnid!r} is not a WordNet id like n01440764")
            previous = labels.get(image_id)
            if previous is not None and previous != wnid:
                raise PrepareError(f"{csv_path}:{line}: {image_id} listed twice with different classes ({previous}, {wnid})")
            labels[image_id] = wnid
    if not labels:
        raise PrepareError(f"{csv_path}: no rows after the header")
    return labels


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        return False
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk_a, chunk_b = fa.read(1 << 20), fb.read(1 << 20)
            if chunk_a != chunk_b:
                return False
            if not chunk_a:
                return True


@dataclass
class PrepareSummary:
    moved: int = 0
    already_sorted: int = 0
    duplicates_resolved: int = 0
    classes: int = 0
    untouched: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        extra = f"; {len(self.untouched)} files not in the CSV left alone" if self.untouched else ""
        return (
            f"{self.moved} images moved into class folders, {self.already_sorted} already in place, "
            f"{self.duplicates_resolved} interrupted moves completed, {self.classes} classes{extra}"
        )


def _move_no_overwrite(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; never replaces an existing ``dst``."""
    try:
        os.link(src, dst)  # fails if dst exists
    except FileExistsError:
        raise
    except OSError:
        if dst.exists():
            raise FileExistsError(dst) from None
        os.rename(src, dst)  # filesystems without hard links
        return
    os.unlink(src)


def prepare_imagenet_val(csv_path: Path, val_dir: Path, *, extension: str = ".JPEG", dry_run: bool = False) -> PrepareSummary:
    """Sort ``val_dir/<ImageId>.JPEG`` into ``val_dir/<wnid>/``: checked first, resumable, never overwriting."""
    labels = read_val_solution(csv_path)
    if not val_dir.is_dir():
        raise PrepareError(f"--val-dir {str(val_dir)!r} does not exist")
    plan: list[tuple[Path, Path]] = []
    missing, conflicts = [], []
    summary = PrepareSummary(classes=len(set(labels.values())))
    for image_id, wnid in sorted(labels.items()):
        src, dst = val_dir / f"{image_id}{extension}", val_dir / wnid / f"{image_id}{extension}"
        src_exists, dst_exists = src.is_file(), dst.is_file()
        if not src_exists and not dst_exists:
            missing.append(image_id)
        elif src_exists and dst_exists and not _same_file(src, dst):
            conflicts.append(f"{src} and {dst} differ")
        elif src_exists:
            plan.append((src, dst))
        else:
            summary.already_sorted += 1
    if missing:
        shown = ", ".join(f"{m}{extension}" for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise PrepareError(f"{len(missing)} images named in {csv_path.name} are in neither {val_dir} nor its class folders: {shown}; nothing was moved")
    if conflicts:
        raise PrepareError(f"{len(conflicts)} images exist in both places with different contents ({conflicts[0]}); nothing was moved")
    named = {f"{i}{extension}" for i in labels}
    summary.untouched = sorted(e.name for e in os.scandir(val_dir) if e.is_file() and e.name not in named)
    if dry_run:
        summary.moved = len(plan)
        return summary
    for src, dst in plan:
        dst.parent.mkdir(exist_ok=True)
        if dst.exists():  # an interrupted earlier move: same content (checked above)
            os.unlink(src)
            summary.duplicates_resolved += 1
        else:
            _move_no_overwrite(src, dst)
            summary.moved += 1
    return summary


# --------------------------------------------------------------------------------------------
# shards


JPEG_QUALITY = 90  # FFCV's and most ImageNet re-encodings' default: artefacts below what 176 px crops show


def _check_storage(max_side: int | None, quality: int) -> None:
    from vision_backbones.validate import check_int

    if max_side is not None:
        check_int("max_side", max_side, min=16)
    check_int("quality", quality, min=1, max=100)


def downscaled_image(data: bytes, *, max_side: int, quality: int = JPEG_QUALITY) -> tuple[bytes, str, bool]:
    """``(bytes, extension, resized)``: the image with its longer side at most ``max_side``.

    Larger images are decoded (JPEG draft mode down to twice the target at most, which keeps the
    antialiasing exact enough), resized with Pillow's antialiased bilinear filter to the target and
    re-encoded as a baseline JPEG (4:2:0) at ``quality``; images already small enough are returned
    unchanged, as their original bytes.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        if max(width, height) <= max_side:
            ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "PPM": "ppm"}.get(image.format or "", "jpg")
            if image.format in ("JPEG", "PNG", "WEBP", "PPM"):
                return data, ext, False
        factor = max_side / max(width, height)
        target = (max(1, round(width * factor)), max(1, round(height * factor)))
        if image.format == "JPEG":
            image.draft("RGB", (2 * target[0], 2 * target[1]))
        rgb = image.convert("RGB")
        small = rgb.resize(target, Image.BILINEAR, reducing_gap=None) if rgb.size != target else rgb
    out = io.BytesIO()
    small.save(out, "JPEG", quality=quality, optimize=False, progressive=False)
    return out.getvalue(), "jpg", True


def _progress(description: str, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
    return progress, progress.add_task(description, total=total)


def resize_class_folders(root: Path, out: Path, *, split: str, max_side: int, quality: int = JPEG_QUALITY, force: bool = False) -> dict:
    """Write ``out/{split}/<class>/<image>`` downscaled to ``max_side`` (see :func:`downscaled_image`), plus ``out/{split}/resize-meta.json``.

    An existing ``out/{split}`` is refused unless ``force``. Resized files get the ``.jpg``
    extension (a resized PNG becomes a JPEG); names are otherwise kept.
    """
    from vision_backbones.io import atomic_write_bytes
    from vision_backbones.train.datasets import scan_class_folders

    _check_storage(max_side, quality)
    if root.resolve() == out.resolve():
        raise ValueError(f"--out {str(out)!r} is the same folder as --root; expected a new folder")
    samples, classes = scan_class_folders(root / split)
    target = out / split
    if target.exists() and any(target.iterdir()) and not force:
        raise ValueError(f"output {str(target)!r} exists; pass --force to overwrite it")
    counts = {"resized": 0, "kept": 0, "bytes_in": 0, "bytes_out": 0}
    progress, task = _progress(f"resize {split}", len(samples))
    with progress:
        for path, label in samples:
            data = Path(path).read_bytes()
            small, ext, resized = downscaled_image(data, max_side=max_side, quality=quality)
            atomic_write_bytes(target / classes[label] / f"{Path(path).stem}.{ext}", small)
            counts["resized" if resized else "kept"] += 1
            counts["bytes_in"] += len(data)
            counts["bytes_out"] += len(small)
            progress.advance(task)
    meta = {"split": split, "num_samples": len(samples), "classes": classes, "max_side": max_side, "quality": quality, "source": str(root / split), **counts}
    atomic_write_bytes(target / "resize-meta.json", json.dumps(meta, indent=1).encode())
    return meta


def write_shards(
    root: Path, out: Path, *, split: str, max_count: int = 1000, seed: int = 0, force: bool = False, max_side: int | None = None, quality: int = JPEG_QUALITY
) -> dict:
    """Write ``out/{split}-NNNNNN.tar`` from ``root/{split}/<class>/<image>`` (shuffled), plus the meta file.

    With ``max_side``, images are stored downscaled (:func:`downscaled_image`); else their
    original bytes. Existing shards or meta file of ``split`` in ``out`` are refused unless
    ``force`` (then the old shards of that split are replaced, and any left over beyond the new
    count removed).
    """
    from vision_backbones.io import atomic_write, atomic_write_bytes
    from vision_backbones.train.datasets import scan_class_folders
    from vision_backbones.validate import check_int

    check_int("max_count", max_count, min=1)
    _check_storage(max_side, quality)
    existing = sorted(out.glob(f"{split}-[0-9][0-9][0-9][0-9][0-9][0-9].tar")) + ([out / f"{split}-meta.json"] if (out / f"{split}-meta.json").exists() else [])
    if existing and not force:
        raise ValueError(f"output {str(existing[0])!r} exists ({len(existing)} {split} files in {out}); pass --force to overwrite them")
    samples, classes = scan_class_folders(root / split)
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    out.mkdir(parents=True, exist_ok=True)
    shards = []
    counts = {"resized": 0, "kept": 0}
    for shard_index, start in enumerate(range(0, len(order), max_count)):
        name = f"{split}-{shard_index:06d}.tar"

        def write(tmp: str, start: int = start) -> None:
            with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
                for position in order[start : start + max_count]:
                    path, label = samples[position]
                    ext = Path(path).suffix.lower().lstrip(".")
                    ext = "jpg" if ext == "jpeg" else ext
                    image = Path(path).read_bytes()
                    if max_side is not None:
                        image, ext, resized = downscaled_image(image, max_side=max_side, quality=quality)
                        counts["resized" if resized else "kept"] += 1
                    key = f"{position:09d}"
                    for member, data in ((f"{key}.{ext}", image), (f"{key}.cls", str(label).encode())):
                        info = tarfile.TarInfo(member)
                        info.size, info.mtime, info.mode = len(data), 0, 0o444
                        tar.addfile(info, io.BytesIO(data))

        atomic_write(out / name, write)
        shards.append(name)
    for stale in existing:
        if stale.name not in shards and stale.suffix == ".tar":
            stale.unlink()
    meta = {"split": split, "num_samples": len(samples), "classes": classes, "shards": shards}
    if max_side is not None:
        meta.update(max_side=max_side, quality=quality, **counts)
    atomic_write_bytes(out / f"{split}-meta.json", json.dumps(meta, indent=1).encode())
    return meta


def shard_pattern(out: Path, split: str, count: int) -> str:
    return str(out / f"{split}-{{000000..{count - 1:06d}}}.tar")


# --------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    from vision_backbones.cli import run_command

    return run_command("backbones data", lambda: _run(argv))


def _run(argv: list[str]) -> int:
    from vision_backbones.cli import ArgumentParser, int_at_least

    parser = ArgumentParser(prog="backbones data", description="prepare ImageNet folders, WebDataset shards and downscaled copies")
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
    shard.add_argument("--max-side", type=int_at_least(16), default=None, help="store images downscaled to this longer side (FFCV-style)")
    shard.add_argument("--quality", type=int_at_least(1), default=JPEG_QUALITY, help="JPEG quality of the downscaled images (1-100)")
    resize = commands.add_parser("resize", help="write class folders downscaled to a longer side (FFCV-style storage)")
    resize.add_argument("--root", type=Path, required=True, help="folder with <split>/<class>/<image>")
    resize.add_argument("--out", type=Path, required=True, help="output folder: <out>/<split>/<class>/<image>")
    resize.add_argument("--splits", nargs="+", default=["train", "val"])
    resize.add_argument("--max-side", type=int_at_least(16), required=True, help="longer side of the stored images (e.g. 320)")
    resize.add_argument("--quality", type=int_at_least(1), default=JPEG_QUALITY, help="JPEG quality of the downscaled images (1-100)")
    resize.add_argument("--force", action="store_true", help="overwrite an existing <out>/<split>")
    args = parser.parse_args(argv)
    if args.command == "prepare-imagenet":
        summary = prepare_imagenet_val(args.val_solution, args.val_dir, extension=args.extension, dry_run=args.dry_run)
        print(("dry run: would have " if args.dry_run else "") + str(summary))
        return 0
    if args.command == "resize":
        for split in args.splits:
            meta = resize_class_folders(args.root, args.out, split=split, max_side=args.max_side, quality=args.quality, force=args.force)
            print(f"{split}: {meta['num_samples']} images ({meta['resized']} downscaled to longer side {args.max_side} at JPEG quality "
                  f"{args.quality}, {meta['kept']} kept), {meta['bytes_in'] / 2**20:.1f} -> {meta['bytes_out'] / 2**20:.1f} MiB in {args.out / split}")
        return 0
    for split in args.splits:
        meta = write_shards(
            args.root, args.out, split=split, max_count=args.max_count, seed=args.seed, force=args.force, max_side=args.max_side, quality=args.quality
        )
        count = len(meta["shards"])
        print(f"{split}: {meta['num_samples']} images, {len(meta['classes'])} classes -> {count} shards; "
              f"use data.{split}_shards: {shard_pattern(args.out, split, count)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
