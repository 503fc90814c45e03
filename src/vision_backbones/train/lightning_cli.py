"""Lightning's CLI over the recipe: what ``backbones train {fit,validate,test} --config FILE.yaml`` runs.

Every field of the model (:class:`~vision_backbones.train.module.ImageClassifier`), the data
(:class:`~vision_backbones.train.datamodule.ImageDataModule`) and the ``Trainer`` can be set in the YAML
file or overridden on the command line (``--model.lr 0.2 --trainer.devices 8``). The config is
checked completely before anything runs: an unknown field or a wrong type is an error naming it.
The resolved config is written next to the logs and into each checkpoint folder. The command
itself (logging, one-line errors) is :mod:`vision_backbones.cli.train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vision_backbones.io import atomic_write_bytes
from vision_backbones.train.callbacks import (
    AtomicCheckpointIO,
    CheckpointAfterValidation,
    FinalLastCheckpoint,
    ResumableLogs,
    make_csv_loggers_resumable,
)
from vision_backbones.train.datamodule import ImageDataModule
from vision_backbones.train.module import ImageClassifier


class SaveConfigNextToCheckpoints(SaveConfigCallback):
    """The resolved config in the log folder (Lightning's default) and in every checkpoint folder."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        text = self.parser.dump(self.config, skip_none=False).encode()
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath and "://" not in str(callback.dirpath):
                atomic_write_bytes(Path(callback.dirpath) / self.config_filename, text)


class BackbonesCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.batch_size", "model.batch_size")
        parser.set_defaults({"trainer.use_distributed_sampler": False})

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        strategy = self.trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:
            strategy.checkpoint_io = AtomicCheckpointIO()
        # Lightning's CallbackConnector sets Trainer.callbacks without declaring it on the class
        callbacks: list[Callback] = self.trainer.callbacks  # type: ignore[attr-defined]
        # resumable metrics.csv, temp-file sweep, and a last.ckpt at the final step
        callbacks.extend([ResumableLogs(), FinalLastCheckpoint()])
        # its hooks must run before ModelCheckpoint's
        first_checkpoint = next((i for i, c in enumerate(callbacks) if isinstance(c, ModelCheckpoint)), len(callbacks))
        callbacks.insert(first_checkpoint, CheckpointAfterValidation())

    def before_fit(self) -> None:
        make_csv_loggers_resumable(self.trainer)


def build_cli(args: list[str], *, run: bool = True, **kwargs: Any) -> BackbonesCLI:
    """The CLI object (``run=False`` to get the instantiated model, data and trainer without running)."""
    return BackbonesCLI(
        ImageClassifier,
        ImageDataModule,
        args=args,
        run=run,
        save_config_callback=SaveConfigNextToCheckpoints,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "description": "Train a vision_backbones model (torchvision's recipe, Lightning CLI)",
            "exit_on_error": False,
        },
        **kwargs,
    )


def config_error_line(error: BaseException) -> str:
    """jsonargparse's multi-line explanation, folded into one line."""
    lines = [line.strip(" -") for line in str(error).strip().splitlines() if line.strip(" -")]
    return "; ".join(dict.fromkeys(lines)) if lines else type(error).__name__


def run_lightning_cli(args: list[str]) -> int:
    """Run the CLI on ``args``; a config error is one ``ValueError`` line, ``--help`` returns its exit code."""
    from jsonargparse import ArgumentError

    from vision_backbones.train.quiet import silence_third_party_noise

    silence_third_party_noise()
    try:
        build_cli(args)
    except ArgumentError as error:  # a config error: the field and the problem, on one line
        raise ValueError(config_error_line(error)) from None
    except SystemExit as error:  # --help, --print_config
        return error.code if isinstance(error.code, int) else (0 if error.code is None else 2)
    return 0
