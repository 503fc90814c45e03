"""Callbacks and plugins: atomic checkpoints, resumable logs, a final ``last.ckpt``, loss/accuracy curves."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vision_backbones.io import atomic_write_bytes, atomic_write_stream, sweep_stale_temp_files
from vision_backbones.plots import pyplot, save_figure

logger = logging.getLogger(__name__)

# the temporary names of earlier versions (tempfile.mkstemp: ``.last.ckpt.k3j_x9a1.tmp``)
_LEGACY_TEMP = re.compile(r"^\..+\.ckpt\.[A-Za-z0-9_]{8}\.tmp$")


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
        atomic_write_stream(path, lambda file: torch.save(checkpoint, file))

    def remove_checkpoint(self, path: Any) -> None:
        fs = get_filesystem(path)
        if fs.exists(path):
            fs.rm(path, recursive=True)


def sweep_checkpoint_folder(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove temporary checkpoint files left by killed runs (ours, and the ``.*.ckpt.XXXXXXXX.tmp`` of earlier versions)."""
    removed = sweep_stale_temp_files(folder)
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if _LEGACY_TEMP.match(entry.name) and entry.is_file():
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    if removed:
        logger.info("removed %d temporary files left by an interrupted run in %s", len(removed), folder)
    return removed


class ResumableCSVWriter(ExperimentWriter):
    """Lightning's CSV writer that resumes: every logged row exactly once in ``metrics.csv``.

    - Rows reach the file as they are logged (Lightning buffers 100 steps, which a kill loses).
    - Lightning's writer deletes ``metrics.csv`` when it is created; this one keeps it until the run
      knows whether it resumes: :meth:`start_fresh` deletes it (Lightning's behaviour), :meth:`resume`
      keeps the rows the checkpoint had seen, plus the rows logged after the checkpoint that the
      resumed run will not log again (those before the first row it logs), and appends.
    """

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self._resume_rows: int | None = None

    def _check_log_dir_exists(self) -> None:  # decided later, by resume() or start_fresh()
        pass

    def start_fresh(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.metrics_file_path)

    def resume(self, rows: int) -> None:
        self._resume_rows = rows

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        super().log_metrics(metrics_dict, step)
        if self._resume_rows is not None:
            self._truncate(self._resume_rows, self.metrics[0])
            self._resume_rows = None
        self.save()

    def _truncate(self, rows: int, first: dict[str, Any]) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with open(path, newline="") as file:
            reader = csv.DictReader(file)
            keys = list(reader.fieldnames or [])
            old = list(reader)
        step = int(first["step"])

        def logged_again(row: dict[str, str]) -> bool:
            # a validation row shares its step with that epoch's last training row, so a run resumed
            # from before that training step logs both again: every row from the first step on goes
            return not row.get("step") or int(float(row["step"])) >= step

        kept = old[:rows] + [row for row in old[rows:] if not logged_again(row)]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_bytes(path, buffer.getvalue().encode())
        self.metrics_keys = sorted(keys)


def csv_loggers(trainer: Trainer) -> list[CSVLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, CSVLogger) and "://" not in str(lg.save_dir)]


def make_csv_loggers_resumable(trainer: Trainer) -> None:
    """Give every local CSV logger a :class:`ResumableCSVWriter` (before ``fit`` creates Lightning's)."""
    for csv_logger in csv_loggers(trainer):
        if csv_logger._experiment is None and trainer.is_global_zero:
            csv_logger._experiment = ResumableCSVWriter(log_dir=csv_logger.log_dir)


class ResumableLogs(Callback):
    """Every logged step exactly once in ``metrics.csv``, across kills and ``--ckpt_path`` resumes.

    Each checkpoint flushes the CSV loggers and records how many rows ``metrics.csv`` holds; a run
    resumed from it keeps those rows and appends (what was logged after the checkpoint is logged
    again by the resumed run). Also removes temporary checkpoint files left by a killed run.
    """

    def __init__(self) -> None:
        self._resumed = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._resumed = False
        if trainer.is_global_zero:
            for callback in trainer.checkpoint_callbacks:
                if isinstance(callback, ModelCheckpoint) and callback.dirpath and "://" not in str(callback.dirpath):
                    sweep_checkpoint_folder(callback.dirpath)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        rows = {}
        for csv_logger in csv_loggers(trainer):
            csv_logger.save()
            path = Path(csv_logger.log_dir) / ExperimentWriter.NAME_METRICS_FILE
            count = 0
            if path.is_file():
                with open(path, newline="") as file:
                    count = max(0, sum(1 for _ in csv.reader(file)) - 1)
            rows[str(Path(csv_logger.log_dir).resolve())] = count
        checkpoint["vision_backbones_logs"] = {"csv_rows": rows}

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        rows = checkpoint.get("vision_backbones_logs", {}).get("csv_rows", {})
        for csv_logger in csv_loggers(trainer):
            writer = csv_logger._experiment
            if isinstance(writer, ResumableCSVWriter):
                writer.resume(int(rows.get(str(Path(csv_logger.log_dir).resolve()), 0)))
        self._resumed = True

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._resumed:
            return
        for csv_logger in csv_loggers(trainer):
            writer = csv_logger._experiment
            if isinstance(writer, ResumableCSVWriter) and not writer.metrics:
                writer.start_fresh()


