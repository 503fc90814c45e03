"""The LightningModule: one registered backbone + head trained with torchvision's recipe."""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from lightning.fabric.utilities.data import AttributeDict
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vision_backbones.registry import create_model
from vision_backbones.train.recipe import (
    copy_into_average,
    ema_decay_torchvision,
    lr_factor,
    make_batch_mix,
    param_groups,
    scaled_lr,
)
from vision_backbones.train.sampler import seeded_cpu_rng

if TYPE_CHECKING:
    from torchmetrics import Metric

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class WarmupCosine:
    """``LambdaLR`` factor: linear warm-up then cosine (a class so the scheduler checkpoints its fields)."""

    total_steps: int
    warmup_steps: int
    warmup_start_factor: float = 0.01
    min_factor: float = 0.0

    def __call__(self, step: int) -> float:
        return lr_factor(
            step,
            total_steps=self.total_steps,
            warmup_steps=self.warmup_steps,
            warmup_start_factor=self.warmup_start_factor,
            min_factor=self.min_factor,
        )


def _check_hparams(values: dict[str, Any]) -> None:
    """Every value checked before anything is built: one line naming the field (``model.<name>``)."""
    from vision_backbones.validate import check_bool, check_float, check_int

    def name(field: str) -> str:
        return f"model.{field}"

    from vision_backbones.registry import get_entry

    try:
        get_entry(values["model"])
    except ValueError as error:
        raise ValueError(f"model.model: {error}") from None
    check_int(name("num_classes"), values["num_classes"], min=1)
    check_int(name("frozen_stages"), values["frozen_stages"], min=-1)
    check_int(name("batch_size"), values["batch_size"], min=1)
    check_int(name("lr_reference_batch"), values["lr_reference_batch"], min=1)
    check_int(name("ema_every_n_steps"), values["ema_every_n_steps"], min=1)
    check_float(name("lr"), values["lr"], min=0, min_open=True)
    check_float(name("momentum"), values["momentum"], min=0, max=1, max_open=True)
    for field in (
        "weight_decay",
        "norm_weight_decay",
        "bias_weight_decay",
        "backbone_lr_scale",
        "warmup_epochs",
        "cutmix_alpha",
        "mixup_alpha",
    ):
        check_float(name(field), values[field], min=0)
    check_float(name("warmup_start_factor"), values["warmup_start_factor"], min=0, max=1, min_open=True)
    check_float(name("min_lr_factor"), values["min_lr_factor"], min=0, max=1)
    check_float(name("label_smoothing"), values["label_smoothing"], min=0, max=1, max_open=True)
    check_float(name("ema_decay"), values["ema_decay"], min=0, max=1)
    for field in ("norm_eval", "scale_lr", "nesterov", "ema", "ema_adjust", "ema_warmup", "channels_last", "compile"):
        check_bool(name(field), values[field])
    if values["nesterov"] and values["momentum"] == 0:
        raise ValueError("model.nesterov needs model.momentum > 0, got momentum 0")
    overrides = values["model_overrides"]
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"model.model_overrides must be a mapping of config fields, got {overrides!r}")


def _accuracy(num_classes: int, top_k: int):
    from torchmetrics.classification import MulticlassAccuracy

    return MulticlassAccuracy(num_classes=num_classes, top_k=min(top_k, num_classes), average="micro")


