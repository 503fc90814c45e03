"""Calibration and check images: a folder of class folders or WebDataset shards, through the eval transform.

Quantization ranges must come from images prepared exactly as at inference, so the library's own
:class:`~vision_backbones.train.transforms.EvalTransform` (resize, center crop) and the model's
normalization are applied here, as the validation loader does.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from vision_backbones.train.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform

SHARD_SUFFIXES = (".tar", ".tgz", ".tar.gz")


@dataclasses.dataclass
class LabelledImages:
    """Normalized ``(N, 3, H, W)`` float images and their class indices (``None`` for unlabelled shards)."""

    images: Tensor
    labels: Tensor | None
    source: str

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


def load_images(
    path: str | os.PathLike[str],
    *,
    resize_size: int,
    crop_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    limit: int | None = None,
) -> LabelledImages:
    """Up to ``limit`` images of ``path`` (``root/<class>/<image>`` or shard ``.tar`` files / brace pattern).

    From a class folder, the images are taken evenly over the sorted list (every class present);
    labels are the sorted class-folder indices, as in training. From shards, the first ``limit``
    samples with their ``cls`` entry.
    """
    from vision_backbones.train.datasets import ImageFolderDataset, ShardDataset, expand_shards

    if limit is not None and limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit}")
    text = os.fspath(path)
    transform = EvalTransform(resize_size, crop_size)
    samples: list[tuple[Tensor, int]] = []
    if _is_shard(text):
        urls = expand_shards(text)
        missing = [url for url in urls if "://" not in url and not Path(url).is_file()]
        if missing:
            raise ValueError(f"calibration shard {missing[0]!r} does not exist; expected a WebDataset .tar file")
        dataset = ShardDataset(
            urls, transform, train=False, seed=0, shuffle_buffer=0, rank=0, world_size=1, num_samples=None
        )
        for sample in dataset:
            if sample is not None:
                samples.append(sample)
            if limit is not None and len(samples) >= limit:
                break
    else:
        if not Path(text).is_dir():
            raise ValueError(
                f"calibration data {text!r} does not exist; expected a folder of class folders or a WebDataset .tar shard"
            )
        folder = ImageFolderDataset(text, transform)
        for index in _spread_evenly(len(folder), limit):
            sample = folder[index]
            if sample is not None:
                samples.append(sample)
    if not samples:
        raise ValueError(f"calibration data {text!r} holds no readable images")
    images = torch.stack([image for image, _ in samples]).float()
    mean_tensor = torch.tensor([255 * m for m in mean]).view(1, 3, 1, 1)
    std_tensor = torch.tensor([255 * s for s in std]).view(1, 3, 1, 1)
    labels = torch.tensor([label for _, label in samples], dtype=torch.long)
    return LabelledImages((images - mean_tensor) / std_tensor, labels, text)
