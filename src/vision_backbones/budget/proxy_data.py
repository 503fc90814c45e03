"""The proxy task NetAdapt fine-tunes on: the search's MNIST / digits splits, or an image folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
MIN_CLASSES, MIN_IMAGES = 2, 10


def check_proxy_data(data: Any) -> str:
    """``data`` as ``load_splits`` takes it: ``"mnist"`` / ``"digits"``, or an image folder with >= 2
    class subfolders and >= 10 images in all (counted by suffix, nothing decoded); one ``ValueError`` else."""
    from vision_backbones.search.data import DATASETS

    if isinstance(data, Path):
        data = str(data)
    if not isinstance(data, str) or not data:
        raise ValueError(f"--data must be one of {', '.join(DATASETS)} or an image folder, got {data!r}")
    if data in DATASETS:
        return data
    folder = Path(data)
    if not folder.is_dir():
        what = "a file" if folder.exists() else "not there"
        raise ValueError(f"--data {data!r} is neither one of {', '.join(DATASETS)} nor an image folder ({what})")
    counts = {
        sub.name: sum(1 for f in sub.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        for sub in sorted(folder.iterdir())
        if sub.is_dir()
    }
    classes = [name for name, count in counts.items() if count]
    images = sum(counts.values())
    if len(classes) < MIN_CLASSES or images < MIN_IMAGES:
        raise ValueError(
            f"--data {data!r} has {len(classes)} class folders with images and {images} images; expected an image "
            f"folder with >= {MIN_CLASSES} class subfolders and >= {MIN_IMAGES} images ({', '.join(IMAGE_SUFFIXES[:3])}, ...)"
        )
    return data


def load_splits(data: str, *, image_size: int, seed: int = 0) -> Any:
    """``"mnist"``/``"digits"`` (the search's proxy splits) or an image folder (one subfolder per
    class), cut 60/20/20 stratified, at ``image_size`` pixels."""
    from vision_backbones.search.data import DATASETS, ProxySplits

    data = check_proxy_data(data)  # an empty folder once gave torchvision's message
    if data in DATASETS:
        from vision_backbones.search.evaluate import ProxyTask, task_splits

        return task_splits(ProxyTask(data=data, image_size=image_size, data_seed=seed))
    folder = Path(data)
    import numpy as np
    from sklearn.model_selection import train_test_split
    from torchvision import datasets, transforms

    dataset = datasets.ImageFolder(
        folder, transform=transforms.Compose([transforms.Resize((image_size, image_size)), transforms.ToTensor()])
    )
    if len(dataset.classes) < 2 or len(dataset) < 10:
        raise ValueError(
            f"--data {data!r} has {len(dataset.classes)} class folders and {len(dataset)} images; expected >= 2 classes and >= 10 images"
        )
    images = torch.stack([image for image, _ in dataset])
    labels = torch.tensor(dataset.targets)
    everything = np.arange(len(labels))
    rest, test = train_test_split(everything, test_size=0.2, stratify=labels.numpy(), random_state=seed)
    train, val = train_test_split(rest, test_size=0.25, stratify=labels.numpy()[rest], random_state=seed)
    mean, std = images[train].mean(), images[train].std()
    images = (images - mean) / std

    def split(index: Any) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.from_numpy(np.sort(index))
        return images[index].contiguous(), labels[index].contiguous()

    return ProxySplits(
        name=str(folder), train=split(train), val=split(val), test=split(test), num_classes=len(dataset.classes)
    )
