"""Strategies: one interface, resumable state, REINFORCE's recurrent controller, aging evolution."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from vision_backbones.search.controller import ReinforceSearch
from vision_backbones.search.evolution import RegularizedEvolution
from vision_backbones.search.spaces import get_space
from vision_backbones.search.strategies import MULTI_OBJECTIVE, STRATEGIES, WEIGHT_SHARING, make_strategy


def _zeros_reward(indices) -> float:
    """A toy reward: the share of decisions that chose their first option (the optimum is all zeros)."""
    return sum(1 for i in indices if i == 0) / len(indices)


@pytest.fixture(scope="module")
def space():
    return get_space("nasbench_resnet")


# oneshot: test_search_oneshot; nsga2 (two objectives): test_search_strategies_more
@pytest.mark.parametrize("name", [n for n in STRATEGIES if n not in (*WEIGHT_SHARING, *MULTI_OBJECTIVE)])
def test_state_dict_resumes_the_same_proposals(space, name: str) -> None:
    strategy = make_strategy(name, space, seed=3)
    for _ in range(14):
        indices = strategy.propose()
        strategy.observe(indices, _zeros_reward(indices))
    buffer = io.BytesIO()
    torch.save(strategy.state_dict(), buffer)  # what the runner writes
    buffer.seek(0)
    resumed = make_strategy(name, space, seed=99)  # another seed: the state must override it
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for _ in range(6):
        a, b = strategy.propose(), resumed.propose()
        assert a == b
        strategy.observe(a, _zeros_reward(a))
        resumed.observe(b, _zeros_reward(b))


def test_seeds_decide_the_proposals(space) -> None:
    draws = [[make_strategy("random", space, seed=s).propose() for _ in range(1)] for s in (0, 0, 1)]
    assert draws[0] == draws[1] != draws[2]
    with pytest.raises(ValueError, match="unknown strategy 'bayes'"):
        make_strategy("bayes", space)
    with pytest.raises(ValueError, match="unexpected keyword argument 'population'"):
        make_strategy("evolution", space, population=3)


@pytest.mark.parametrize(("cell", "cell_type"), [("lstm", nn.LSTMCell), ("rnn", nn.RNNCell)])
def test_reinforce_learns_a_toy_reward(space, cell: str, cell_type: type) -> None:
    strategy = ReinforceSearch(space, seed=0, cell=cell, lr=0.01, baseline_decay=0.8)
    assert all(isinstance(c, cell_type) for c in strategy.controller.cells)
    rewards = []
    for _ in range(80):
        indices = strategy.propose()
        rewards.append(_zeros_reward(indices))
        strategy.observe(indices, rewards[-1])
    assert sum(rewards[-15:]) / 15 > sum(rewards[:15]) / 15 + 0.15, rewards


def test_controller_is_autoregressive_and_clipped(space) -> None:
    strategy = ReinforceSearch(space, seed=0, tanh_constant=1.5, temperature=0.5)
    controller, decisions = strategy.controller, space.decisions
    with torch.no_grad():
        for parameter in controller.parameters():
            parameter.mul_(200)  # huge logits: tanh clipping must still bound them
        hidden, _ = controller._step(controller.start, controller._initial_state())
        logits = controller._logits(hidden, decisions[0])
        assert logits.abs().max() <= 1.5 + 1e-6
        # the second decision's probability depends on the first choice (its embedding is the next input)
        first = [
            controller.run(decisions[:2], choices=(c, 0))[1] - controller.run(decisions[:1], choices=(c,))[1]
            for c in (0, 1)
        ]
    assert not math.isclose(float(first[0]), float(first[1]), rel_tol=1e-4)


def test_presets_and_growing_depth() -> None:
    zoph_le = get_space("zoph_le")
    strategy = ReinforceSearch(zoph_le, seed=0, preset="zoph_le", grow_every=2, start_depth=3)
    assert len(strategy.controller.cells) == 2 and strategy.controller.hidden_size == 35
    assert strategy.controller.tanh_constant is None and strategy.optimizer.defaults["lr"] == 6e-4
    depths = []
    for _ in range(5):
        indices = strategy.propose()
        depths.append(len(zoph_le.architecture(indices)["layers"]))
        strategy.observe(indices, 0.5)
    assert depths == [3, 3, 5, 5, 7]  # Zoph & Le: start at depth d, add 2 every N samples
    with pytest.raises(ValueError, match="fixed depth"):
        ReinforceSearch(get_space("nasbench_resnet"), grow_every=2)
    rnn = ReinforceSearch(zoph_le, preset="zoph_le", cell="rnn")  # an explicit argument wins over the preset
    assert isinstance(rnn.controller.cells[0], nn.RNNCell)


def test_evolution_mutates_one_decision_and_the_oldest_dies(space) -> None:
    evolution = RegularizedEvolution(space, seed=0, population_size=4, sample_size=2)
    observed = []
    for step in range(10):
        indices = evolution.propose()
        if step >= 4:  # after the random phase every proposal is a one-decision mutation of a member
            members = [m for m, _ in evolution.population]
            assert any(sum(a != b for a, b in zip(indices, m)) == 1 for m in members)
        reward = -step if step < 4 else 1.0  # the first members are the worst ...
        evolution.observe(indices, reward)
        observed.append(indices)
    assert [m for m, _ in evolution.population] == observed[-4:]  # ... but age, not fitness, removes them
    with pytest.raises(ValueError, match="sample_size"):
        RegularizedEvolution(space, population_size=3, sample_size=5)
