"""Local search: hill climbing over one-decision neighbourhoods, restarted at every local optimum.

Paper: "Local Search is State of the Art for Neural Architecture Search Benchmarks" (White, Nolen &
Savani, 2020), https://arxiv.org/abs/2005.02960, Algorithm 1; code: github.com/naszilla/naszilla
(``local_search``). A run draws ``num_init`` random members and starts from the best of them; it
evaluates the whole neighbourhood of the current member (every member that differs in one decision,
in random order) and moves to the best neighbour if it beats the current member: *best improvement*,
the paper's Algorithm 1 (``full_neighbourhood=True``). With ``full_neighbourhood=False`` it moves to
the first improving neighbour instead (*first improvement*, the naszilla code's default,
``query_full_nbhd=False``). At a local optimum (no neighbour improves) it restarts from new random
members. Moves are strict improvements, so a run never cycles.

Defaults: ``num_init=10`` (naszilla's ``DEFAULT_NUM_INIT``; Algorithm 1 itself starts from 1),
``full_neighbourhood=True``.

Every proposal is a member not proposed before while such members exist (a visited set, as the code's
``query_dict``). In a batch, a proposal that would need rewards not observed yet (the neighbourhood is
all proposed, or the random start is waiting) is a random unvisited member instead; those "spare"
members start the next restart's random draw, so nothing they find is lost.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from vision_backbones.search.rng import rng_state, set_rng_state
from vision_backbones.search.spaces import SearchSpace
from vision_backbones.validate import check_bool, check_int

Member = tuple[int, ...]


def neighbours(space: SearchSpace, member: Sequence[int]) -> list[Member]:
    """Every member that differs from ``member`` in exactly one decision, in decision order."""
    found = []
    for position, decision in enumerate(space.decisions):
        for choice in range(len(decision.choices)):
            if choice != member[position]:
                found.append((*member[:position], choice, *member[position + 1 :]))
    return found


def random_unvisited(space: SearchSpace, rng: random.Random, visited: set[Member]) -> Member | None:
    """A uniform random member not in ``visited``; ``None`` when every member is visited."""
    if len(visited) >= space.size:
        return None
    for _ in range(64):  # rejection sampling: quick unless the space is nearly exhausted
        member = space.random_indices(rng)
        if member not in visited:
            return member
    return rng.choice([m for m in space.all_indices() if m not in visited])  # small spaces only get here


def members_state(members: Iterable[Sequence[int]]) -> list[list[int]]:
    """Members as lists of ints (what ``weights_only`` loading accepts)."""
    return [list(member) for member in members]


def members_from_state(members: Iterable[Sequence[int]]) -> list[Member]:
    return [tuple(int(i) for i in member) for member in members]


class LocalSearch:
    """Best-improvement (or first-improvement) local search with random restarts over ``space``."""

    def __init__(
        self, space: SearchSpace, *, seed: int = 0, num_init: int = 10, full_neighbourhood: bool = True
    ) -> None:
        check_int("num_init", num_init, min=1)
        check_bool("full_neighbourhood", full_neighbourhood)
        self.space = space
        self.num_init = num_init
        self.full_neighbourhood = full_neighbourhood
        self.rng = random.Random(seed)
        self.visited: list[Member] = []  # every proposal, in order (the set below is its index)
        self.visited_set: set[Member] = set()
        self.rewards: dict[Member, float] = {}  # observed members
        self.starts: list[Member] = []  # this restart's random members (the best one starts the climb)
        self.spares: list[Member] = []  # random members proposed while waiting; they start the next restart
        self.current: Member | None = None  # the member whose neighbourhood is evaluated; None: random start
        self.queue: list[Member] = []  # its neighbours still to propose, in random order

    # ------------------------------------------------------------------ the climb
    def _visit(self, member: Member) -> Member:
        self.visited.append(member)
        self.visited_set.add(member)
        return member

    def _random(self) -> Member:
        member = random_unvisited(self.space, self.rng, self.visited_set)
        assert member is not None  # _step checks that the space has unvisited members
        return member

    def _move_to(self, member: Member) -> None:
        self.current = member
        self.queue = [m for m in neighbours(self.space, member) if m not in self.visited_set]
        self.rng.shuffle(self.queue)

    def _restart(self) -> None:
        self.current, self.queue = None, []
        self.starts, self.spares = self.spares, []

    def _known_neighbours(self) -> list[Member]:
        assert self.current is not None
        return [m for m in neighbours(self.space, self.current) if m in self.rewards]

    def _step(self) -> Member | None:
        """Advance the climb as far as the observed rewards allow; the next proposal, or None to loop."""
        if len(self.visited_set) >= self.space.size:
            return self.space.random_indices(self.rng)  # every member proposed: nothing new to climb to
        if self.current is None:  # random start
            if len(self.starts) < self.num_init:
                self.starts.append(self._random())
                return self._visit(self.starts[-1])
            if all(m in self.rewards for m in self.starts):
                self._move_to(max(self.starts, key=lambda m: self.rewards[m]))
                return None
            self.starts.append(self._random())  # still waiting: a bigger random start
            return self._visit(self.starts[-1])
        best = self.rewards[self.current]
        better = [m for m in self._known_neighbours() if self.rewards[m] > best]
        if better and not self.full_neighbourhood:
            self._move_to(max(better, key=lambda m: self.rewards[m]))
            return None
        self.queue = [m for m in self.queue if m not in self.visited_set]  # a spare may have taken one
        if self.queue:
            return self._visit(self.queue.pop())
        if all(m in self.rewards for m in neighbours(self.space, self.current) if m in self.visited_set):
            if better:
                self._move_to(max(better, key=lambda m: self.rewards[m]))
            else:
                self._restart()  # a local optimum
            return None
        self.spares.append(self._random())  # still waiting for the neighbourhood's rewards
        return self._visit(self.spares[-1])

    # ------------------------------------------------------------------ the interface
    def propose(self) -> Member:
        while True:
            member = self._step()
            if member is not None:
                return member

    def observe(self, indices: Sequence[int], reward: float) -> None:
        self.rewards[tuple(indices)] = float(reward)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": rng_state(self.rng),
            "visited": members_state(self.visited),
            "rewards": [[list(m), r] for m, r in self.rewards.items()],
            "starts": members_state(self.starts),
            "spares": members_state(self.spares),
            "current": None if self.current is None else list(self.current),
            "queue": members_state(self.queue),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])
        self.visited = members_from_state(state["visited"])
        self.visited_set = set(self.visited)
        self.rewards = {tuple(int(i) for i in m): float(r) for m, r in state["rewards"]}
        self.starts = members_from_state(state["starts"])
        self.spares = members_from_state(state["spares"])
        self.current = None if state["current"] is None else tuple(int(i) for i in state["current"])
        self.queue = members_from_state(state["queue"])
