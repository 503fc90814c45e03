"""Proxy data from your own images: a class folder or the library's WebDataset shards.

Besides ``mnist`` / ``digits``, ``--data`` (``ProxyTask.data``) takes

- a class folder ``DIR/<class>/<image>``: images by suffix (``train.datasets.IMAGE_EXTENSIONS``),
  hidden folders skipped, labels the sorted class names (as ``backbones train`` numbers them);
- WebDataset shards written by ``backbones data shard``: one ``.tar``, a brace pattern
  ``DIR/train-{000000..000003}.tar`` (what that command prints), or a folder holding one split's
  shards. Their ``<split>-meta.json`` names the classes; without it the labels are 0 .. the largest.

Every image is decoded with Pillow, converted to RGB, resized to ``image_size`` x ``image_size``
(squashed, no crop: a proxy keeps the whole picture) and turned into a tensor with torchvision
transforms. When every image of the data is grayscale the channel is kept alone (1 channel, as for
MNIST); otherwise all are RGB (3 channels). Each class needs ``MIN_IMAGES_PER_CLASS`` images, so
that the stratified 60/20/20 cut gives train, validation and test at least one of each.

The whole data is decoded into memory at that size (N x C x S x S floats once normalised): meant for
proxy-sized sets of thousands of images, as the digits are, not for ImageNet (``backbones train``).
``data_signature`` digests the name, size and modification time (ns) of every file read, so a cache
keyed on it reads a folder again once a file was added, removed, renamed or rewritten (a rewrite that
keeps both size and nanosecond mtime goes unseen).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

MIN_IMAGES_PER_CLASS = 5  # 20 % of 5 is 1: every class in every split
EXPECTED = "an image folder (one subfolder per class) or WebDataset shards (a .tar or DIR/train-{000000..000003}.tar)"
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def is_shards(data: str) -> bool:
    from vision_backbones.deploy.calibration import SHARD_SUFFIXES

    return "{" in data or data.endswith(SHARD_SUFFIXES)


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """``{class: sorted image paths}`` of ``folder/<class>/<image>`` (hidden folders skipped)."""
    from vision_backbones.train.datasets import IMAGE_EXTENSIONS

    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    return {
        name: sorted(p for p in (folder / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        for name in classes
    }


def check_counts(data: str, counts: dict[str, int]) -> None:
    """At least 2 classes and ``MIN_IMAGES_PER_CLASS`` images in each; one ``ValueError`` naming the first short one."""
    if len(counts) < 2:
        named = f" ({', '.join(map(repr, counts))})" if counts else ""
        noun = "class" if len(counts) == 1 else "classes"
        raise ValueError(f"--data {data!r} has {len(counts)} {noun}{named}; expected at least 2 classes")
    for name, count in counts.items():
        if count < MIN_IMAGES_PER_CLASS:
            raise ValueError(
                f"--data {data!r}: class {name!r} has {count} images; expected at least {MIN_IMAGES_PER_CLASS} "
                "per class (the stratified 60/20/20 split puts one in each of train, val and test)"
            )


def _shard_folder_pattern(data: str, folder: Path) -> str | None:
    """The brace pattern of the one split whose shards ``folder`` holds (None: no meta file there)."""
    from vision_backbones.train.image_storage import shard_pattern

    splits = [meta.name[: -len("-meta.json")] for meta in sorted(folder.glob("*-meta.json"))]
    counts = {split: len(list(folder.glob(f"{split}-[0-9][0-9][0-9][0-9][0-9][0-9].tar"))) for split in splits}
    patterns = [shard_pattern(folder, split, count) for split, count in counts.items() if count]
    if not patterns:
        return None
    if len(patterns) > 1:
        raise ValueError(f"--data {data!r} holds the shards of {len(patterns)} splits; expected one: {patterns[0]}")
    return patterns[0]


def check_image_data(data: str) -> str:
    """``data`` (a folder or shards) as an absolute path or pattern, its layout and counts checked by listing
    files (nothing decoded: a corrupt image is found by ``load_images``); one ``ValueError`` else."""
    path = Path(data).expanduser()
    if is_shards(data):
        if "://" in data:
            raise ValueError(f"--data {data!r} is a URL; expected local WebDataset shards")
        pattern = str(path.parent.resolve() / path.name)
        shard_files(data, pattern)
        return pattern
    if not path.exists():
        raise ValueError(f"--data {data!r} is not mnist or digits and no such path exists; expected {EXPECTED}")
    if not path.is_dir():
        raise ValueError(f"--data {data!r} is a file, not a folder or a .tar shard; expected {EXPECTED}")
    path = path.resolve()
    files = _class_files(path)
    if not files:
        shards = _shard_folder_pattern(data, path)
        if shards is not None:
            return check_image_data(shards)
        what = "is an empty folder" if not any(path.iterdir()) else "has no class subfolders"
        raise ValueError(f"--data {data!r} {what}; expected {EXPECTED}")
    if not any(files.values()):  # often the parent of train/ and val/
        raise ValueError(
            f"--data {data!r} has no images directly in its subfolders ({', '.join(map(repr, files))}); expected "
            "DIR/<class>/<image> (.jpg, .png, ...; for DIR/train/<class>/<image> pass DIR/train)"
        )
    check_counts(data, {name: len(paths) for name, paths in files.items()})
    return str(path)


def shard_files(data: str, pattern: str) -> list[Path]:
    """The local shard files of ``pattern`` (all present) and their meta file when there is one."""
    from vision_backbones.train.datasets import expand_shards

    urls = [Path(url) for url in expand_shards(pattern)]
    for url in urls:
        if not url.is_file():
            raise ValueError(
                f"--data {data!r}: shard {str(url)!r} does not exist; expected every shard of the pattern "
                "(`backbones data shard` prints it)"
            )
    meta = urls[0].parent / f"{urls[0].name.split('-')[0]}-meta.json"
    return urls + ([meta] if meta.is_file() else [])


def data_signature(data: str) -> str:
    """A digest of (path, size, mtime) of every file ``data`` reads (a checked folder or pattern)."""
    if is_shards(data):
        files = shard_files(data, data)
    else:
        files = [path for paths in _class_files(Path(data)).values() for path in paths]
    digest = hashlib.sha1()
    for path in files:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _records(data: str) -> tuple[list[tuple[str, Any, int]], list[str]]:
    """``([(name, path or encoded bytes, label), ...], classes)`` of a checked folder or pattern."""
    if not is_shards(data):
        files = _class_files(Path(data))
        return [(str(p), p, label) for label, paths in enumerate(files.values()) for p in paths], list(files)
    from vision_backbones.deploy.calibration import _check_shard  # whole tar files: a cut-off one is refused
    from vision_backbones.train.datasets import open_shards, read_shard_meta, shard_image

    urls = [str(p) for p in shard_files(data, data) if p.suffix != ".json"]
    for url in urls:
        _check_shard(url, f"--data {data!r}:")
    records = []
    for sample in open_shards(urls):
        image, name = shard_image(sample)
        if image is None or "cls" not in sample:
            raise ValueError(f"--data {data!r}: shard sample {name!r} has no image or no cls; expected both")
        records.append((name, image, int(sample["cls"])))
    meta = read_shard_meta(data)
    labels = [label for *_, label in records]
    classes = [str(c) for c in meta["classes"]] if meta else [str(i) for i in range(max(labels, default=-1) + 1)]
    wrong = next((r for r in records if not 0 <= r[2] < len(classes)), None)
    if wrong is not None:
        raise ValueError(f"--data {data!r}: sample {wrong[0]!r} has label {wrong[2]}; expected 0 .. {len(classes) - 1}")
    return records, classes


def load_images(data: str, image_size: int) -> tuple[Tensor, Tensor, list[str]]:
    """``(uint8 images (N, C, S, S), labels (N,) int64, classes)`` of a checked folder or pattern.

    ``C`` is 1 when every image is grayscale, else 3. A file Pillow cannot decode is one ``ValueError``
    naming it (the whole proxy data is decoded here, once per signature and size).
    """
    from PIL import Image
    from torchvision import transforms

    records, classes = _records(data)
    per_class = Counter(label for *_, label in records)
    check_counts(data, {name: per_class[i] for i, name in enumerate(classes)})
    to_tensor = transforms.Compose([transforms.Resize((image_size, image_size)), transforms.PILToTensor()])
    images, gray = [], True
    for name, source, _ in records:
        try:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                gray = gray and image.mode in GRAY_MODES
                images.append(to_tensor(image.convert("RGB")))
        except Exception as error:  # any decoder failure: the file named, nothing trained on half the data
            reason = (str(error).strip().splitlines() or [""])[0][:100]
            raise ValueError(
                f"--data {data!r}: cannot read image {name!r} ({type(error).__name__}: {reason}); "
                "expected a readable image (replace or remove it)"
            ) from None
    stacked = torch.stack(images)
    labels = torch.tensor([label for *_, label in records], dtype=torch.int64)
    return (stacked[:, :1] if gray else stacked).contiguous(), labels, classes
