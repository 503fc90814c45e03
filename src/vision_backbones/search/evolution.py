"""Regularized (aging) evolution: tournament selection, one-decision mutation, the oldest member dies.

Paper: "Regularized Evolution for Image Classifier Architecture Search" (Real et al., AAAI 2019),
https://arxiv.org/abs/1802.01548, Algorithm 1. The first ``population_size`` proposals are random;
afterwards each proposal samples ``sample_size`` members of the population, mutates the best of them
(one decision changed to another of its choices) and, once observed, the child joins and the *oldest*
member leaves, whatever its accuracy: a good architecture must keep being re-found, so a lucky
evaluation cannot rule forever (the "regularization").

Defaults: ``population_size=10``, ``sample_size=3``. The paper's ImageNet runs used 100 and 25 for
20,000 models; with budgets of 25-100 queries a population of 100 would never leave the random phase,
so the population is scaled down with the budget.

Written once: the black-box search (``--strategy evolution``, every trial trained) and the one-shot
search (``--strategy oneshot``, paths scored with a supernet's shared weights) both run this class.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from typing import Any

from vision_backbones.search.rng import rng_state, set_rng_state
from vision_backbones.search.spaces import SearchSpace
from vision_backbones.validate import check_int


class RegularizedEvolution:
    """Aging evolution over the choice indices of ``space``."""

    def __init__(self, space: SearchSpace, *, seed: int = 0, population_size: int = 10, sample_size: int = 3) -> None:
        check_int("population_size", population_size, min=2)
        check_int("sample_size", sample_size, min=1, max=population_size)
        self.space = space
        self.population_size = population_size
        self.sample_size = sample_size
        self.rng = random.Random(seed)
        self.population: deque[tuple[tuple[int, ...], float]] = deque()  # oldest first
        self.proposed = 0

    def mutate(self, parent: Sequence[int]) -> tuple[int, ...]:
        """``parent`` with one decision (of those with a choice) moved to another of its choices."""
        decisions = self.space.decisions
        mutable = [i for i, d in enumerate(decisions) if len(d.choices) > 1]
        child = list(parent)
        if mutable:
            position = self.rng.choice(mutable)
            others = [c for c in range(len(decisions[position].choices)) if c != parent[position]]
            child[position] = self.rng.choice(others)
        return tuple(child)

    def propose(self) -> tuple[int, ...]:
        self.proposed += 1
        if self.proposed <= self.population_size or not self.population:
            return self.space.random_indices(self.rng)
        sample = self.rng.sample(list(self.population), min(self.sample_size, len(self.population)))
        parent = max(sample, key=lambda member: member[1])[0]
        return self.mutate(parent)

    def observe(self, indices: Sequence[int], reward: float) -> None:
        self.population.append((tuple(indices), float(reward)))
        while len(self.population) > self.population_size:
            self.population.popleft()  # the oldest dies, not the worst

    def adopt(self, indices: Sequence[int], reward: float) -> None:
        """Learn from a member evaluated on this strategy's behalf (a pre-screen's pick) as if proposed:
        it takes a place of the random initial population."""
        self.proposed += 1
        self.observe(indices, reward)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": rng_state(self.rng),
            "proposed": self.proposed,
            "population": [[list(indices), reward] for indices, reward in self.population],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])
        self.proposed = int(state["proposed"])
        self.population = deque((tuple(indices), float(reward)) for indices, reward in state["population"])
