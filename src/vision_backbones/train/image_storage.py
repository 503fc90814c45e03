"""How training images are stored: downscaled copies of class folders and WebDataset shards.

``write_shards`` writes ``{split}-000000.tar, ...`` WebDataset shards (the original encoded bytes,
no re-encoding) and a ``{split}-meta.json`` that training reads
(``data.train_shards: DIR/train-{000000..000012}.tar``).

``max_side`` (on shards, and ``resize_class_folders`` for class folders) stores the images
downscaled, FFCV-style: every image whose longer side exceeds ``max_side`` is resized
(antialiased) to that longer side and re-encoded as a baseline JPEG at ``quality``; smaller ones are
kept byte for byte. Decoding then touches 2-6x fewer pixels. Both the size and the quality are
recorded in the meta file (``{split}-meta.json`` or ``resize-meta.json``) so a run's data can be
told apart.
"""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

from vision_backbones.io import atomic_write, atomic_write_bytes, write_json

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
        small = rgb.resize(target, Image.Resampling.BILINEAR, reducing_gap=None) if rgb.size != target else rgb
    out = io.BytesIO()
    small.save(out, "JPEG", quality=quality, optimize=False, progressive=False)
    return out.getvalue(), "jpg", True


def _progress(description: str, total: int):
    from vision_backbones.progress import progress_bar

    progress = progress_bar()
    return progress, progress.add_task(description, total=total)


def resize_class_folders(
    root: Path, out: Path, *, split: str, max_side: int, quality: int = JPEG_QUALITY, force: bool = False
) -> dict:
    """Write ``out/{split}/<class>/<image>`` downscaled to ``max_side`` (see :func:`downscaled_image`), plus ``out/{split}/resize-meta.json``.

    An existing ``out/{split}`` is refused unless ``force``. Resized files get the ``.jpg``
    extension (a resized PNG becomes a JPEG); names are otherwise kept.
    """
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
    meta = {
        "split": split,
        "num_samples": len(samples),
        "classes": classes,
        "max_side": max_side,
        "quality": quality,
        "source": str(root / split),
        **counts,
    }
    write_json(target / "resize-meta.json", meta, indent=1)
    return meta


def write_shards(
    root: Path,
    out: Path,
    *,
    split: str,
    max_count: int = 1000,
    seed: int = 0,
    force: bool = False,
    max_side: int | None = None,
    quality: int = JPEG_QUALITY,
) -> dict:
    """Write ``out/{split}-NNNNNN.tar`` from ``root/{split}/<class>/<image>`` (shuffled), plus the meta file.

    With ``max_side``, images are stored downscaled (:func:`downscaled_image`); else their
    original bytes. Existing shards or meta file of ``split`` in ``out`` are refused unless
    ``force`` (then the old shards of that split are replaced, and any left over beyond the new
    count removed).
    """
    from vision_backbones.train.datasets import scan_class_folders
    from vision_backbones.validate import check_int

    check_int("max_count", max_count, min=1)
    _check_storage(max_side, quality)
    existing = sorted(out.glob(f"{split}-[0-9][0-9][0-9][0-9][0-9][0-9].tar")) + (
        [out / f"{split}-meta.json"] if (out / f"{split}-meta.json").exists() else []
    )
    if existing and not force:
        raise ValueError(
            f"output {str(existing[0])!r} exists ({len(existing)} {split} files in {out}); pass --force to overwrite them"
        )
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
    write_json(out / f"{split}-meta.json", meta, indent=1)
    return meta


def shard_pattern(out: Path, split: str, count: int) -> str:
    return str(out / f"{split}-{{000000..{count - 1:06d}}}.tar")
