"""`backbones train` end to end on a tiny model: config errors, artifacts, export, NaN stop, kill-and-resume."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import leftover_temp_files

pytest.importorskip("lightning")

from lightning.pytorch import Callback

from vision_backbones import create_model
from vision_backbones.cli.export_backbone import main as export_main
from vision_backbones.cli.train import main
from vision_backbones.train.backbone_export import export_backbone
from vision_backbones.train.lightning_cli import build_cli
from vision_backbones.train.samples import write_class_folders

TINY = {"depths": (1, 1, 1, 1), "widths": (4, 8, 8, 8), "stem_channels": 4}

TINY_CONFIG = """
seed_everything: 7
trainer:
  accelerator: cpu
  devices: 1
  max_epochs: {epochs}
  enable_progress_bar: false
  enable_model_summary: false
  num_sanity_val_steps: 0
  log_every_n_steps: 1
  default_root_dir: {out}
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args: {{save_dir: {out}, name: "", version: ""}}
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {{dirpath: {out}/checkpoints, every_n_train_steps: 1, save_last: true, save_top_k: 1}}
model:
  model: resnet18
  model_overrides: {{depths: [1, 1, 1, 1], widths: [4, 8, 8, 8], stem_channels: 4}}
  lr: 0.2
  lr_reference_batch: 4
  warmup_epochs: 1
  ema_adjust: false
  ema_decay: 0.9
  ema_every_n_steps: 1
data:
  root: {root}
  batch_size: 4
  num_workers: 0
  train_crop_size: 32
  train_crop_scale: [0.3, 1.0]
  val_resize_size: 36
  val_crop_size: 32
"""


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    write_class_folders(root / "train", classes=3, per_class=6, size=(48, 40))
    write_class_folders(root / "val", classes=3, per_class=2, size=(48, 40), seed=1)
    return root


def write_config(tmp_path: Path, root: Path, out: Path, epochs: int = 2) -> Path:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG.format(root=root, out=out, epochs=epochs))
    return config


def test_unknown_field_fails_before_any_work(tmp_path, image_root, capsys):
    out = tmp_path / "run"
    config = write_config(tmp_path, image_root, out)
    config.write_text(config.read_text().replace("  lr: 0.2", "  lr: 0.2\n  learning_rate: 0.1"))
    assert main(["fit", "--config", str(config)]) == 2
    assert "learning_rate" in capsys.readouterr().err
    assert not out.exists()


def test_wrong_type_fails_naming_the_field(tmp_path, image_root, capsys):
    out = tmp_path / "run"
    config = write_config(tmp_path, image_root, out)
    assert main(["fit", "--config", str(config), "--model.lr", "fast"]) == 2
    err = capsys.readouterr().err
    # the field's full name as a whole word and the bad value (a bare "lr" matched any message)
    assert re.search(r"(?<![\w.])model\.lr(?![\w.])", err) and re.search(r"\bfast\b", err), err
    assert main(["fit", "--config", str(config), "--data.batch_size", "four"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"(?<![\w.])data\.batch_size(?![\w.])", err) and re.search(r"\bfour\b", err), err
    assert not out.exists()


def test_fit_leaves_artifacts_and_exports_a_loadable_backbone(tmp_path, image_root, capsys):
    out = tmp_path / "run"
    config = write_config(tmp_path, image_root, out, epochs=1)
    assert main(["fit", "--config", str(config)]) == 0
    assert (out / "config.yaml").is_file() and (out / "checkpoints" / "config.yaml").is_file()
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "metrics.csv").is_file()
    assert leftover_temp_files(out) == []  # atomic writes leave no temporaries
    header = (out / "metrics.csv").read_text().splitlines()[0]
    for column in ("train/loss", "val/acc1", "val/acc5", "val_ema/acc1"):
        assert column in header
    target = tmp_path / "backbone.safetensors"
    assert export_main([str(out / "checkpoints" / "last.ckpt"), str(target)]) == 0
    assert "create_model('resnet18'" in capsys.readouterr().out
    model = create_model("resnet18", pretrained=target, features_only=True)
    assert model.head is None and model.level_channels[-1] == 8  # the stored overrides came back
    _, summary = export_backbone(out / "checkpoints" / "last.ckpt", tmp_path / "raw.safetensors", weights="raw")
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    loaded = create_model("resnet18", pretrained=tmp_path / "raw.safetensors", num_classes=3)
    assert summary["weights"] == "raw"
    for key, value in loaded.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(value, state[f"model.{key}"]), key
    # validate and test run from the checkpoint through the same CLI
    assert main(["validate", "--config", str(config), "--ckpt_path", str(out / "checkpoints" / "last.ckpt")]) == 0


def test_nan_loss_stops_with_the_step(tmp_path, image_root, capsys):
    out = tmp_path / "run"
    config = write_config(tmp_path, image_root, out)
    # a zero std makes every input infinite: the first loss is NaN
    assert main(["fit", "--config", str(config), "--data.std", "[0, 0, 0]"]) == 1
    err = capsys.readouterr().err
    assert "training loss is nan at global step 0" in err


class Killed(Exception):
    """Stands for the process dying (a KeyboardInterrupt would make Lightning exit the interpreter)."""


class CrashAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


SHORT = ["--trainer.limit_train_batches", "3"]


def test_kill_mid_epoch_and_resume_equals_uninterrupted(tmp_path, image_root):
    # 3 steps per epoch, 2 epochs; killed at step 5, in the middle of the second epoch (last checkpoint: step 4)
    straight_dir, crash_dir = tmp_path / "straight", tmp_path / "crash"
    straight_dir.mkdir(), crash_dir.mkdir()
    straight_cli = build_cli(
        ["--config", str(write_config(straight_dir, image_root, straight_dir / "run")), *SHORT], run=False
    )
    straight_cli.trainer.fit(straight_cli.model, straight_cli.datamodule)
    assert straight_cli.trainer.global_step == 6

    config = write_config(crash_dir, image_root, crash_dir / "run")
    crashed = build_cli(["--config", str(config), *SHORT], run=False)
    crashed.trainer.callbacks.insert(0, CrashAt(5))
    with pytest.raises(Killed):
        crashed.trainer.fit(crashed.model, crashed.datamodule)
    assert torch.load(crash_dir / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4

    resumed = build_cli(["--config", str(config), *SHORT], run=False)  # a fresh process would build the same
    resumed.trainer.fit(resumed.model, resumed.datamodule, ckpt_path="last")
    assert resumed.trainer.global_step == 6
    want, got = straight_cli.model.state_dict(), resumed.model.state_dict()
    assert want.keys() == got.keys()
    for key in want:
        assert torch.allclose(want[key].float(), got[key].float(), atol=1e-6, rtol=1e-5), key
    assert resumed.trainer.callback_metrics["val/acc1"] == straight_cli.trainer.callback_metrics["val/acc1"]


def test_fit_prints_no_third_party_tips_or_warnings(tmp_path, image_root):
    """A first `backbones train fit` (the path `make demo` takes) shows no library noise the user did not ask for."""
    import subprocess
    import sys

    out = tmp_path / "run"
    config = write_config(tmp_path, image_root, out, epochs=1)
    run = subprocess.run(
        [sys.executable, "-m", "vision_backbones.cli", "train", "fit", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    printed = run.stdout + run.stderr
    for noise in ("litlogger", "LeafSpec", "exists and is not empty", "Warning:"):
        assert noise not in printed, f"{noise!r} printed:\n{printed[-3000:]}"
