"""A Lightning callback that recomputes batch-norm statistics over training batches ("precise BN").

Wraps :func:`vision_backbones.batch_norm.recompute_batch_norm_statistics` (why: see that module):
before each validation run (not the sanity check) and once when training ends, so the exported
weights carry the recomputed statistics. The model is ``pl_module.model`` (the library's
``LightningModule``; the module itself otherwise), and its EMA copy ``pl_module.ema.module`` too.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from vision_backbones.batch_norm import recompute_batch_norm_statistics
from vision_backbones.validate import check_bool, check_int


class RecomputeBatchNormStatistics(Callback):
    """Batch-norm statistics from ``max_batches`` training batches, before validation and at the end."""

    def __init__(self, max_batches: int = 50, *, before_validation: bool = True) -> None:
        self.max_batches = check_int("max_batches", max_batches, min=1)
        self.before_validation = check_bool("before_validation", before_validation)

    def _models(self, pl_module: LightningModule) -> list[Any]:
        models = [getattr(pl_module, "model", pl_module)]
        ema = getattr(pl_module, "ema", None)
        if ema is not None and hasattr(ema, "module"):
            models.append(ema.module)
        return models

    def recompute(self, trainer: Trainer, pl_module: LightningModule) -> None:
        loader = trainer.train_dataloader
        if loader is None:
            return
        for model in self._models(pl_module):
            recompute_batch_norm_statistics(model, iter(loader), max_batches=self.max_batches, device=pl_module.device)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.before_validation and not trainer.sanity_checking and trainer.training:
            self.recompute(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.recompute(trainer, pl_module)
