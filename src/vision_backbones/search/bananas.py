"""BANANAS: Bayesian optimization with an ensemble of neural predictors and mutation-based acquisition.

Paper: "BANANAS: Bayesian Optimization with Neural Architectures for Neural Architecture Search"
(White, Neiswanger & Savani, AAAI 2021), https://arxiv.org/abs/1910.11858; code:
github.com/naszilla/naszilla (``bananas``, ``get_candidates``, ``acq_fn``).

- Encoding: one-hot per decision, concatenated. The paper's *path encoding* has one feature per
  input-to-output path of a cell's operations; in a space with one operation (or setting) per layer
  each decision is its own path, so the one-hot of every decision is that encoding here.
- Predictor: an ensemble of ``ensemble_size`` small MLPs (scikit-learn ``MLPRegressor``, Adam, each
  with its own ``random_state`` from the seed and the number of observations), fitted to the observed
  rewards (standardized); mean and spread of their predictions are the model's belief.
- Acquisition: independent Thompson sampling (``acquisition="its"``, the paper's default): one draw
  from ``N(mean, std)`` per candidate, the best draw wins; or ``"ucb"``, ``mean + ucb_factor * std``.
- Candidates: ``mutations`` one-decision mutations of each of the ``parents`` best observed members
  plus ``random_candidates`` random ones (naszilla's ``mutation_random``), never a member already
  proposed; when none is left, a random unvisited member.

Defaults: ``num_init=10`` random members (the paper's and the code's), ``ensemble_size=5``,
``parents=10`` and ``mutations=10`` (100 mutated candidates, the code's ``num=100`` and
``num_best_arches=10``), ``random_candidates=20``, ``acquisition="its"``, ``ucb_factor=0.5`` (the code's
``explore_factor``). The MLPs are ``hidden=(32, 32)``, trained with full-batch Adam at
``learning_rate=0.01`` on the squared error for at most ``max_iter=200`` epochs (scikit-learn stops
earlier once the loss stalls). The paper's are 10 layers of width 20, 200 epochs of Adam at 0.01 on
the mean absolute error; smaller here so that a proposal with 200 observations, refit included, takes
about 0.2 s on one core. The code refits the ensemble every 10 queries; here it is refitted once
``refit_every=1`` new observations arrived.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from vision_backbones.search.local_search import (
    Member,
    members_from_state,
    members_state,
    random_unvisited,
)
from vision_backbones.search.rng import rng_state, set_rng_state
from vision_backbones.search.spaces import SearchSpace
from vision_backbones.validate import check_choice, check_float, check_int, check_ints

ACQUISITIONS = ("its", "ucb")


def one_hot(space: SearchSpace, members: Sequence[Sequence[int]]) -> np.ndarray:
    """``(len(members), total choices)``: the one-hot of every decision, side by side."""
    offsets = np.cumsum([0] + [len(d.choices) for d in space.decisions])
    encoded = np.zeros((len(members), int(offsets[-1])), dtype=np.float32)
    for row, member in enumerate(members):
        encoded[row, offsets[:-1] + np.asarray(member)] = 1.0
    return encoded


class Bananas:
    """BANANAS over ``space`` (see the module docstring for the encoding, acquisition and defaults)."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        num_init: int = 10,
        ensemble_size: int = 5,
        acquisition: str = "its",
        ucb_factor: float = 0.5,
        parents: int = 10,
        mutations: int = 10,
        random_candidates: int = 20,
        hidden: Sequence[int] = (32, 32),
        max_iter: int = 200,
        learning_rate: float = 0.01,
        refit_every: int = 1,
    ) -> None:
        check_int("num_init", num_init, min=1)
        check_int("ensemble_size", ensemble_size, min=2)
        check_choice("acquisition", acquisition, ACQUISITIONS)
        check_float("ucb_factor", ucb_factor, min=0)
        check_int("parents", parents, min=1)
        check_int("mutations", mutations, min=1)
        check_int("random_candidates", random_candidates, min=0)
        self.hidden = check_ints("hidden", hidden, min=1)
        check_int("max_iter", max_iter, min=1)
        check_float("learning_rate", learning_rate, min=0, min_open=True)
        check_int("refit_every", refit_every, min=1)
        self.space = space
        self.seed = seed
        self.num_init, self.ensemble_size = num_init, ensemble_size
        self.acquisition, self.ucb_factor = acquisition, ucb_factor
        self.parents, self.mutations, self.random_candidates = parents, mutations, random_candidates
        self.max_iter, self.learning_rate, self.refit_every = max_iter, learning_rate, refit_every
        self.rng = random.Random(seed)
        self.visited: list[Member] = []  # every proposal, in order
        self.visited_set: set[Member] = set()
        self.observed: list[tuple[Member, float]] = []  # in observation order
        self.fitted_on = 0  # the ensemble is fitted on observed[:fitted_on]
        self.ensemble: list[Any] | None = None  # not state: refitted from observed[:fitted_on] after a load

    # ------------------------------------------------------------------ the predictor
    def _fit(self, count: int) -> list[Any]:
        """The ensemble fitted on the first ``count`` observations (a function of them and the seed)."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        members, rewards = zip(*self.observed[:count])
        x = one_hot(self.space, members)
        y = np.asarray(rewards, dtype=np.float64)
        y = (y - y.mean()) / (y.std() + 1e-8)
        ensemble = []
        for index in range(self.ensemble_size):
            random_state = (self.seed * 1_000_003 + count * self.ensemble_size + index) % 2**32
            model = MLPRegressor(
                hidden_layer_sizes=self.hidden,
                learning_rate_init=self.learning_rate,
                max_iter=self.max_iter,
                batch_size=len(x),  # full batch: a few hundred rows, one step per epoch
                shuffle=False,  # (one batch: shuffling would only cost time)
                random_state=random_state,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                ensemble.append(model.fit(x, y))
        return ensemble

    def _predictor(self) -> list[Any]:
        """The ensemble, refitted once ``refit_every`` new observations arrived (or rebuilt after a load)."""
        if self.fitted_on == 0 or len(self.observed) - self.fitted_on >= self.refit_every:
            self.fitted_on, self.ensemble = len(self.observed), None
        if self.ensemble is None:
            self.ensemble = self._fit(self.fitted_on)
        return self.ensemble

    # ------------------------------------------------------------------ candidates and acquisition
    def _mutate(self, parent: Member) -> Member:
        mutable = [i for i, d in enumerate(self.space.decisions) if len(d.choices) > 1]
        if not mutable:
            return parent
        position = self.rng.choice(mutable)
        choice = self.rng.choice(
            [c for c in range(len(self.space.decisions[position].choices)) if c != parent[position]]
        )
        return (*parent[:position], choice, *parent[position + 1 :])

    def _candidates(self) -> list[Member]:
        ranked = sorted(self.observed, key=lambda observation: -observation[1])
        parents = list(dict.fromkeys(member for member, _ in ranked))[: self.parents]
        found = [self._mutate(parent) for parent in parents for _ in range(self.mutations)]
        found += [self.space.random_indices(self.rng) for _ in range(self.random_candidates)]
        return [m for m in dict.fromkeys(found) if m not in self.visited_set]

    def _acquire(self, candidates: list[Member]) -> Member:
        predictions = np.stack([model.predict(one_hot(self.space, candidates)) for model in self._predictor()])
        mean, std = predictions.mean(axis=0), predictions.std(axis=0)
        if self.acquisition == "its":
            scores = [self.rng.gauss(float(m), float(s)) for m, s in zip(mean, std)]
        else:
            scores = list(mean + self.ucb_factor * std)
        return candidates[int(np.argmax(scores))]

    # ------------------------------------------------------------------ the interface
    def propose(self) -> Member:
        member: Member | None
        if len(self.visited) < self.num_init or len(self.observed) < 2:
            member = random_unvisited(self.space, self.rng, self.visited_set)
        else:
            candidates = self._candidates()
            if candidates:
                member = self._acquire(candidates)
            else:
                member = random_unvisited(self.space, self.rng, self.visited_set)
        if member is None:  # every member proposed
            member = self.space.random_indices(self.rng)
        self.visited.append(member)
        self.visited_set.add(member)
        return member

    def observe(self, indices: Sequence[int], reward: float) -> None:
        self.observed.append((tuple(indices), float(reward)))

    def adopt(self, indices: Sequence[int], reward: float) -> None:
        """Learn from a member evaluated on this strategy's behalf (a pre-screen's pick) as if proposed:
        it counts toward the random initial members and is never proposed again."""
        member = tuple(int(i) for i in indices)
        if member not in self.visited_set:
            self.visited.append(member)
            self.visited_set.add(member)
        self.observe(member, reward)

    def state_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,  # the MLPs' random states derive from it
            "rng": rng_state(self.rng),
            "visited": members_state(self.visited),
            "observed": [[list(m), r] for m, r in self.observed],
            "fitted_on": self.fitted_on,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        set_rng_state(self.rng, state["rng"])
        self.visited = members_from_state(state["visited"])
        self.visited_set = set(self.visited)
        self.observed = [(tuple(int(i) for i in m), float(r)) for m, r in state["observed"]]
        self.fitted_on = int(state["fitted_on"])
        self.ensemble = None
