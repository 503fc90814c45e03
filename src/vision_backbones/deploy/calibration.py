"""Calibration and check images: a folder of class folders or WebDataset shards, through the eval transform.

Quantization ranges must come from images prepared exactly as at inference, so the library's own
:class:`~vision_backbones.train.transforms.EvalTransform` (resize, center crop) and the model's
normalization are applied here, as the validation loader does.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vision_backbones.train.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform

SHARD_SUFFIXES = (".tar", ".tgz", ".tar.gz")


@dataclasses.dataclass
class LabelledImages:
    """Normalized ``(N, 3, H, W)`` float images and their class indices (``None`` for unlabelled shards).

    ``classes``: how many classes the source declares (its class folders, or the classes of the
    shards' meta file), ``None`` when it does not say; the labels index them.
    """

    images: Tensor
    labels: Tensor | None
    source: str
    classes: int | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def batches(self, batch_size: int) -> list[Tensor]:
        return list(self.images.split(batch_size))


def _is_shard(path: str) -> bool:
    return "{" in path or path.endswith(SHARD_SUFFIXES)


def _spread_evenly(count: int, limit: int | None) -> list[int]:
    """``limit`` indices spread over ``range(count)``, so a class-sorted folder gives every class."""
    if limit is None or limit >= count:
        return list(range(count))
    return [round(i * (count - 1) / max(1, limit - 1)) for i in range(limit)] if limit > 1 else [0]


def check_normalization(
    mean: Any, std: Any, *, names: tuple[str, str] = ("mean", "std")
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``mean`` and ``std`` as three finite numbers each (one per RGB channel), ``std`` > 0.

    The one check of ``load_images`` and ``backbones export --mean/--std``: ``std=0`` once gave
    non-finite images, a mean of two numbers a view-shape error.
    """
    checked = []
    for name, value, positive in ((names[0], mean, False), (names[1], std, True)):
        ok = isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) == 3
        ok = ok and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)
            for v in value
        )
        if not ok:
            shown = list(value) if isinstance(value, tuple) else value
            raise ValueError(
                f"{name} must be 3 finite numbers{' > 0' if positive else ''} (one per RGB channel), got {shown!r}"
            )
        checked.append(tuple(float(v) for v in value))
    return checked[0], checked[1]


def _check_shard(url: str, what: str) -> None:
    """A local shard is a whole tar file: readable headers and the end-of-archive marker after the last member.

    webdataset stops quietly at a cut-off member, so a truncated shard would lose images silently.
    """
    path = Path(url)
    if path.is_dir():
        raise ValueError(f"{what} shard {url!r} is a folder; expected a WebDataset .tar file")
    if not path.is_file():
        raise ValueError(f"{what} shard {url!r} does not exist; expected a WebDataset .tar file")
    fix = "expected a WebDataset .tar file (write one with `backbones data shard`)"
    try:
        with tarfile.open(path, "r:" if url.endswith(".tar") else "r:*") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:80].rstrip(":") or type(error).__name__
        raise ValueError(f"{what} shard {url!r} is not a readable tar file ({reason}); {fix}") from None
    if not url.endswith(".tar"):  # compressed: gzip's own end-of-stream check ran while reading the members
        return
    size = path.stat().st_size
    end = -(-(members[-1].offset_data + members[-1].size) // 512) * 512 if members else 0
    with open(path, "rb") as file:
        file.seek(end)
        marker = file.read(1024)
    if end > size or len(marker) < 1024 or marker.strip(b"\0"):
        raise ValueError(f"{what} shard {url!r} is truncated (it ends inside or right after a member); {fix}")


def load_images(
    path: str | os.PathLike[str],
    *,
    resize_size: int,
    crop_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    limit: int | None = None,
    what: str = "calibration data",
) -> LabelledImages:
    """Up to ``limit`` images of ``path`` (``root/<class>/<image>`` or shard ``.tar`` files / brace pattern).

    From a class folder, the images are taken evenly over the sorted list (every class present);
    labels are the sorted class-folder indices, as in training. From shards, the first ``limit``
    samples with their ``cls`` entry. ``what`` names the data in errors (``"--check-data"``); a
    missing path, a file where a folder is expected and a corrupt shard are each one ``ValueError``.
    """
    from vision_backbones.train.datasets import ImageFolderDataset, ShardDataset, expand_shards, read_shard_meta
    from vision_backbones.validate import check_int

    if limit is not None:
        check_int("limit", limit, min=1)
    check_int("resize_size", resize_size, min=1)
    check_int("crop_size", crop_size, min=1)
    mean, std = check_normalization(mean, std)
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{what} must be a path, got {type(path).__name__} {path!r}")
    text = os.fspath(path)
    transform = EvalTransform(resize_size, crop_size)
    samples: list[tuple[Tensor, int]] = []
    classes: int | None = None
    if _is_shard(text):
        urls = expand_shards(text)
        for url in urls:
            if "://" not in url:
                _check_shard(url, what)
            dataset = ShardDataset(
                [url], transform, train=False, seed=0, shuffle_buffer=0, rank=0, world_size=1, num_samples=None
            )
            for sample in dataset:
                if sample is not None:
                    samples.append(sample)
                if limit is not None and len(samples) >= limit:
                    break
            if limit is not None and len(samples) >= limit:
                break
        meta = read_shard_meta(text)
        if isinstance(meta, dict) and isinstance(meta.get("classes"), list):
            classes = len(meta["classes"])
    else:
        if Path(text).is_file():
            raise ValueError(
                f"{what} {text!r} is a file, not a folder; expected a folder of class folders or a WebDataset "
                f"shard ending in {', '.join(SHARD_SUFFIXES)}"
            )
        if not Path(text).is_dir():
            raise ValueError(
                f"{what} {text!r} does not exist; expected a folder of class folders or a WebDataset .tar shard"
            )
        folder = ImageFolderDataset(text, transform)
        classes = len(folder.classes)
        for index in _spread_evenly(len(folder), limit):
            sample = folder[index]
            if sample is not None:
                samples.append(sample)
    if not samples:
        raise ValueError(f"{what} {text!r} holds no readable images")
    images = torch.stack([image for image, _ in samples]).float()
    mean_tensor = torch.tensor([255 * m for m in mean]).view(1, 3, 1, 1)
    std_tensor = torch.tensor([255 * s for s in std]).view(1, 3, 1, 1)
    labels = torch.tensor([label for _, label in samples], dtype=torch.long)
    return LabelledImages((images - mean_tensor) / std_tensor, labels, text, classes)
