"""DARTS and DrNAS over nasbench_mb: alphas move, DrNAS samples the simplex, the derived member is valid and
proposed first, a SIGKILLed search resumes to the uninterrupted result, bad resume state is one line."""

from __future__ import annotations

import math

import pytest
import torch
from test_op_supernet import TASK, sigkill_during_training

from vision_backbones import create_model
from vision_backbones.search.darts import DifferentiableTrainer, best_members, skip_share
from vision_backbones.search.evaluate import ProxyTask
from vision_backbones.search.runner import SearchConfig, run_search
from vision_backbones.search.spaces import get_space
from vision_backbones.search.strategies import make_strategy

SPACE = get_space("nasbench_mb")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("method", ["darts", "drnas"])
def test_alphas_move_and_the_derived_member_is_valid(method: str) -> None:
    trainer = DifferentiableTrainer(SPACE, ProxyTask(**TASK), epochs=1, method=method, arch_lr=0.05)
    start = trainer.alpha.detach().clone()
    weights = {k: v.clone() for k, v in trainer.supernet.state_dict().items()}
    trainer.train_epoch()
    assert not torch.equal(trainer.alpha.detach(), start)  # the alpha steps moved them
    assert any(not torch.equal(weights[k], v) for k, v in trainer.supernet.state_dict().items())
    assert len(trainer.trajectory) == 2 and all(
        math.isclose(sum(row), 1, rel_tol=1e-5) for row in trainer.trajectory[1]
    )
    derived = trainer.derived()
    probabilities = trainer.probabilities()
    assert list(derived) == probabilities.argmax(-1).tolist()
    create_model("nasbench_mb", num_classes=10, in_channels=1, **SPACE.architecture(derived))
    assert 0 <= skip_share(SPACE, derived) <= 1 and skip_share(SPACE, (0, 0, 1, 2)) == 0.5


def test_drnas_samples_lie_on_the_simplex_and_the_kl_pulls_to_the_prior() -> None:
    trainer = DifferentiableTrainer(SPACE, ProxyTask(**TASK), epochs=1, method="drnas")
    with torch.no_grad():
        trainer.alpha.copy_(torch.randn(4, 5))
    samples = [trainer.mixture() for _ in range(3)]
    for sample in samples:
        assert sample.shape == (4, 5) and bool((sample >= 0).all())
        torch.testing.assert_close(sample.sum(-1), torch.ones(4))
    assert not torch.equal(samples[0], samples[1])  # stochastic: a Dirichlet sample, not a softmax
    assert bool((trainer.concentration() > 0).all())
    sample = trainer.mixture()
    sample[0, 0].backward()
    assert trainer.alpha.grad is not None and bool(trainer.alpha.grad.abs().sum() > 0)  # pathwise gradient
    assert float(trainer.regulariser().detach()) > 0
    with torch.no_grad():
        trainer.alpha.zero_()  # concentration 1 everywhere: the prior itself
    assert float(trainer.regulariser().detach()) == pytest.approx(0, abs=1e-6)


def test_members_in_decreasing_probability_start_with_the_argmax() -> None:
    log_probs = torch.log_softmax(torch.randn(4, 5, generator=torch.Generator().manual_seed(1)), -1)
    members = list(best_members(log_probs))
    assert len(members) == len(set(members)) == SPACE.size
    assert list(members[0]) == log_probs.argmax(-1).tolist()
    scores = [sum(float(log_probs[layer][k]) for layer, k in enumerate(m)) for m in members]
    assert all(a >= b - 1e-6 for a, b in zip(scores, scores[1:]))


def test_darts_proposes_the_derived_member_first_through_the_runner(tmp_path) -> None:
    config = SearchConfig(
        space="nasbench_mb", strategy="darts", trials=2, seed=3, task=TASK, strategy_options={"search_epochs": 1}
    )
    trials = run_search(config, tmp_path, progress=False)
    weights = torch.load(tmp_path / "supernet.pt", weights_only=True)
    assert trials[0]["indices"] == weights["alpha"].argmax(-1).tolist() and trials[0]["result"]["derived"]
    assert not trials[1]["result"]["derived"] and trials[1]["indices"] != trials[0]["indices"]
    assert trials[0]["result"]["probability"] >= trials[1]["result"]["probability"]
    assert len(weights["trajectory"]) == 2 and {"val_acc1", "skip_share"} <= set(trials[0]["result"])


def test_inconsistent_resume_state_is_one_line(tmp_path) -> None:
    options = {"search_epochs": 1}
    darts = SearchConfig(space="nasbench_mb", strategy="darts", trials=1, task=TASK, strategy_options=options)
    run_search(darts, tmp_path / "darts", progress=False)
    state = torch.load(tmp_path / "darts" / "supernet.pt", weights_only=True)
    trainer = DifferentiableTrainer(SPACE, ProxyTask(**TASK), epochs=1, method="drnas")
    alpha = trainer.alpha.detach().clone()
    cases = [
        (state, "method='darts'; this search has method='drnas'"),
        ({**state, "method": "drnas", "epochs": 7}, "epochs=7; this search has epochs=1"),
        ({**state, "method": "drnas", "space": {"name": "other"}}, "space='other'"),
        ({**state, "method": "drnas", "space": {**state["space"], "proxy": {}}}, "another definition of space"),
        ({**state, "method": "drnas", "alpha": torch.zeros(3, 5)}, "alpha has shape \\(3, 5\\)"),
        ([1, 2], "state is a list"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            trainer.load_state_dict(bad)  # type: ignore[arg-type]
        assert "\n" not in str(error.value)
        assert torch.equal(trainer.alpha.detach(), alpha) and trainer.epoch == 0  # nothing loaded
    with pytest.raises(RuntimeError, match="trained 0 of 2 epochs"):
        make_strategy("drnas", SPACE, task=ProxyTask(**TASK), search_epochs=2).propose()


def test_sigkill_during_drnas_resumes_to_the_uninterrupted_result(tmp_path) -> None:
    config = SearchConfig(
        space="nasbench_mb",
        strategy="drnas",
        trials=2,
        seed=4,
        task=TASK,
        strategy_options={"search_epochs": 5, "arch_lr": 0.01},
    )
    sigkill_during_training(tmp_path, config, units=5)