class ImageClassifier(LightningModule):
    """A model from the registry trained for classification.

    Args:
        model: a name from ``vision_backbones.list_models()``.
        num_classes: classes of the head (linked to ``data.num_classes`` by the CLI).
        pretrained: weights for ``create_model(..., pretrained=...)`` (fine-tuning).
        frozen_stages: ``-1`` none, ``0`` stem, ``k`` stem and the first ``k`` stages.
        norm_eval: keep batch norms in eval mode (running statistics) while training.
        model_overrides: fields of the model family's config, e.g. ``{drop_path_rate: 0.1}``.
        batch_size: images per device and step (linked to ``data.batch_size``), for the lr scaling.
        lr: peak learning rate at ``lr_reference_batch`` images per step.
        lr_reference_batch: the global batch ``lr`` was tuned for (1024 in the recipe).
        scale_lr: scale ``lr`` linearly with the global batch (devices x nodes x batch x accumulation).
        momentum, nesterov: SGD.
        weight_decay: on weights; ``norm_weight_decay`` / ``bias_weight_decay`` on norm layers / biases.
        backbone_lr_scale: learning-rate multiplier of everything but the head (fine-tuning, e.g. 0.1).
        warmup_epochs: linear warm-up length (fractions allowed), from ``warmup_start_factor`` x lr.
        min_lr_factor: the cosine's final value, as a fraction of the peak.
        label_smoothing: cross-entropy label smoothing.
        cutmix_alpha, mixup_alpha: one of CutMix or MixUp per batch (0 disables one, both 0 disable mixing).
        ema: keep an exponential moving average of the weights, validated alongside the raw weights.
        ema_decay: EMA decay per update; with ``ema_adjust`` torchvision's value, adjusted for the
            global batch, ``ema_every_n_steps`` and the number of epochs as torchvision does.
        ema_every_n_steps: optimizer steps between EMA updates.
        ema_warmup: the EMA copies the weights during the lr warm-up (torchvision).
        channels_last: train in channels-last memory format.
        compile: ``torch.compile`` the model's forward.
    """

    def __init__(
        self,
        model: str = "resnet50",
        num_classes: int = 1000,
        *,
        pretrained: str | None = None,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        model_overrides: dict[str, Any] | None = None,
        batch_size: int = 256,
        lr: float = 0.5,
        lr_reference_batch: int = 1024,
        scale_lr: bool = True,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 2e-5,
        norm_weight_decay: float = 0.0,
        bias_weight_decay: float = 0.0,
        backbone_lr_scale: float = 1.0,
        warmup_epochs: float = 5.0,
        warmup_start_factor: float = 0.01,
        min_lr_factor: float = 0.0,
        label_smoothing: float = 0.1,
        cutmix_alpha: float = 1.0,
        mixup_alpha: float = 0.2,
        ema: bool = True,
        ema_decay: float = 0.99998,
        ema_adjust: bool = True,
        ema_every_n_steps: int = 32,
        ema_warmup: bool = True,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        _check_hparams(locals())
        self.save_hyperparameters()
        self.model_name = model
        self.model_overrides = dict(model_overrides or {})
        self.model = create_model(
            model,
            num_classes=num_classes,
            pretrained=pretrained,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            **self.model_overrides,
        )
        self.mix = make_batch_mix(num_classes, cutmix_alpha, mixup_alpha)
        self.ema: AveragedModel | None = None
        if ema:
            # the decay is final once the trainer is known (setup); the average itself is built now so
            # its weights are part of every checkpoint
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
            for param in self.ema.parameters():
                param.requires_grad_(False)
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{weights}_{k}": _accuracy(num_classes, k)
                for stage in ("val", "test")
                for weights in ("raw", "ema")
                for k in (1, 5)
            }
        )
        self.last_val: dict[str, float] = {}
        self.skipped_images = 0
        self._mix_seed = int(os.environ.get("PL_GLOBAL_SEED", 0))

    @property
    def _hp(self) -> AttributeDict:
        """``hparams``, typed: ``save_hyperparameters()`` in ``__init__`` stores an ``AttributeDict``."""
        hp = self.hparams
        if not isinstance(hp, AttributeDict):
            raise TypeError(f"hparams should be an AttributeDict, got {type(hp).__name__}")
        return hp

    def _metric(self, name: str) -> Metric:
        # every entry of self.metrics is a torchmetrics accuracy, built in __init__
        return cast("Metric", self.metrics[name])

    # ---- setup
    def setup(self, stage: str) -> None:
        if self._hp.channels_last:
            self.model.to(memory_format=torch.channels_last)
            if self.ema is not None:
                self.ema.to(memory_format=torch.channels_last)
        if self.ema is not None and self._hp.ema_adjust and self.trainer is not None:
            epochs = max(1, self.trainer.max_epochs or 1)
            decay = ema_decay_torchvision(
                self._hp.ema_decay,
                global_batch=self.global_batch_size,
                every_n_steps=self._hp.ema_every_n_steps,
                epochs=epochs,
            )
            self.ema.multi_avg_fn = get_ema_multi_avg_fn(decay)
            self.ema_effective_decay = decay
        self._compiled: Callable[..., Any] | None = None
        if self._hp.compile:
            object.__setattr__(self, "_compiled", torch.compile(self.model))

    def on_fit_start(self) -> None:
        # Lightning keeps the modes modules were built with instead of calling .train(); Backbone
        # applies norm_eval / frozen stages in .train(), so call it once here
        if self.model.training:
            self.model.train()

    @property
    def global_batch_size(self) -> int:
        trainer = self._trainer
        world = trainer.world_size if trainer is not None else 1
        accumulate = trainer.accumulate_grad_batches if trainer is not None else 1
        return self._hp.batch_size * world * accumulate

    def forward(self, x: Tensor) -> Tensor:
        if self._hp.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        compiled = getattr(self, "_compiled", None)
        model = compiled if compiled is not None else self.model
        return model(x)

    # ---- optimization
    def _steps(self) -> tuple[int, int]:
        """(optimizer steps per epoch, total optimizer steps), without touching the train dataloader."""
        trainer = self.trainer
        batches = None
        # Lightning's DataConnector sets Trainer.datamodule without declaring it on the class
        datamodule: LightningDataModule | None = trainer.datamodule  # type: ignore[attr-defined]
        if datamodule is not None and hasattr(datamodule, "train_batches_per_epoch"):
            batches = datamodule.train_batches_per_epoch(trainer.world_size)
        if batches is None:
            estimated = int(trainer.estimated_stepping_batches)
            epochs = max(1, trainer.max_epochs or 1)
            return max(1, estimated // epochs), estimated
        limit = trainer.limit_train_batches
        if isinstance(limit, int):
            batches = min(batches, limit)
        elif limit is not None:
            batches = int(batches * limit)
        per_epoch = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
        fit_epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else None
        total = per_epoch * fit_epochs if fit_epochs is not None else None
        if trainer.max_steps not in (None, -1):
            total = trainer.max_steps if total is None else min(total, trainer.max_steps)
        if total is None:
            raise ValueError("set trainer.max_epochs or trainer.max_steps: the cosine schedule needs a length")
        return per_epoch, total

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        hp = self._hp
        lr = scaled_lr(hp.lr, self.global_batch_size, hp.lr_reference_batch) if hp.scale_lr else hp.lr
        self.effective_lr = lr
        groups = param_groups(
            self.model,
            lr=lr,
            weight_decay=hp.weight_decay,
            norm_weight_decay=hp.norm_weight_decay,
            bias_weight_decay=hp.bias_weight_decay,
            backbone_lr_scale=hp.backbone_lr_scale,
        )
        optimizer = torch.optim.SGD(
            groups, lr=lr, momentum=hp.momentum, nesterov=hp.nesterov, weight_decay=hp.weight_decay
        )
        per_epoch, total = self._steps()
        self.steps_per_epoch = per_epoch
        warmup = min(total, round(hp.warmup_epochs * per_epoch))
        self.warmup_steps = warmup
        schedule = WarmupCosine(total, warmup, hp.warmup_start_factor, hp.min_lr_factor)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        logger.info("lr %.4g (global batch %d), %d steps, %d warm-up", lr, self.global_batch_size, total, warmup)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    # ---- steps
    def _check_finite(self, loss: Tensor, batch_idx: int) -> None:
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at global step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx}); "
                "stopping. Lower model.lr, check the data, or resume from an earlier checkpoint."
            )

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> Tensor | None:
        images, labels, skipped = batch
        if int(skipped):
            self.skipped_images += int(skipped)
        if len(labels) == 0:  # every image of the batch was unreadable: no step (as in validation)
            logger.warning("skipping training batch %d: none of its %d images could be read", batch_idx, int(skipped))
            return None
        targets: Tensor = labels
        if self.mix is not None and len(labels) > 1:
            # seeded per (seed, step, rank): identical after a resume, independent of everything else
            with seeded_cpu_rng(self._mix_seed * 1_000_003 + self.global_step * 4096 + self.global_rank):
                images, targets = self.mix(images, labels)
        logits = self(images)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=self._hp.label_smoothing)
        self._check_finite(loss, batch_idx)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(labels))
        self.log("train/lr", self._lr() if self._trainer is not None else 0.0, batch_size=len(labels))
        if self.skipped_images:
            self.log("data/skipped", float(self.skipped_images), reduce_fx="max", batch_size=len(labels))
        return loss

    def _lr(self) -> float:
        optimizer = self.optimizers()
        if isinstance(optimizer, list):  # configure_optimizers returns one optimizer
            raise TypeError(f"expected one optimizer, got {len(optimizer)}")
        return optimizer.param_groups[-1]["lr"]

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # here, not in on_train_batch_end: checkpoint callbacks run before the module's batch-end
        # hook, so an update there would be missing from a checkpoint saved at this step
        self._update_ema()

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None or self.global_step % self._hp.ema_every_n_steps != 0:
            return
        self.ema.update_parameters(self.model)
        if self._hp.ema_warmup and self.global_step <= getattr(self, "warmup_steps", 0):
            copy_into_average(self.ema)  # the next update copies the weights

    def _eval_step(self, stage: str, batch: tuple[Tensor, Tensor, Tensor]) -> None:
        images, labels, _ = batch
        if len(labels) == 0:
            return
        logits = self(images)
        self.log(f"{stage}/loss", F.cross_entropy(logits.float(), labels), sync_dist=True, batch_size=len(labels))
        for k in (1, 5):
            metric = self._metric(f"{stage}_raw_{k}")
            metric.update(logits, labels)
            self.log(f"{stage}/acc{k}", metric, prog_bar=k == 1, batch_size=len(labels))
        if self.ema is not None:
            x = images.contiguous(memory_format=torch.channels_last) if self._hp.channels_last else images
            ema_logits = self.ema.module(x)
            self.log(
                f"{stage}_ema/loss", F.cross_entropy(ema_logits.float(), labels), sync_dist=True, batch_size=len(labels)
            )
            for k in (1, 5):
                metric = self._metric(f"{stage}_ema_{k}")
                metric.update(ema_logits, labels)
                self.log(f"{stage}_ema/acc{k}", metric, prog_bar=k == 1, batch_size=len(labels))

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_validation_epoch_end(self) -> None:
        metrics = self.trainer.callback_metrics
        self.last_val = {k: float(v) for k, v in metrics.items() if k.startswith(("val/", "val_ema/"))}

    # ---- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vision_backbones"] = {
            "model": self.model_name,
            "overrides": self.model_overrides,
            "num_classes": self._hp.num_classes,
            "last_val": dict(self.last_val),
            "skipped_images": self.skipped_images,
            "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        info = checkpoint.get("vision_backbones", {})
        self.last_val = dict(info.get("last_val", {}))
        self.skipped_images = int(info.get("skipped_images", 0))
        rng = info.get("rng")
        if rng is not None:
            torch.set_rng_state(rng["torch"])
            state = random.getstate()
            random.setstate((state[0], tuple(rng["python"]), state[2]))
