"""Callbacks and plugins: atomic checkpoints, loss/accuracy curves."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vision_backbones.io import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file in the target folder and renamed into place.

    A run killed while saving leaves the previous checkpoint intact, never a truncated one.
    (Lightning's default goes through a temporary file elsewhere and a copy, which is not atomic
    when the temporary folder is on another filesystem.) Remote paths use the default writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if "://" in str(path) and not str(path).startswith("file://"):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(str(path).removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def remove_checkpoint(self, path: Any) -> None:
        fs = get_filesystem(path)
        if fs.exists(path):
            fs.rm(path, recursive=True)


class PlotCurves(Callback):
    """Writes ``curves.png`` (train/val loss, val top-1 of raw and EMA weights per epoch) into the log folder."""

    def __init__(self, filename: str = "curves.png") -> None:
        self.filename = filename
        self.history: list[dict[str, float]] = []
        self._loss_sum = 0.0
        self._loss_count = 0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._loss_sum, self._loss_count = 0.0, 0

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._loss_sum += float(loss)
            self._loss_count += 1

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        row = {"epoch": float(trainer.current_epoch + 1)}
        if self._loss_count:
            row["train_loss"] = self._loss_sum / self._loss_count
        for key, name in (("val/loss", "val_loss"), ("val/acc1", "val_acc1"), ("val_ema/acc1", "val_ema_acc1"), ("val_ema/loss", "val_ema_loss")):
            if key in metrics:
                row[name] = metrics[key]
        self.history = [r for r in self.history if r["epoch"] != row["epoch"]] + [row]
        if trainer.is_global_zero:
            self.plot(self.path(trainer))

    def path(self, trainer: Trainer) -> Path:
        return Path(trainer.log_dir or trainer.default_root_dir) / self.filename

    def plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [r["epoch"] for r in self.history]
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
        for key, label in (("train_loss", "train loss (mixed targets)"), ("val_loss", "val loss"), ("val_ema_loss", "val loss (EMA)")):
            points = [(r["epoch"], r[key]) for r in self.history if key in r]
            if points:
                ax_loss.plot(*zip(*points), marker="o", label=label)
        for key, label in (("val_acc1", "val top-1"), ("val_ema_acc1", "val top-1 (EMA)")):
            points = [(r["epoch"], 100 * r[key]) for r in self.history if key in r]
            if points:
                ax_acc.plot(*zip(*points), marker="o", label=label)
        ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
        ax_acc.set(xlabel="epoch", ylabel="%", title="validation accuracy")
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend()
        if epochs:
            ax_acc.set_xlim(left=0)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        import io

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        atomic_write_bytes(path, buffer.getvalue())

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
