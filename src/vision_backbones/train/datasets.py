"""Datasets: ImageNet-layout class folders or WebDataset shards, as ``(uint8 image, label)`` samples.

Robustness: an unreadable or corrupt image is logged and yields ``None``; :func:`collate_skipping`
drops it from the batch and counts it (logged as ``data/skipped``).
"""

from __future__ import annotations

import io
import logging
import math
import os
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset

from vision_backbones.io import read_json
from vision_backbones.train.sampler import sample_seed, seeded_cpu_rng

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def scan_class_folders(
    root: str | os.PathLike[str], extensions: Sequence[str] = IMAGE_EXTENSIONS
) -> tuple[list[tuple[str, int]], list[str]]:
    """``([(path, label), ...], classes)`` of ``root/<class>/<image>``, classes and files sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist; expected {root}/<class>/<image> files")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise ValueError(f"image folder {str(root)!r} has no class sub-folders; expected {root}/<class>/<image> files")
    samples: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        files = sorted(
            e.name for e in os.scandir(root / name) if e.is_file() and e.name.lower().endswith(tuple(extensions))
        )
        samples.extend((str(root / name / f), label) for f in files)
    if not samples:
        raise ValueError(f"image folder {str(root)!r} has no images with extensions {', '.join(extensions)}")
    return samples, classes


def _transform_source(source: str | bytes, transform: Callable[[Any], Tensor]) -> Tensor:
    """The library's transforms take the encoded bytes (so a fast decoder can scale while decoding); others a PIL image."""
    if getattr(transform, "takes_encoded", False):
        if not isinstance(source, bytes):
            with open(source, "rb") as file:
                source = file.read()
        return transform(source)
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        return transform(image)


def load_sample(
    source: str | bytes, transform: Callable[[Any], Tensor], *, seed: int | None, what: str
) -> Tensor | None:
    """Decode and transform one image; ``None`` (logged) when it cannot be read."""
    try:
        if seed is None:
            return _transform_source(source, transform)
        with seeded_cpu_rng(seed):
            return _transform_source(source, transform)
    except Exception as error:  # any decoder failure: skip the image, keep the epoch
        logger.warning("skipping unreadable image %s: %s: %s", what, type(error).__name__, error)
        return None


class ImageFolderDataset(Dataset):
    """``root/<class>/<image>`` samples; indexed by ``index`` or ``(seed, index)`` (from :class:`~vision_backbones.train.sampler.ResumableSampler`)."""

    def __init__(self, root: str | os.PathLike[str], transform: Callable[[Image.Image], Tensor]) -> None:
        self.root = str(root)
        self.samples, self.classes = scan_class_folders(root)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, int] | None:
        seed, index = key if isinstance(key, tuple) else (None, key)
        path, label = self.samples[index]
        image = load_sample(path, self.transform, seed=seed, what=path)
        return None if image is None else (image, label)


def collate_skipping(batch: list[tuple[Tensor, int] | None]) -> tuple[Tensor, Tensor, Tensor]:
    """Stack the readable samples; the third element counts the skipped ones."""
    good = [sample for sample in batch if sample is not None]
    skipped = torch.tensor(len(batch) - len(good))
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long), skipped
    images = torch.stack([image for image, _ in good])
    labels = torch.tensor([label for _, label in good], dtype=torch.long)
    return images, labels, skipped


# --------------------------------------------------------------------------------------------
# WebDataset shards


def read_shard_meta(pattern: str) -> dict[str, Any] | None:
    """The ``<split>-meta.json`` written by ``backbones data shard`` next to local shards, if any."""
    if "://" in pattern:
        return None
    first = pattern.split("{")[0]
    folder = Path(first).parent
    prefix = Path(first).name.split("-")[0]
    meta = folder / f"{prefix}-meta.json"
    return read_json(meta) if meta.is_file() else None


def expand_shards(pattern: str | Sequence[str]) -> list[str]:
    """The shard URLs of one or more brace patterns (``train-{000000..000127}.tar``)."""
    import braceexpand

    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return [url for p in patterns for url in braceexpand.braceexpand(p)]


# the sample keys an image can sit under: every suffix ``write_shards`` copies from a class folder
SHARD_IMAGE_KEYS = tuple(extension.lstrip(".") for extension in IMAGE_EXTENSIONS)


def open_shards(urls: list[str]) -> Any:
    """webdataset's reader over ``urls`` in order, in this process (no node or worker splitting, no shuffle):
    an iterable of sample dicts (``__key__``, ``__url__``, ``cls`` and the image under its suffix)."""
    import webdataset as wds

    return wds.WebDataset(urls, shardshuffle=False, nodesplitter=None, workersplitter=None, empty_check=False)


def shard_image(sample: dict[str, Any]) -> tuple[bytes | None, str]:
    """``(encoded image or None, "url:key")`` of one shard sample (the name is for errors and logs)."""
    data = next((sample[k] for k in SHARD_IMAGE_KEYS if k in sample), None)
    return data, f"{sample.get('__url__', '')}:{sample.get('__key__', '?')}"


class ShardDataset(IterableDataset):
    """Decoded (image, label) samples from tar shards (each worker / rank reads its own shards)."""

    def __init__(
        self,
        urls: list[str],
        transform: Callable[[Image.Image], Tensor],
        *,
        train: bool,
        seed: int,
        shuffle_buffer: int,
        rank: int,
        world_size: int,
        num_samples: int | None,
    ) -> None:
        self.urls = urls
        self.transform = transform
        self.train = train
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.rank = rank
        self.world_size = world_size
        self.num_samples = num_samples
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[Tensor, int] | None]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        urls = list(self.urls)
        if self.train:
            generator = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, -2))
            urls = [urls[i] for i in torch.randperm(len(urls), generator=generator).tolist()]
        urls = (
            urls[self.rank :: self.world_size][worker::workers]
            if len(urls) >= self.world_size * workers
            else urls[self.rank :: self.world_size]
        )
        if not urls:
            return
        stream = open_shards(urls)
        if self.train and self.shuffle_buffer > 1:
            stream = stream.shuffle(self.shuffle_buffer, rng=random.Random(sample_seed(self.seed, self.epoch, worker)))
        for count, sample in enumerate(stream):
            data, what = shard_image(sample)
            seed = (
                sample_seed(self.seed, self.epoch, hash((self.rank, worker, count)) % 1_000_000_007)
                if self.train
                else None
            )
            image = None if data is None else load_sample(data, self.transform, seed=seed, what=what)
            yield None if image is None else (image, int(sample["cls"]))

    def __len__(self) -> int:
        if self.num_samples is None:
            raise TypeError("shard dataset length unknown (no meta file)")
        return math.ceil(self.num_samples / self.world_size)
