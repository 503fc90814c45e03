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


# What each rank saw, written by the rank itself: world size, ranks, the step and a weight checksum at the
# start of fitting (after a checkpoint is restored) and the step at the end.
RANK_REPORT = """
import json
from pathlib import Path

import torch
from lightning.pytorch import Callback


class RankReport(Callback):
    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def _write(self, trainer, pl_module, when: str) -> None:
        weights = sum(p.detach().double().sum().item() for p in pl_module.parameters())
        record = {"world_size": trainer.world_size, "global_rank": trainer.global_rank, "node_rank": trainer.node_rank,
                  "global_step": trainer.global_step, "weights": weights}
        (self.out / f"{when}-rank{trainer.global_rank}.json").write_text(json.dumps(record))

    def on_train_start(self, trainer, pl_module) -> None:
        self._write(trainer, pl_module, "start")

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer, pl_module, "end")
"""


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_two_nodes(config: Path, reports: Path, *args: str) -> None:
    """One process per "node" (NODE_RANK 0 and 1, one CPU device each), as each machine of a cluster runs it."""
    reports.mkdir()
    port = _free_port()
    command = [sys.executable, "-m", "vision_backbones.cli.train", "fit", "--config", str(config)]
    command += ["--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.strategy", "ddp"]
    command += ["--trainer.callbacks+=rank_report.RankReport", "--trainer.callbacks.out", str(reports), *args]
    processes = []
    try:
        for node_rank in (0, 1):
            node = config.parent / f"node{node_rank}"  # each "machine" its own working folder
            node.mkdir(exist_ok=True)
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(config.parent), os.environ.get("PYTHONPATH", "")]),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "NODE_RANK": str(node_rank),
                "OMP_NUM_THREADS": "1",
                "PYTHONWARNINGS": "ignore",
            }
            env.pop("LOCAL_RANK", None)  # Lightning starts the node's processes itself (one here)
            log = (node / f"{reports.name}.log").open("w")
            processes.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=node), log))
        for process, _ in processes:
            process.wait(timeout=240)
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    for node_rank, (process, log) in enumerate(processes):
        assert process.returncode == 0, f"node {node_rank}:\n" + Path(log.name).read_text()[-4000:]


def _reports(folder: Path, when: str) -> list[dict]:
    import json

    return [json.loads((folder / f"{when}-rank{rank}.json").read_text()) for rank in (0, 1)]


def test_two_nodes_train_and_resume_from_the_checkpoint(tmp_path):
    """``num_nodes=2`` started by hand on each node (NODE_RANK, MASTER_ADDR, MASTER_PORT): 3 steps, then
    resumed from ``last.ckpt`` to step 6; both ranks see world size 2 and the resumed run starts at step 3."""
    root = tmp_path / "data"
    write_class_folders(root / "train", classes=3, per_class=12, size=(40, 40))
    write_class_folders(root / "val", classes=3, per_class=1, size=(40, 40))
    (tmp_path / "rank_report.py").write_text(RANK_REPORT)
    out = tmp_path / "run"  # one folder both nodes see: the shared file system a cluster's checkpoints live on
    config = tmp_path / "nodes.yaml"
    config.write_text(CONFIG.format(root=root, out=out).replace("max_epochs: 1", "max_epochs: 10"))
    common = ["--data.batch_size", "4"]
    _run_two_nodes(config, tmp_path / "first", *common, "--trainer.max_steps", "3")
    saved = torch.load(out / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 3
    _run_two_nodes(
        config, tmp_path / "resumed", *common, "--trainer.max_steps", "6", "--ckpt_path", str(out / "last.ckpt")
    )
    resumed = torch.load(out / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 6
    for phase in ("first", "resumed"):
        for when in ("start", "end"):
            seen = _reports(tmp_path / phase, when)
            assert [(r["world_size"], r["global_rank"], r["node_rank"]) for r in seen] == [(2, 0, 0), (2, 1, 1)], seen
    first_start, first_end = _reports(tmp_path / "first", "start"), _reports(tmp_path / "first", "end")
    start, end = _reports(tmp_path / "resumed", "start"), _reports(tmp_path / "resumed", "end")
    assert [r["global_step"] for r in first_start + first_end] == [0, 0, 3, 3]
    # the resumed run starts where the first ended, on both ranks: the step and the weights of the checkpoint
    assert [r["global_step"] for r in start + end] == [3, 3, 6, 6]
    for report in start:
        assert report["weights"] == pytest.approx(first_end[0]["weights"], rel=1e-9, abs=1e-9)
        assert report["weights"] != pytest.approx(first_start[0]["weights"], rel=1e-6)  # not a fresh start
    assert end[0]["weights"] == pytest.approx(end[1]["weights"], rel=1e-9)  # DDP kept the ranks in step
    assert end[0]["weights"] != pytest.approx(start[0]["weights"], rel=1e-6)  # and the 3 more steps trained
    moved = [
        k
        for k, v in resumed["state_dict"].items()
        if v.is_floating_point() and not torch.equal(v, saved["state_dict"][k])
    ]
    assert len(moved) > 10
