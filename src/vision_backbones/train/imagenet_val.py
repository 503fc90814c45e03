"""Sort ImageNet's flat validation folder into class folders, safely (``backbones data prepare-imagenet``).

Each flat ``ILSVRC2012_val_XXXXXXXX.JPEG`` moves into its class folder ``val/<wnid>/``, as the
seed's ``scripts/imagenet.py`` does, but:

- the whole CSV is checked first (header, every row, every image present) and nothing is moved
  when something is wrong, with the line or the image named;
- a file is moved with a hard link then an unlink (or a rename where links are not supported) and
  never over an existing file: an interruption at any point leaves every image in its old place,
  its new place or both (the same file twice, which the next run resolves), so a re-run finishes
  the job and running it again changes nothing;
- files the CSV does not name are left alone; a summary says what was done.
"""

from __future__ import annotations

import csv
import os
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
            raise PrepareError(
                f"{csv_path}:1: expected the header 'ImageId,PredictionString', got {','.join(header or [])!r}"
            )
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise PrepareError(
                    f"{csv_path}:{line}: expected 2 columns (ImageId,PredictionString), got {len(row)}: {','.join(row)!r}"
                )
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
                raise PrepareError(
                    f"{csv_path}:{line}: {image_id} listed twice with different classes ({previous}, {wnid})"
                )
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


def prepare_imagenet_val(
    csv_path: Path, val_dir: Path, *, extension: str = ".JPEG", dry_run: bool = False
) -> PrepareSummary:
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
        shown = ", ".join(f"{m}{extension}" for m in missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise PrepareError(
            f"{len(missing)} images named in {csv_path.name} are in neither {val_dir} nor its class folders: {shown}; nothing was moved"
        )
    if conflicts:
        raise PrepareError(
            f"{len(conflicts)} images exist in both places with different contents ({conflicts[0]}); nothing was moved"
        )
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
