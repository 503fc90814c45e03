"""Proxy evaluation of one architecture: a few epochs on real images, accuracy, size, cost and latency.

A search ranks hundreds of architectures, so one trial has to take seconds on one core: images are
small (MNIST resized to 32 px, scikit-learn's 8x8 digits, or your own class folder or shards decoded
at ``image_size``, :mod:`.data`), the training split has a few thousand images and training lasts a
few epochs. This is a *plain* PyTorch loop on purpose, not the library's Lightning recipe
(``vision_backbones.train``): a trial of a few hundred steps spends most of its time in fixed costs that a ``Trainer`` adds (setup, callbacks, loggers, checkpoints, progress, device
placement), and a search runs many trials in one process, where a loop of twenty lines is also
easier to keep bit-for-bit deterministic. The full recipe remains the way to train the winner.

Determinism: ``torch.manual_seed(seed)`` before the model is built, a seeded generator for the
shuffling, one intra-op thread by default and no data-loader workers, so one seed gives one result.
After training, batch-norm statistics are recomputed over training batches
(``vision_backbones.batch_norm``): MnasNet's TensorFlow momentum (``1 - 0.9997``) would otherwise
leave them near their initial values after a few hundred steps.

``evaluate_architecture(base, arch, task)`` builds exactly ``create_model(base,
**proxy_model_kwargs(task), **arch)``: the data's classes and channels (10 and 1 for the digits, K and
1 or 3 for your images). Latency is measured on the network that would be deployed,
``create_model(base, **arch)`` (3 input channels, 1000 classes by default) at ``task.latency_image_size``,
so it compares with the registered models' latency at the same settings.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vision_backbones.batch_norm import recompute_batch_norm_statistics
from vision_backbones.flops import count_flops
from vision_backbones.measure.timing import num_threads
from vision_backbones.search.data import (
    BUILTIN_SHAPE,
    DATASETS,
    ModelShape,
    ProxySplits,
    Split,
    check_proxy_data,
    proxy_splits,
    splits_signature,
)
from vision_backbones.validate import check_bool, check_choice, check_float, check_int

OPTIMIZERS = ("sgd", "adamw")


@dataclass(frozen=True)
class ProxyTask:
    """How a trial trains and measures (every field is recorded with the trial's result).

    The defaults make one trial of a small MnasNet-space network (``width_multiplier`` 0.25-0.5,
    ``head_channels`` 256) take a few seconds on one core; ``train_images`` caps the training split.

    ``data``: ``"mnist"``, ``"digits"``, an image folder (one subfolder per class) or WebDataset shards
    (``data.check_proxy_data``; a path is kept absolute). Every split is used at ``image_size`` px:
    folder and shard images are decoded straight to it, the digits resized to it.
    """

    data: str = "mnist"
    image_size: int = 32  # MNIST's 28 px resized: a multiple of the deepest stride, 32
    epochs: int = 2
    batch_size: int = 64
    lr: float = 0.01
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    label_smoothing: float = 0.0
    train_images: int | None = None  # None: the whole training split
    val_images: int | None = None  # None: the whole validation split (a cap speeds up supernet ranking)
    bn_batches: int = 10  # training batches for the recomputed batch-norm statistics (0: keep the running ones)
    eval_batch_size: int = 500
    threads: int = 1
    channels_last: bool = True  # 2-3x faster training of depthwise convs on CPU (oneDNN kernels)
    data_seed: int = 0  # the split; the trial's own seed is an argument of evaluate_*
    latency_image_size: int = 224
    latency_in_channels: int = 3
    latency_num_classes: int = 1000
    latency_repeats: int = 15
    latency_threads: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", check_proxy_data(self.data))  # frozen: the normalised path
        for name in (
            "image_size",
            "epochs",
            "batch_size",
            "eval_batch_size",
            "threads",
            "latency_image_size",
            "latency_in_channels",
            "latency_num_classes",
            "latency_repeats",
            "latency_threads",
        ):
            check_int(name, getattr(self, name), min=1)
        check_int("bn_batches", self.bn_batches, min=0)
        check_int("data_seed", self.data_seed, min=0)
        for name in ("train_images", "val_images"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), min=1)
        check_float("lr", self.lr, min=0, min_open=True)
        check_float("weight_decay", self.weight_decay, min=0)
        check_float("label_smoothing", self.label_smoothing, min=0, max=1, max_open=True)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_bool("channels_last", self.channels_last)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resized(split: Split, size: int) -> Split:
    images, labels = split
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return images.contiguous(), labels


def task_splits(task: ProxyTask) -> ProxySplits:
    """The task's data at the task's image size (train capped at ``train_images``), channels-last if asked.

    Cached per task and the signature of a folder's or shards' files (``data.splits_signature``), so
    a folder changed since the last call is read again; ``task_splits.cache_clear()`` empties it.
    """
    return _task_splits(task, splits_signature(task.data))


@functools.lru_cache(maxsize=4)
def _task_splits(task: ProxyTask, signature: str) -> ProxySplits:
    splits = proxy_splits(task.data, seed=task.data_seed, image_size=task.image_size)
    train = _resized(splits.train, task.image_size)
    if task.train_images is not None:
        train = (train[0][: task.train_images], train[1][: task.train_images])
    val, test = _resized(splits.val, task.image_size), _resized(splits.test, task.image_size)
    if task.val_images is not None:
        val = (val[0][: task.val_images], val[1][: task.val_images])
    if task.channels_last:
        train, val, test = ((x.to(memory_format=torch.channels_last), y) for x, y in (train, val, test))
    return dataclasses.replace(splits, train=train, val=val, test=test)


task_splits.cache_clear = _task_splits.cache_clear  # type: ignore[attr-defined]


def proxy_model_kwargs(task: ProxyTask) -> ModelShape:
    """``num_classes`` and ``in_channels`` of the network trained on ``task``: its data's (the digits'
    without loading them). The *latency* network stays ``latency_num_classes`` / ``latency_in_channels``."""
    return BUILTIN_SHAPE.copy() if task.data in DATASETS else task_splits(task).model_kwargs()


def training_batches(split: Split, batch_size: int, generator: torch.Generator) -> list[Split]:
    """One epoch of shuffled batches (the last, smaller one dropped: a batch of 1 breaks batch norm)."""
    images, labels = split
    order = torch.randperm(len(labels), generator=generator)
    count = max(1, len(labels) // batch_size)
    return [(images[idx], labels[idx]) for idx in order[: count * batch_size].view(count, -1)]


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, *, batch_size: int = 500) -> float:
    """Top-1 accuracy in percent of ``model`` (put in eval mode for it) on ``split``."""
    was_training = model.training
    model.eval()
    correct = 0
    images, labels = split
    try:
        for start in range(0, len(labels), batch_size):
            logits = model(images[start : start + batch_size])
            correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    finally:
        model.train(was_training)
    return 100.0 * correct / len(labels)


def make_optimizer(model: nn.Module, task: ProxyTask) -> torch.optim.Optimizer:
    # no weight decay on biases and norm weights (the usual recipe; torchvision's norm_weight_decay=0)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    plain = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": task.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    if task.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=task.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=task.lr)


def warmup_cosine(step: int, total: int) -> float:
    """Learning-rate factor: linear warm-up over a quarter of the steps, then cosine to zero.

    (``OneCycleLR`` would do, but refuses runs of fewer than 4 steps, which tests use.)
    """
    warmup = max(1, total // 4)
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def train_model(
    model: nn.Module,
    splits: ProxySplits,
    task: ProxyTask,
    *,
    seed: int = 0,
    step: Any = None,
    after_epoch: Any = None,
) -> list[float]:
    """Train ``model`` in place on ``splits.train`` (``warmup_cosine`` schedule); returns the mean loss per epoch.

    ``step``: a callable run before each batch with the model (the one-shot supernet samples its path there).
    ``after_epoch(epochs_done, model) -> bool``: run after every epoch but the last; True stops training
    there (a multi-fidelity pruner, ``search.fidelity``). The schedule spans ``task.epochs`` either way.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(model, task)
    steps_per_epoch = max(1, len(splits.train[1]) // task.batch_size)
    total = steps_per_epoch * task.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total))
    model.train()
    losses = []
    for _ in range(task.epochs):
        epoch_loss = 0.0
        batches = training_batches(splits.train, task.batch_size, generator)
        for images, labels in batches:
            if step is not None:
                step(model)
            loss = F.cross_entropy(model(images), labels, label_smoothing=task.label_smoothing)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(
                    f"training loss became {float(loss)}; expected a finite loss (lower lr={task.lr:g}?)"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            epoch_loss += loss.item()
        losses.append(epoch_loss / len(batches))
        if after_epoch is not None and len(losses) < task.epochs and after_epoch(len(losses), model):
            break
    return losses


def recompute_statistics(model: nn.Module, splits: ProxySplits, task: ProxyTask, *, seed: int = 0) -> None:
    """Batch-norm statistics from ``task.bn_batches`` seeded training batches (no-op for 0)."""
    if task.bn_batches == 0:
        return
    batches = training_batches(splits.train, task.batch_size, torch.Generator().manual_seed(seed + 1))
    recompute_batch_norm_statistics(model, batches, max_batches=task.bn_batches)


def evaluate_model(
    model: nn.Module,
    task: ProxyTask,
    *,
    seed: int = 0,
    splits: ProxySplits | None = None,
    train: bool = True,
    rungs: Any = None,
) -> dict[str, Any]:
    """Train (unless ``train=False``) and score an already-built ``model`` (``proxy_model_kwargs(task)``'s shape).

    Returns ``val_acc1``, ``test_acc1`` (percent), ``train_loss`` (per epoch), ``params``, ``flops``
    (at ``task.image_size``), ``train_seconds`` and the data's ``num_classes`` / ``in_channels``.
    ``rungs``: a ``fidelity.RungReporter`` that hears the validation accuracy after every epoch and may
    stop the training early; the result then says ``pruned`` and ``epochs_trained``.
    """
    check_int("seed", seed, min=0)
    splits = splits or task_splits(task)
    if task.channels_last:
        model.to(memory_format=torch.channels_last)

    def validate(epochs_done: int, trained: nn.Module) -> bool:
        recompute_statistics(trained, splits, task, seed=seed)
        return bool(rungs.report(epochs_done, accuracy(trained, splits.val, batch_size=task.eval_batch_size)))

    with num_threads(task.threads):
        start = time.perf_counter()
        losses = train_model(model, splits, task, seed=seed, after_epoch=rungs and validate) if train else []
        train_seconds = time.perf_counter() - start
        recompute_statistics(model, splits, task, seed=seed)
        result = {
            "val_acc1": accuracy(model, splits.val, batch_size=task.eval_batch_size),
            "test_acc1": accuracy(model, splits.test, batch_size=task.eval_batch_size),
            "train_loss": losses,
            "params": sum(p.numel() for p in model.parameters()),
            "flops": count_flops(model, torch.zeros(1, splits.in_channels, task.image_size, task.image_size)).total,
            "train_seconds": train_seconds,
            **splits.model_kwargs(),
        }
    if rungs is not None:
        pruned = len(losses) < task.epochs
        if not pruned:
            rungs.report(len(losses), result["val_acc1"])
        rungs.finish(result["val_acc1"], pruned=pruned)
        result |= {"pruned": pruned, "epochs_trained": len(losses)}
    return result


def evaluate_architecture(
    base: str,
    arch: Mapping[str, Any],
    task: ProxyTask | None = None,
    *,
    seed: int = 0,
    latency: bool = True,
    latency_table: Any = None,
    rungs: Any = None,
) -> dict[str, Any]:
    """Train ``create_model(base, **proxy_model_kwargs(task), **arch)`` on the proxy task and score it
    (``rungs``: a multi-fidelity ``fidelity.RungReporter``, see ``evaluate_model``).

    Returns ``evaluate_model``'s keys plus ``latency_ms`` (measured on ``create_model(base, **arch)``
    at the task's latency settings; ``None`` with ``latency=False``), ``latency_predicted_ms`` when a
    ``LatencyTable`` is given, ``deploy_params`` / ``deploy_flops`` of that deployed network and
    ``seconds`` (the whole trial). Bad ``base`` or ``arch`` fields raise ``ValueError`` before training.
    """
    from vision_backbones.registry import build_on_meta, create_model
    from vision_backbones.search.latency import measure_latency_ms

    task = task or ProxyTask()
    if not isinstance(arch, Mapping):
        raise ValueError(f"arch must be a mapping of config overrides, got {type(arch).__name__}")
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = create_model(base, **proxy_model_kwargs(task), **arch)
    result = evaluate_model(model, task, seed=seed, rungs=rungs)
    deploy_kwargs = {"num_classes": task.latency_num_classes, "in_channels": task.latency_in_channels, **arch}
    deployed_meta = build_on_meta(base, **deploy_kwargs)
    size = task.latency_image_size
    result["deploy_params"] = sum(p.numel() for p in deployed_meta.parameters())
    result["deploy_flops"] = count_flops(
        deployed_meta, torch.empty(1, task.latency_in_channels, size, size, device="meta")
    ).total
    result["latency_ms"] = None
    if latency:
        torch.manual_seed(seed)
        deployed = create_model(base, **deploy_kwargs)
        result["latency_ms"] = measure_latency_ms(
            deployed, image_size=size, threads=task.latency_threads, repeats=task.latency_repeats
        )
    if latency_table is not None:
        result["latency_predicted_ms"] = latency_table.predict_ms(deployed_meta)
    result["seconds"] = time.perf_counter() - start
    return result
