"""SIGKILL at a random moment, then the same command again: the benchmark-table builder and the
alpha/beta/gamma grid end exactly where an uninterrupted run ends, nothing lost, repeated or left behind.

Training is replaced by a deterministic stand-in that takes a little time (the kill must land while
the command runs), in a child process: what is tested is the resume logic around it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

FAKE = """
import os, sys, time, zlib

def fake_result(key, seed):
    h = zlib.crc32(f"{key}:{seed}".encode())
    with open(os.environ["CALLS_FILE"], "a") as calls:  # every evaluation, to count repeats
        calls.write(f"{key}:{seed}\\n")
    time.sleep(0.04)
    return {"val_acc1": 80 + h % 1000 / 100, "test_acc1": 80 + h % 997 / 100, "train_seconds": 0.04,
            "params": h % 5000, "flops": h % 7000, "deploy_params": 1, "deploy_flops": 1, "seconds": 0.04}
"""

TABLE = (
    FAKE
    + """
import vision_backbones.search.table as table
from vision_backbones.search.spaces import get_space
table._evaluate = lambda trial: fake_result(trial["key"], trial["seed"])
space = get_space("nasbench_resnet")
table.build_table(space, sys.argv[1], seeds=(0, 1), members=space.all_indices()[:24], workers=1)
"""
)

GRID = (
    FAKE
    + """
import vision_backbones.search.evaluate as evaluate
from vision_backbones.budget.grid import run_grid
evaluate.evaluate_architecture = lambda base, arch, task, seed, latency: fake_result(repr(sorted(arch.items())) + str(task.image_size), seed)
run_grid("resnet18", sys.argv[1], seeds=(0, 1), epochs=1)
"""
)


def _env(calls: Path) -> dict[str, str]:
    return {**os.environ, "CALLS_FILE": str(calls)}


def _run(script: Path, target: Path, calls: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), str(target)], capture_output=True, text=True, check=True, env=_env(calls)
    )


def _wait_for(path: Path, process: subprocess.Popen) -> float:
    """Wait until ``process`` has saved ``path`` (60 s at most); the moment it appeared."""
    deadline = time.time() + 60
    while not path.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.005)
    return time.perf_counter()


def _calls(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize(("kind", "source", "result"), [("table", TABLE, "table.jsonl"), ("grid", GRID, "grid.json")])
def test_killed_long_command_resumes_to_the_uninterrupted_result(tmp_path: Path, kind: str, source: str, result: str):
    script = tmp_path / "command.py"
    script.write_text(source)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    reference.mkdir()
    resumed.mkdir()
    target = (lambda folder: folder / "table.jsonl") if kind == "table" else (lambda folder: folder)
    # the reference run, timed from its first saved result to its end: the span a kill must land in
    # (the interpreter's start-up before it, which varies with the machine's load, does not count)
    reference_run = subprocess.Popen(
        [sys.executable, str(script), str(target(reference))], env=_env(tmp_path / "reference.calls")
    )
    first_saved = _wait_for(reference / result, reference_run)
    assert reference_run.wait() == 0
    span = time.perf_counter() - first_saved
    kill_seed = int(os.environ.get("KILL_SEED", time.time()))  # KILL_SEED=<printed seed> replays a failure
    calls = tmp_path / "resumed.calls"
    process = subprocess.Popen([sys.executable, str(script), str(target(resumed))], env=_env(calls))
    _wait_for(resumed / result, process)
    # somewhere in the first half of what is left of the run, so the kill lands before it ends
    time.sleep(random.Random(kill_seed).uniform(0.0, span / 2))
    process.kill()
    assert process.wait() == -9, f"the {kind} command ended before the kill (KILL_SEED={kill_seed}): nothing was tested"
    partial = (resumed / result).read_text()
    _run(script, target(resumed), calls)
    expected, got = (reference / result).read_text(), (resumed / result).read_text()
    if kind == "table":
        expected = [json.loads(line) for line in expected.splitlines()]
        got = [json.loads(line) for line in got.splitlines()]
        for row in expected + got:
            row.pop("train_seconds_seeds", None)
    assert got == expected, f"KILL_SEED={kill_seed}"
    assert partial != (resumed / result).read_text(), f"the kill left a finished run (KILL_SEED={kill_seed})"
    assert sorted(p.name for p in resumed.iterdir()) == [result], "a temp file was left behind"
    # every run evaluated once; at most the unit in flight at the kill is evaluated again: one training
    # run for the table (saved per run), one candidate's two seeds for the grid (saved per candidate)
    reference_calls, resumed_calls = _calls(tmp_path / "reference.calls"), _calls(calls)
    in_flight = 1 if kind == "table" else 2
    assert set(resumed_calls) == set(reference_calls)
    assert len(reference_calls) <= len(resumed_calls) <= len(reference_calls) + in_flight, f"KILL_SEED={kill_seed}"