class FinalLastCheckpoint(Callback):
    """``last.ckpt`` holds the final step when training ends, also when checkpoints are step-triggered.

    (Lightning's ``save_last`` with ``every_n_train_steps`` leaves ``last.ckpt`` at the last multiple.)
    """

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for callback in trainer.checkpoint_callbacks:
            if (
                isinstance(callback, ModelCheckpoint)
                and callback.save_last
                and callback._last_global_step_saved != trainer.global_step
            ):
                callback._save_last_checkpoint(trainer, callback._monitor_candidates(trainer))


class CheckpointAfterValidation(Callback):
    """A step-triggered checkpoint on an epoch's last batch is written after that epoch's validation.

    Lightning saves it before validating, and a run resumed from it starts the next epoch: the
    validation of the epoch in which the run was killed is never run (Lightning 2.6,
    ``RESTARTED_ON_TRAIN_BATCH_END`` at the end of an epoch). Deferring the save past validation
    makes that checkpoint an end-of-epoch one, which Lightning resumes correctly; a kill during
    validation resumes from the step before, which is trained again.
    """

    def __init__(self) -> None:
        self._deferred: dict[int, int] = {}  # id(checkpoint callback) -> its previous _last_global_step_saved

    @staticmethod
    def _validates_after_this_batch(trainer: Trainer) -> bool:
        epoch_loop = trainer.fit_loop.epoch_loop
        fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
        if fetcher is None or not epoch_loop.batch_progress.is_last_batch:
            return False
        return bool(epoch_loop._should_check_val_fx(fetcher))

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # runs before ModelCheckpoint's hook (Lightning orders checkpoint callbacks last)
        self._deferred.clear()
        if not self._validates_after_this_batch(trainer):
            return
        for callback in trainer.checkpoint_callbacks:
            every = getattr(callback, "_every_n_train_steps", 0)
            if isinstance(callback, ModelCheckpoint) and every >= 1 and trainer.global_step % every == 0:
                self._deferred[id(callback)] = callback._last_global_step_saved
                callback._last_global_step_saved = trainer.global_step  # ModelCheckpoint skips a step already saved

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self._deferred:
            return
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and id(callback) in self._deferred:
                callback._last_global_step_saved = self._deferred[id(callback)]
                candidates = callback._monitor_candidates(trainer)
                callback._save_topk_checkpoint(trainer, candidates)
                callback._save_last_checkpoint(trainer, candidates)
        self._deferred.clear()


class PlotCurves(Callback):
    """Writes ``curves.png`` (train/val loss, val top-1 of raw and EMA weights per epoch) into the log folder."""

    def __init__(self, filename: str = "curves.png") -> None:
        self.filename = filename
        self.history: list[dict[str, float]] = []
        self._loss_sum = 0.0
        self._loss_count = 0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._loss_sum, self._loss_count = 0.0, 0

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
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
        for key, name in (
            ("val/loss", "val_loss"),
            ("val/acc1", "val_acc1"),
            ("val_ema/acc1", "val_ema_acc1"),
            ("val_ema/loss", "val_ema_loss"),
        ):
            if key in metrics:
                row[name] = metrics[key]
        self.history = [r for r in self.history if r["epoch"] != row["epoch"]] + [row]
        if trainer.is_global_zero:
            self.plot(self.path(trainer))

    def path(self, trainer: Trainer) -> Path:
        return Path(trainer.log_dir or trainer.default_root_dir) / self.filename

    def plot(self, path: Path) -> None:
        plt = pyplot()
        epochs = [r["epoch"] for r in self.history]
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
        for key, label in (
            ("train_loss", "train loss (mixed targets)"),
            ("val_loss", "val loss"),
            ("val_ema_loss", "val loss (EMA)"),
        ):
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
        save_figure(fig, path, dpi=100)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
