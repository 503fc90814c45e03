"""The op supernet covers nasbench_mb exactly; SPOS / FairNAS / few-shot train as published, resume after SIGKILL."""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from conftest import randomize_norm_stats
from torch import nn

from vision_backbones import create_model
from vision_backbones.search.evaluate import ProxyTask, accuracy, task_splits
from vision_backbones.search.op_supernet import OpSupernet, check_coverage
from vision_backbones.search.op_supernet_training import (
    OpSupernetTrainer,
    fair_paths,
    path_score,
    ranking_figures,
    score_members,
)
from vision_backbones.search.path_weights import WEIGHTS_FILE, load_path_weights
from vision_backbones.search.runner import SearchConfig, load_trials, run_search
from vision_backbones.search.search_weights import export_search_weights
from vision_backbones.search.spaces import OpSpace, get_space, load_architecture
from vision_backbones.search.strategies import make_strategy

SPACE = get_space("nasbench_mb")
# scikit-learn's digits at the space's 16 px: no download, a few steps per epoch
TASK = {
    "data": "digits",
    "image_size": 16,
    "epochs": 1,
    "train_images": 64,
    "val_images": 64,
    "batch_size": 32,
    "bn_batches": 1,
    "channels_last": False,
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Small convs on a shared 2-core machine: a second intra-op thread made this file 30x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_path_is_the_network_create_model_builds() -> None:
    torch.manual_seed(3)
    supernet = randomize_norm_stats(OpSupernet(SPACE)).eval()  # every batch norm with its own random statistics
    x = torch.randn(3, 1, 16, 16)
    rng = random.Random(0)
    members = {SPACE.random_indices(rng) for _ in range(100)}
    while len(members) < 100:
        members.add(SPACE.random_indices(rng))
    for indices in sorted(members):
        arch = json.loads(json.dumps(SPACE.architecture(indices)))  # as the JSON result holds it
        model = create_model("nasbench_mb", num_classes=10, in_channels=1, **arch)
        model.load_state_dict(supernet.extract(indices), strict=True)
        torch.testing.assert_close(model.eval()(x), supernet(x, indices=indices))
        torch.testing.assert_close(supernet.path_network(indices)(x), supernet(x, indices=indices))
    one_hot = torch.nn.functional.one_hot(torch.tensor(indices), 5).float()
    torch.testing.assert_close(supernet(x, weights=one_hot), supernet(x, indices=indices))  # the mixture's corner


def _count_op_calls(supernet: OpSupernet) -> dict[tuple[int, int], int]:
    calls: dict[tuple[int, int], int] = {}
    for layer, mixed in enumerate(supernet.layers):
        for k, op in enumerate(mixed.ops):
            calls[(layer, k)] = 0

            def hook(module: nn.Module, args: Any, out: Any, key: tuple[int, int] = (layer, k)) -> None:
                if module.training:  # scoring runs the ops in eval mode: only training counts
                    calls[key] += 1

            op.register_forward_hook(hook)
    return calls


@pytest.mark.parametrize(("variant", "per_step"), [("fairnas", 1), ("spos", None)])
def test_fairnas_runs_every_op_of_every_layer_once_per_step(variant: str, per_step: int | None) -> None:
    trainer = OpSupernetTrainer(SPACE, ProxyTask(**TASK), epochs=1, variant=variant)
    calls = _count_op_calls(trainer.supernets[0])
    steps = []
    trainer.optimizers[0].register_step_post_hook(lambda *_: steps.append(1))
    trainer.train_epoch()
    assert len(steps) == 2  # 64 images in batches of 32: two optimizer updates, one per step
    if per_step is not None:  # strict fairness: each op of each layer exactly once per step
        assert set(calls.values()) == {per_step * len(steps)}
    else:  # SPOS: one op per layer per step
        assert all(sum(calls[(layer, k)] for k in range(5)) == len(steps) for layer in range(4))
    paths = fair_paths(SPACE, random.Random(1))
    assert all(sorted(path[layer] for path in paths) == list(range(5)) for layer in range(4))


def test_fewshot_sub_supernets_own_their_choice() -> None:
    trainer = OpSupernetTrainer(SPACE, ProxyTask(**TASK), epochs=2, variant="fewshot", seed=1)
    assert (trainer.warmup_epochs, trainer.units) == (1, 6)  # one warm-up epoch, then 5 sub-supernets x 1
    trainer.train_epoch()
    warmed = {k: v.clone() for k, v in trainer.supernets[0].state_dict().items()}
    trainer.train_epoch()  # splits, then trains sub-supernet 0
    assert len(trainer.supernets) == 5
    for sub in trainer.supernets[1:]:  # initialised from the warmed-up supernet, not trained yet
        assert all(torch.equal(warmed[k], v) for k, v in sub.state_dict().items())
    calls = [_count_op_calls(sub) for sub in trainer.supernets]
    while not trainer.done:
        trainer.train_epoch()
    for k in range(1, 5):  # sub-supernet k trained layer 0's op k only
        assert [calls[k][(0, j)] > 0 for j in range(5)] == [j == k for j in range(5)]
    member = (3, 1, 2, 0)
    assert trainer.supernet_for(member) is trainer.supernets[3]
    others = [(k, 1, 2, 0) for k in range(5) if k != 3]
    before = score_members(trainer, [member, *others])
    with torch.no_grad():
        for parameter in trainer.supernets[3].parameters():
            parameter.mul_(0.0)
    after = score_members(trainer, [member, *others])
    assert after[0] != before[0] and after[1:] == before[1:]  # a path is scored by its owner only


def test_scores_recompute_batch_norm_per_path_and_ranking_figures() -> None:
    task = ProxyTask(**TASK)
    trainer = OpSupernetTrainer(SPACE, task, epochs=1)
    trainer.train_epoch()
    supernet = trainer.supernets[0]
    first, second = (1, 2, 3, 4), (4, 3, 2, 1)
    before = path_score(supernet, first, task)
    path_score(supernet, second, task)
    assert path_score(supernet, first, task) == before  # another path's statistics in between change nothing
    rows = [{"test_acc1": float(v)} for v in range(10)]
    assert ranking_figures([float(v) for v in range(10)], rows) == pytest.approx(
        {"kendall_tau": 1.0, "spearman": 1.0, "top10_precision": 1.0, "members": 10.0}
    )
    reversed_figures = ranking_figures([float(-v) for v in range(10)], rows)
    assert reversed_figures["kendall_tau"] == pytest.approx(-1) and reversed_figures["top10_precision"] == 0.0


def test_saved_path_weights_reload_with_their_batch_norm_state(tmp_path) -> None:
    config = SearchConfig(
        space="nasbench_mb",
        strategy="spos",
        trials=3,
        seed=1,
        task=TASK,
        strategy_options={"supernet_epochs": 1, "population_size": 2, "sample_size": 1},
    )
    trials = run_search(config, tmp_path, progress=False)
    from vision_backbones.search.result import best_trial, export_best

    export_best(SPACE, trials, tmp_path)
    written = export_search_weights(tmp_path)
    assert written == tmp_path / WEIGHTS_FILE
    base, overrides = load_architecture(tmp_path / "best_architecture.json")
    model = load_path_weights(written, base, overrides)  # strict: every parameter and buffer of the member
    task = ProxyTask(**TASK)
    assert accuracy(model, task_splits(task).val) == best_trial(trials)["result"]["val_acc1"]
    fresh = create_model(base, num_classes=10, in_channels=1, **overrides)
    norms = [(m, f) for m, f in zip(model.modules(), fresh.modules()) if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(not torch.equal(m.running_var, f.running_var) for m, f in norms)  # the recomputed state
    with pytest.raises(ValueError, match="does not fit nasbench_mb"):
        load_path_weights(written, base, {**overrides, "head_channels": 16})


@dataclass(frozen=True)
class VaryingSpace(OpSpace):
    """An op space whose last decision also changes the head width: no single supernet holds it."""

    def _overrides(self, values: Any) -> dict[str, Any]:
        overrides = super()._overrides(values)
        return {**overrides, "head_channels": 32 if values["ops[3]"] == "skip" else 64}


def test_bad_input_is_one_line(tmp_path) -> None:
    proxy = {"stem_channels": 8, "widths": (8, 16, 32), "head_channels": 32}
    varying = VaryingSpace(
        "varying", "nasbench_mb", proxy=proxy, image_size=16, layers=4, ops=SPACE.decisions[0].choices
    )
    cases = [
        (lambda: check_coverage(get_space("nasbench_resnet")), "decision depths\\[0\\] is not an op"),
        (lambda: check_coverage(varying), "decision ops\\[3\\] changes head_channels"),
        (lambda: OpSupernet(SPACE).extract([0, 1]), "takes 4 choices, got 2"),
        (lambda: OpSupernet(SPACE).extract([0, 1, 2, 7]), "ops\\[3\\]: choice 7 out of range"),
        (lambda: make_strategy("spos", SPACE, split_decision=1), "unexpected keyword argument 'split_decision'"),
        (lambda: make_strategy("fewshot", SPACE, supernet_epochs=1), "expected epochs >= 2"),
    ]
    for build, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            build()
        assert "\n" not in str(error.value)
    strategy = make_strategy("spos", SPACE, task=ProxyTask(**TASK), supernet_epochs=1)
    with pytest.raises(ValueError, match="out of range"):
        strategy.evaluator()({"indices": [5, 0, 0, 0]})
    with pytest.raises(RuntimeError, match="trained 0 of 1 epochs"):
        strategy.propose()
    # a supernet.pt of another variant: refused in one line, nothing loaded or rewritten
    options = {"supernet_epochs": 1, "population_size": 2, "sample_size": 1}
    fair = SearchConfig(space="nasbench_mb", strategy="fairnas", trials=1, task=TASK, strategy_options=options)
    run_search(fair, tmp_path / "fair", progress=False)
    spos = SearchConfig(space="nasbench_mb", strategy="spos", trials=1, task=TASK, strategy_options=options)
    (tmp_path / "spos").mkdir()
    _copy_config(tmp_path / "spos", spos)
    saved = (tmp_path / "fair" / "supernet.pt").read_bytes()
    (tmp_path / "spos" / "supernet.pt").write_bytes(saved)
    with pytest.raises(ValueError, match="variant='fairnas'; this search has variant='spos'") as error:
        run_search(spos, tmp_path / "spos", progress=False)
    assert "\n" not in str(error.value)
    assert (tmp_path / "spos" / "supernet.pt").read_bytes() == saved
    assert sorted(p.name for p in (tmp_path / "spos").iterdir()) == ["search.json", "supernet.pt"]


def _copy_config(folder, config: SearchConfig) -> None:
    from vision_backbones.io import write_json

    write_json(folder / "search.json", {**config.identity(), "trials": config.trials})


KILLED_SEARCH = """
import sys
from vision_backbones.search.runner import SearchConfig, run_search
config = SearchConfig(**{config!r})
run_search(config, sys.argv[1], progress=False)
"""


def same(a: Any, b: Any) -> bool:
    """Equal nested states (tensors compared exactly)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def sigkill_during_training(tmp_path, config: SearchConfig, units: int) -> None:
    """Run ``config`` in a subprocess, SIGKILL it at a seeded random moment of its training, resume, compare."""
    import dataclasses
    import os
    import subprocess
    import time

    script = tmp_path / "search.py"
    script.write_text(KILLED_SEARCH.format(config=dataclasses.asdict(config)))
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    expected = run_search(config, reference, progress=False)
    process = subprocess.Popen([sys.executable, str(script), str(resumed)])
    deadline = time.time() + 60
    while not (resumed / "search.json").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.005)
    weights = resumed / "supernet.pt"
    while not weights.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.002)
    kill_seed = int(os.environ.get("KILL_SEED", time.time()))  # KILL_SEED=<printed seed> replays a failure
    rng = random.Random(kill_seed)
    # wait for a seeded number of saved units (the first, with the data loading, excluded), then kill within one
    # more unit's time, measured just before: the kill lands in the next unit or, if that one ran faster, the one
    # after, so at least one unit is always left to resume (a fixed two-unit window once overran a short run)
    saves, last = 1, (weights.stat().st_mtime_ns, time.time())
    target = rng.randint(2, units - 2)
    unit = 0.0
    while saves < target and time.time() < deadline and process.poll() is None:
        if weights.exists() and weights.stat().st_mtime_ns != last[0]:
            saves, unit, last = saves + 1, time.time() - last[1], (weights.stat().st_mtime_ns, time.time())
        time.sleep(0.002)
    time.sleep(rng.uniform(0.0, unit))
    process.kill()
    assert process.wait() == -9, f"the search ended before the kill (KILL_SEED={kill_seed}): nothing was tested"
    done = torch.load(resumed / "supernet.pt", weights_only=True)["epoch"]
    assert done < units, f"killed after the training (KILL_SEED={kill_seed})"
    subprocess.run([sys.executable, str(script), str(resumed)], check=True)
    summary = [(r["number"], r["indices"], r["result"]) for r in load_trials(resumed)]
    assert summary == [(r["number"], r["indices"], r["result"]) for r in expected], f"KILL_SEED={kill_seed}"
    saved = [torch.load(folder / "supernet.pt", weights_only=True) for folder in (reference, resumed)]
    assert same(saved[0], saved[1]), f"the resumed weights differ (KILL_SEED={kill_seed})"
    assert sorted(p.name for p in resumed.iterdir()) == ["search.json", "state.pt", "supernet.pt", "trials.jsonl"]


def test_sigkill_during_fewshot_training_resumes_to_the_uninterrupted_result(tmp_path) -> None:
    config = SearchConfig(
        space="nasbench_mb",
        strategy="fewshot",
        trials=4,
        seed=2,
        task={**TASK, "train_images": 128},
        strategy_options={"supernet_epochs": 2, "population_size": 2, "sample_size": 1},
    )
    sigkill_during_training(tmp_path, config, units=1 + 5 * 1)  # a warm-up epoch, then 5 sub-supernets
