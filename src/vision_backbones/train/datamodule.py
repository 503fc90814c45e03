"""The LightningDataModule: class folders (``root/train``, ``root/val``) or WebDataset shards -> loaders.

It wires :mod:`~vision_backbones.train.transforms`, :mod:`~vision_backbones.train.datasets` and
:mod:`~vision_backbones.train.sampler` together, and normalizes each batch on the device after the
``uint8`` transfer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from vision_backbones.train.datasets import (
    ImageFolderDataset,
    ShardDataset,
    collate_skipping,
    expand_shards,
    read_shard_meta,
)
from vision_backbones.train.memory import reuse_freed_memory, reuse_freed_memory_in_worker
from vision_backbones.train.sampler import ResumableDataLoader, ResumableSampler
from vision_backbones.train.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, TrainTransform


def _check_data_config(values: dict[str, Any]) -> None:
    """Every value checked before anything is read: one line naming the field (``data.<name>``)."""
    from vision_backbones.validate import check_bool, check_choice, check_float, check_int, check_range

    if values["root"] is None and (values["train_shards"] is None or values["val_shards"] is None):
        raise ValueError("data: give root (class folders) or both train_shards and val_shards")
    if values["num_classes"] is not None:
        check_int("data.num_classes", values["num_classes"], min=1)
    check_int("data.batch_size", values["batch_size"], min=1)
    check_int("data.num_workers", values["num_workers"], min=0)
    check_int("data.shuffle_buffer", values["shuffle_buffer"], min=0)
    check_int("data.train_crop_size", values["train_crop_size"], min=1)
    check_range("data.train_crop_scale", values["train_crop_scale"], min=0, max=1)
    check_int("data.val_resize_size", values["val_resize_size"], min=1)
    check_int("data.val_crop_size", values["val_crop_size"], min=1)
    if values["val_crop_size"] > values["val_resize_size"]:
        # a center crop larger than the resized image: every validation image would fail to load
        raise ValueError(
            f"data.val_crop_size {values['val_crop_size']} must be <= data.val_resize_size {values['val_resize_size']} "
            "(the center crop is taken from the resized image)"
        )
    check_float("data.hflip_prob", values["hflip_prob"], min=0, max=1)
    check_float("data.random_erase_prob", values["random_erase_prob"], min=0, max=1)
    check_choice("data.interpolation", values["interpolation"], ("bilinear", "bicubic", "nearest"))
    check_choice("data.auto_augment", values["auto_augment"], ("ta_wide", "randaugment", "augmix", "none"))
    check_choice("data.decoder", values["decoder"], ("auto", "simplejpeg", "pillow"))
    for field in ("pin_memory", "persistent_workers", "jpeg_draft", "drop_last", "reuse_memory"):
        check_bool(f"data.{field}", values[field])
    for field in ("mean", "std"):
        value = values[field]
        if not isinstance(value, (tuple, list)) or len(value) != 3:
            raise ValueError(f"data.{field} must be 3 numbers (one per RGB channel), got {value!r}")
        for item in value:
            check_float(f"data.{field}", item, min=0)  # std 0 is left to the NaN-loss stop (tests use it)


class ImageDataModule(LightningDataModule):
    """ImageNet-style classification data: class folders (``root/train``, ``root/val``) or WebDataset shards.

    Args:
        root: folder with ``train/<class>/*`` and ``val/<class>/*``.
        train_shards: WebDataset shards for training instead of ``root/train`` (brace pattern or
            list; local paths or URLs), e.g. ``/data/shards/train-{000000..000127}.tar``.
        val_shards: the same for validation.
        num_classes: classes; read from the folders or the shards' meta file when not given.
        batch_size: images per device and step.
        num_workers: loader processes per device.
        pin_memory: page-locked host memory (only used with a GPU).
        train_crop_size: RandomResizedCrop output size (176 in the recipe).
        train_crop_scale: RandomResizedCrop area range.
        hflip_prob: horizontal flip probability.
        auto_augment: ``ta_wide`` (TrivialAugmentWide), ``randaugment``, ``augmix`` or ``none``.
        random_erase_prob: RandomErasing probability (0.1).
        val_resize_size: shorter side before the center crop (232).
        val_crop_size: center crop (224).
        interpolation: ``bilinear`` or ``bicubic``.
        jpeg_draft: decode JPEGs at reduced size when the crop allows it.
        decoder: ``auto`` (simplejpeg where installed, else Pillow), ``simplejpeg`` or ``pillow``.
        reuse_memory: keep freed memory for reuse in the loading processes instead of page-faulting
            fresh pages for every image and batch (:mod:`~vision_backbones.train.memory`).
        mean, std: normalization, applied on the device after transfer.
        seed: shuffling/augmentation seed (default: ``seed_everything``'s seed).
        drop_last: drop the last incomplete training batch.
        shuffle_buffer: samples in the shard shuffle buffer.
        test_split: folder under ``root`` used by ``test`` (``val`` by default).
    """

    def __init__(
        self,
        root: str | None = None,
        *,
        train_shards: str | list[str] | None = None,
        val_shards: str | list[str] | None = None,
        num_classes: int | None = None,
        batch_size: int = 256,
        num_workers: int = 8,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        train_crop_size: int = 176,
        train_crop_scale: tuple[float, float] = (0.08, 1.0),
        hflip_prob: float = 0.5,
        auto_augment: Literal["ta_wide", "randaugment", "augmix", "none"] = "ta_wide",
        random_erase_prob: float = 0.1,
        val_resize_size: int = 232,
        val_crop_size: int = 224,
        interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear",
        jpeg_draft: bool = True,
        decoder: Literal["auto", "simplejpeg", "pillow"] = "auto",
        reuse_memory: bool = True,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        seed: int | None = None,
        drop_last: bool = False,
        shuffle_buffer: int = 5000,
        test_split: str = "val",
    ) -> None:
        super().__init__()
        _check_data_config(locals())
        self.save_hyperparameters(ignore=["num_classes"])  # the model's num_classes is the one logged
        self.root = root
        self.train_shards = train_shards
        self.val_shards = val_shards
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.drop_last = drop_last
        self.shuffle_buffer = shuffle_buffer
        self.test_split = test_split
        self.reuse_memory = reuse_memory
        self._seed = seed
        self.train_transform = TrainTransform(
            train_crop_size,
            scale=train_crop_scale,
            hflip_prob=hflip_prob,
            auto_augment=auto_augment,
            random_erase_prob=random_erase_prob,
            interpolation=interpolation,
            draft=jpeg_draft,
            mean=mean,
            decoder=decoder,
        )
        self.eval_transform = EvalTransform(
            val_resize_size, val_crop_size, interpolation=interpolation, draft=jpeg_draft, decoder=decoder
        )
        self._set_normalization(mean, std)
        self.classes: list[str] | None = None
        self.num_classes = num_classes if num_classes is not None else self._discover_num_classes()
        self._datasets: dict[tuple[str, bool], ImageFolderDataset] = {}

    def _set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        # (x - 255 mean) / (255 std) as x * scale + shift: two passes over one output, no temporaries
        std_255 = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1) * 255.0
        self._scale = (1.0 / std_255).float()
        self._shift = (-torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1) * 255.0 / std_255).float()

    @property
    def seed(self) -> int:
        return self._seed if self._seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

    def _discover_num_classes(self) -> int:
        if self.train_shards is not None:
            pattern = self.train_shards if isinstance(self.train_shards, str) else self.train_shards[0]
            meta = read_shard_meta(pattern)
            if meta is None:
                raise ValueError("data.num_classes is required with shards that have no meta file next to them")
            self.classes = meta["classes"]
            return len(meta["classes"])
        root = Path(self.root) / "train"  # type: ignore[arg-type]
        if not root.is_dir():
            raise ValueError(f"data.root: {str(root)!r} does not exist; expected {self.root}/train/<class>/<image>")
        self.classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
        if not self.classes:
            raise ValueError(f"data.root: {str(root)!r} has no class folders")
        return len(self.classes)

    # ---- distributed context
    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _batches_done(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def _loader(self, dataset, *, train: bool, sampler=None) -> DataLoader:
        on_gpu = (
            torch.cuda.is_available() and self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        )
        kwargs: dict[str, Any] = {
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            "collate_fn": collate_skipping,
            "pin_memory": self.pin_memory and on_gpu,
            "persistent_workers": self.persistent_workers and self.num_workers > 0,
            "drop_last": self.drop_last and train,
            "generator": torch.Generator().manual_seed(self.seed),
        }
        if self.num_workers > 0:
            kwargs["prefetch_factor"] = 4
        if self.reuse_memory:
            reuse_freed_memory()  # this process: 0 workers, batch normalization, forked workers inherit it
            kwargs["worker_init_fn"] = reuse_freed_memory_in_worker  # workers started by spawn / forkserver
        if sampler is None:
            return DataLoader(dataset, **kwargs)
        return ResumableDataLoader(
            dataset, sampler=sampler, batches_done=self._batches_done if train else None, **kwargs
        )

    def _folder_dataset(self, split: str, *, train: bool) -> ImageFolderDataset:
        key = (split, train)
        if key not in self._datasets:
            transform = self.train_transform if train else self.eval_transform
            self._datasets[key] = ImageFolderDataset(Path(self.root) / split, transform)  # type: ignore[arg-type]
        return self._datasets[key]

    def train_batches_per_epoch(self, world_size: int = 1) -> int | None:
        """Training batches per device and epoch (for the lr schedule), or ``None`` when unknown."""
        if self.train_shards is not None:
            meta = read_shard_meta(self.train_shards if isinstance(self.train_shards, str) else self.train_shards[0])
            size = None if meta is None else meta["num_samples"]
        else:
            size = len(self._folder_dataset("train", train=True))
        if size is None:
            return None
        per_rank = math.ceil(size / world_size)
        return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)

    def _folder_loader(self, split: str, *, train: bool) -> DataLoader:
        dataset = self._folder_dataset(split, train=train)
        if self.classes is not None and dataset.classes != self.classes:
            raise ValueError(
                f"classes of {self.root}/{split} differ from {self.root}/train ({len(dataset.classes)} vs {len(self.classes)})"
            )
        rank, world = self._rank_world()
        sampler = ResumableSampler(
            len(dataset), shuffle=train, seed=self.seed, rank=rank, world_size=world, with_seeds=train
        )
        return self._loader(dataset, train=train, sampler=sampler)

    def _shard_loader(self, shards: str | list[str], *, train: bool) -> DataLoader:
        urls = expand_shards(shards)
        meta = read_shard_meta(shards if isinstance(shards, str) else shards[0])
        rank, world = self._rank_world()
        dataset = ShardDataset(
            urls,
            self.train_transform if train else self.eval_transform,
            train=train,
            seed=self.seed,
            shuffle_buffer=self.shuffle_buffer,
            rank=rank,
            world_size=world,
            num_samples=None if meta is None else meta["num_samples"],
        )
        return self._loader(dataset, train=train)

    def train_dataloader(self) -> DataLoader:
        if self.train_shards is not None:
            return self._shard_loader(self.train_shards, train=True)
        return self._folder_loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        if self.val_shards is not None:
            return self._shard_loader(self.val_shards, train=False)
        return self._folder_loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        if self.root is None:
            return self.val_dataloader()
        return self._folder_loader(self.test_split, train=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 -> normalized float on the device (after the copy, so 4x fewer bytes move).

        One output and in-place arithmetic: ``(x.float() - mean) / std`` made three batch-sized
        float tensors, and on CPU each fresh one costs a page fault per 4 KiB (glibc maps blocks
        this large anew on every allocation): about 0.5 ms per 176 px image, more than the
        augmentation itself.
        """
        images, labels, skipped = batch
        scale, shift = self._scale.to(images.device), self._shift.to(images.device)
        out = torch.mul(images, scale)  # uint8 * float -> float, the only allocation
        out.add_(shift)
        return out, labels, skipped

    def state_dict(self) -> dict[str, Any]:
        return {}
