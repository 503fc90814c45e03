"""DDP with 2 CPU processes (gloo) ends with the same weights as 1 process at the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from vision_backbones.train.lightning_cli import build_cli
from vision_backbones.train.samples import write_class_folders

CONFIG = """
seed_everything: 3
trainer:
  accelerator: cpu
  default_root_dir: {out}
  max_steps: 4
  max_epochs: 1
  enable_progress_bar: false
  enable_model_summary: false
  num_sanity_val_steps: 0
  limit_val_batches: 0
  logger: false
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {{dirpath: {out}, save_last: true, save_top_k: 0}}
model:
  model: resnet18
  model_overrides: {{depths: [1, 1, 1, 1], widths: [4, 8, 8, 8], stem_channels: 4}}
  lr: 0.05                    # small enough that 4 steps stay stable: diverging weights make any comparison noise
  lr_reference_batch: 8
  warmup_epochs: 0
  cutmix_alpha: 0.0
  mixup_alpha: 0.0
  ema_adjust: false
  ema_decay: 0.5
  ema_every_n_steps: 1
  norm_eval: true             # SyncBatchNorm needs GPUs; with frozen statistics the ranks' batches add up exactly
data:
  root: {root}
  num_workers: 0
  train_crop_size: 32
  val_resize_size: 32
  val_crop_size: 32
"""


def _run(config: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "vision_backbones.cli.train", "fit", "--config", str(config), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=config.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_two_process_ddp_equals_single_process(tmp_path):
    root = tmp_path / "data"
    write_class_folders(root / "train", classes=3, per_class=12, size=(40, 40))
    write_class_folders(root / "val", classes=3, per_class=1, size=(40, 40))
    weights = {}
    # one process, global batch 8 (in this interpreter, through the same CLI)
    config = tmp_path / "single.yaml"
    config.write_text(CONFIG.format(root=root, out=tmp_path / "single"))
    cli = build_cli(["--config", str(config), "--trainer.devices", "1", "--data.batch_size", "8"], run=False)
    initial = {k: v.detach().clone() for k, v in cli.model.state_dict().items()}  # both runs start here (seed 3)
    trained = [k for k, p in cli.model.named_parameters() if p.requires_grad and k in initial]
    cli.trainer.fit(cli.model, cli.datamodule)
    # two processes (DDP, gloo), 4 each: Lightning starts the second rank by re-running the command
    config = tmp_path / "ddp.yaml"
    config.write_text(CONFIG.format(root=root, out=tmp_path / "ddp"))
    _run(config, "--trainer.devices", "2", "--trainer.strategy", "ddp", "--data.batch_size", "4")
    for name in ("single", "ddp"):
        checkpoint = torch.load(tmp_path / name / "last.ckpt", weights_only=True)
        assert checkpoint["global_step"] == 4
        weights[name] = checkpoint["state_dict"]
    single, ddp = weights["single"], weights["ddp"]
    assert single.keys() == ddp.keys()
    moved = 0
    for key, value in single.items():
        if not value.is_floating_point():
            continue
        assert torch.allclose(value, ddp[key], atol=2e-4, rtol=1e-3), (
            f"{key}: max diff {(value - ddp[key]).abs().max()}"
        )
        moved += 1
    assert moved > 10
    # training moved the weights well beyond the tolerance above: "equal" is not two untouched copies
    assert len(trained) > 10
    for name, state in weights.items():
        changed = [k for k in trained if (state[k] - initial[k]).abs().max() > 10 * 2e-4]
        assert len(changed) >= 0.9 * len(trained), f"{name}: only {len(changed)} of {len(trained)} parameters changed"
