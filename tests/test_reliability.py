"""Nothing lost, nothing silent: kills, signals, a full disk, resumes (issue 9, classes 1, 2, 5, 7, 10)."""

from __future__ import annotations

import csv
import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import leftover_temp_files

from vision_backbones import create_model
from vision_backbones.io import TEMP_MARK, DiskFullError, atomic_write, atomic_write_bytes, sweep_stale_temp_files
from vision_backbones.weights import read_checkpoint, save_weights

PYTHON = sys.executable
TINY = {"depths": (1, 1, 1, 1), "widths": (4, 8, 8, 8), "stem_channels": 4}


def _our_temp_files(folder: Path) -> list[Path]:
    return [
        p for p in folder.rglob(".*") if ".vbtmp-" in p.name or p.name.endswith(".tmp") or p.name.startswith(".tmp")
    ]


# ---- atomic writes: exceptions, signals, stale files, a full disk (class 5), modes and bytes (class 10)


def test_exception_while_writing_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def fail(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old" and _our_temp_files(tmp_path) == []


def test_full_disk_is_named_and_destination_untouched(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "w.safetensors"
    target.write_bytes(b"old")

    def enospc(tmp: str) -> None:
        Path(tmp).write_bytes(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match=f"no space left on device while writing {target}"):
        atomic_write(target, enospc)
    assert target.read_bytes() == b"old" and _our_temp_files(tmp_path) == []

    # torch.save says "unexpected pos" on a full disk: recognised from the free space
    class Full:
        f_bavail, f_frsize = 0, 4096

    monkeypatch.setattr(os, "statvfs", lambda _: Full())

    def torch_style(tmp: str) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 64 vs 0")

    with pytest.raises(DiskFullError, match="no space left on device while writing"):
        atomic_write(target, torch_style)
    assert target.read_bytes() == b"old" and _our_temp_files(tmp_path) == []


def test_real_full_disk_on_a_small_tmpfs(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here")
    try:
        (mount / "model.safetensors").write_bytes(b"old")
        model = create_model("resnet18", **TINY)
        big = {f"w{i}": torch.zeros(64, 1024) for i in range(8)}  # 2 MB > 1 MB
        with pytest.raises(DiskFullError, match="no space left on device while writing"):
            save_weights({**model.state_dict(), **big}, mount / "model.safetensors")
        assert (mount / "model.safetensors").read_bytes() == b"old"
        assert _our_temp_files(mount) == []
        from vision_backbones.deploy.formats import export_model

        with pytest.raises(DiskFullError):
            export_model(create_model("resnet50").eval(), mount / "m.pt", fmt="torchscript", image_size=64)
        assert not (mount / "m.pt").exists() and _our_temp_files(mount) == []
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_unwritable_folder_names_the_output(tmp_path: Path, monkeypatch) -> None:
    real_open = os.open

    def deny(path, *args, **kwargs):
        if ".vbtmp-" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(PermissionError, match=f"permission denied: cannot write {tmp_path / 'o.bin'}$"):
        atomic_write_bytes(tmp_path / "o.bin", b"x")


def test_stale_temp_files_of_dead_processes_are_swept(tmp_path: Path) -> None:
    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".w.safetensors.vbtmp-{dead.pid}"
    alive = tmp_path / f".x.safetensors.vbtmp-{os.getppid()}"
    other = tmp_path / ".unrelated.tmp"
    for path in (stale, alive, other):
        path.write_bytes(b"x")
    save_weights({"a": torch.zeros(2)}, tmp_path / "w.safetensors")
    assert not stale.exists() and alive.exists() and other.exists()
    assert sweep_stale_temp_files(tmp_path) == []


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from vision_backbones.io import atomic_write
    def slow(tmp):
        with open(tmp, "wb") as f:
            f.write(b"x" * 1000); f.flush()
            print("writing", flush=True)
            time.sleep(30)
    atomic_write(sys.argv[1], slow)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_writing_removes_the_temp_file(tmp_path: Path, signum: int) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    # SIGINT back to its default in the child: a shell that starts this suite in the background ignores
    # SIGINT, the child inherits that, and Python then never raises KeyboardInterrupt
    process = subprocess.Popen(
        [PYTHON, "-c", WRITER, str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout.readline().strip() == b"writing"
    process.send_signal(signum)
    assert process.wait(timeout=30) != 0
    assert target.read_bytes() == b"old" and _our_temp_files(tmp_path) == []


def test_files_are_byte_reproducible_with_open_modes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = create_model("resnet18", **TINY).state_dict()
    a = save_weights(state, tmp_path / "a.safetensors", model_name="resnet18", overrides={"z": 1, "a": (1, 2), **TINY})
    b = save_weights(
        dict(reversed(list(state.items()))),
        tmp_path / "b.safetensors",
        model_name="resnet18",
        overrides={**TINY, "a": (1, 2), "z": 1},
    )
    assert a.read_bytes() == b.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    pytest.importorskip("lightning")
    from vision_backbones.train.callbacks import AtomicCheckpointIO

    AtomicCheckpointIO().save_checkpoint({"x": torch.zeros(1)}, tmp_path / "c.ckpt")
    for path in (a, tmp_path / "c.ckpt"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # checkpoints were 0600


# ---- kill tests


# The command under a kill test, slowed where it matters so that the kill always lands while it
# runs: a write's data reaches the disk 1.5 s before the rename, and the process lives 1 s past
# the rename. A seeded kill between 0 and 2 s after the temporary file appears then hits the write
# (before the rename) or the written file (after it), never a process that has already ended.
SLOWED_CLI = textwrap.dedent(
    """
    import os, sys, time
    fsync, replace = os.fsync, os.replace

    def slow_fsync(fd):
        time.sleep(1.5)
        fsync(fd)

    def slow_replace(source, target):
        replace(source, target)
        time.sleep(1.0)

    os.fsync, os.replace = slow_fsync, slow_replace
    from vision_backbones.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_convert_survives_sigkill_at_a_random_moment(tmp_path: Path) -> None:
    import torchvision

    source = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), source)
    out = tmp_path / "dest" / "resnet18.safetensors"
    argv = ["convert", "--source", "torchvision", "resnet18", str(source), str(out), "--force"]
    kill_seed = int(os.environ.get("KILL_SEED", time.time()))  # KILL_SEED=<printed seed> replays a failure
    rng = random.Random(kill_seed)
    for attempt in range(2):
        process = subprocess.Popen(
            [PYTHON, "-c", SLOWED_CLI, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 120
        mine = f"{TEMP_MARK}{process.pid}"  # not the one a killed attempt left (the next write sweeps it)
        while process.poll() is None and time.time() < deadline:
            if any(path.name.endswith(mine) for path in leftover_temp_files(out.parent)):
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 2.0))
        process.kill()
        assert process.wait() == -signal.SIGKILL, (
            f"KILL_SEED={kill_seed}, kill {attempt}: convert ended before the kill, nothing was tested"
        )
        assert not out.exists() or read_checkpoint(out), f"KILL_SEED={kill_seed}"  # never half-written
    from vision_backbones.cli import main as cli_main

    assert cli_main(argv) == 0  # in this process: the same command, uninterrupted, over what the kills left
    assert _our_temp_files(tmp_path / "dest") == [], f"KILL_SEED={kill_seed}"
    create_model("resnet18", pretrained=out)


# ---- training (classes 1, 2, 7)

# lightning is imported by the tests that train (a module-level importorskip would skip every test above)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    """The images of ``test_train_cli``'s fixture: 3 classes, 6 training and 2 validation images each."""
    pytest.importorskip("lightning")
    from vision_backbones.train.samples import write_class_folders

    root = tmp_path_factory.mktemp("images")
    write_class_folders(root / "train", classes=3, per_class=6, size=(48, 40))
    write_class_folders(root / "val", classes=3, per_class=2, size=(48, 40), seed=1)
    return root


def main(argv: list[str]) -> int:
    """``backbones train``, imported when a test trains."""
    pytest.importorskip("lightning")
    from vision_backbones.cli.train import main as train_main

    return train_main(argv)


def build_cli(argv: list[str], *, run: bool) -> Any:
    pytest.importorskip("lightning")
    from vision_backbones.train.lightning_cli import build_cli as build

    return build(argv, run=run)


def _config(folder: Path, root: Path, *, epochs: int = 2, every: int = 1) -> Path:
    pytest.importorskip("lightning")
    from test_train_cli import TINY_CONFIG

    config = folder / "tiny.yaml"
    text = TINY_CONFIG.format(root=root, out=folder / "run", epochs=epochs).replace(
        "every_n_train_steps: 1,", f"every_n_train_steps: {every},"
    )
    config.write_text(text)
    return config


def _metric_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def _history(rows: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    train = [int(r["step"]) for r in rows if r.get("train/loss")]
    val = [int(r["step"]) for r in rows if r.get("val/acc1")]
    return train, val


def test_batch_of_unreadable_images_is_skipped(tmp_path: Path, image_root: Path) -> None:
    from vision_backbones.train.module import ImageClassifier

    module = ImageClassifier("resnet18", 3, model_overrides=dict(TINY))
    empty = (torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long), torch.tensor(4))
    assert module.training_step(empty, 0) is None and module.skipped_images == 4
    # end to end: a training set whose images are all unreadable trains no step and exits 0
    root = tmp_path / "broken"
    for split, source in (("train", None), ("val", image_root / "val")):
        for klass in sorted(p.name for p in (image_root / "val").iterdir()):
            (root / split / klass).mkdir(parents=True)
            if source is None:
                for i in range(2):
                    (root / split / klass / f"{i}.jpg").write_bytes(b"not a jpeg")
            else:
                for image in (source / klass).iterdir():
                    (root / split / klass / image.name).write_bytes(image.read_bytes())
    assert main(["fit", "--config", str(_config(tmp_path, root, epochs=1))]) == 0


class Crash(Exception):
    pass


def crash_at(step: int) -> Any:
    """A callback that raises after training step ``step``, when validation of epoch ``-step - 1`` starts,
    or after that of epoch ``-step - 11``."""
    lightning = pytest.importorskip("lightning")

    class CrashAt(lightning.pytorch.Callback):
        def __init__(self, step: int) -> None:
            self.step = step

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == self.step:
                raise Crash(f"crash at step {self.step}")

        def on_validation_start(self, trainer, pl_module):
            if not trainer.sanity_checking and trainer.current_epoch == -self.step - 1:
                raise Crash(f"crash in the validation of epoch {trainer.current_epoch}")

        def on_validation_end(self, trainer, pl_module):  # its metrics are logged, its checkpoint not yet written
            if not trainer.sanity_checking and trainer.current_epoch == -self.step - 11:
                raise Crash(f"crash after the validation of epoch {trainer.current_epoch}")

    return CrashAt(step)


SHORT = ["--trainer.limit_train_batches", "3"]


@pytest.mark.parametrize(
    "crash_step",
    [3, 5, -1, -2, -11, -12],
    ids=["step3", "step5", "val-epoch0", "val-epoch1", "after-val-epoch0", "after-val-epoch1"],
)
def test_resume_keeps_every_logged_step_once_and_removes_stale_temp_files(
    tmp_path: Path, image_root: Path, crash_step: int
) -> None:
    (tmp_path / "straight").mkdir()
    straight = build_cli(["--config", str(_config(tmp_path / "straight", image_root)), *SHORT], run=False)
    straight.trainer.fit(straight.model, straight.datamodule)
    want = _history(_metric_rows(tmp_path / "straight" / "run"))
    assert want[0] and want[1]

    config = _config(tmp_path, image_root)
    crashed = build_cli(["--config", str(config), *SHORT], run=False)
    crashed.trainer.callbacks.insert(0, crash_at(crash_step))
    with pytest.raises(Crash):
        crashed.trainer.fit(crashed.model, crashed.datamodule)
    checkpoints = tmp_path / "run" / "checkpoints"
    legacy, ours = checkpoints / ".last.ckpt.k3j_x9a1.tmp", checkpoints / ".last.ckpt.vbtmp-999999999"
    legacy.write_bytes(b"x" * 1000)
    ours.write_bytes(b"x" * 1000)
    assert main(["fit", "--config", str(config), *SHORT, "--ckpt_path", "last"]) == 0
    got = _history(_metric_rows(tmp_path / "run"))
    assert got == want  # every step once, epoch 0's validation kept
    assert not legacy.exists() and not ours.exists()


def test_last_checkpoint_holds_the_final_step(tmp_path: Path, image_root: Path) -> None:
    # 18 images / batch 4 = 5 steps; checkpoints every 2 steps: Lightning left last.ckpt at step 4
    assert main(["fit", "--config", str(_config(tmp_path, image_root, epochs=1, every=2))]) == 0
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 5


# Training under a kill test: every optimizer step takes 0.3 s longer, so the 8 steps after the first
# checkpoint outlast the kill's window (up to 1.5 s after that checkpoint appears).
SLOWED_TRAINING = textwrap.dedent(
    """
    import sys, time
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: time.sleep(0.3))
    from vision_backbones.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_training_survives_sigkill_and_resumes(tmp_path: Path, image_root: Path) -> None:
    config = _config(tmp_path, image_root, epochs=3)
    argv = ["train", "fit", "--config", str(config), *SHORT]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(
        [PYTHON, "-c", SLOWED_TRAINING, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    kill_seed = int(os.environ.get("KILL_SEED", time.time()))  # KILL_SEED=<printed seed> replays a failure
    time.sleep(random.Random(kill_seed).uniform(0.0, 1.5))
    process.kill()
    assert process.wait() == -signal.SIGKILL, f"KILL_SEED={kill_seed}: training ended before the kill"
    done = subprocess.run(
        [PYTHON, "-m", "vision_backbones.cli", *argv, "--ckpt_path", "last"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    train, val = _history(_metric_rows(tmp_path / "run"))
    assert len(train) == len(set(train)) == 9, f"KILL_SEED={kill_seed}: {train}"  # 3 epochs x 3 steps, once each
    assert len(val) == 3, f"KILL_SEED={kill_seed}: {val}"
    assert list(_our_temp_files(tmp_path / "run")) == []
