"""The one interface every search strategy implements, and the one weight-sharing strategies add to it.

A strategy proposes members of a space as choice indices (one per decision of ``space.decisions``)
and learns from the rewards the runner observes::

    strategy = make_strategy("evolution", space, seed=0)
    indices = strategy.propose()          # decided by the strategy's state alone
    strategy.observe(indices, reward)     # the objective's score as a fraction (accuracy 0-1)

The runner (``search.runner.run_search``) drives every strategy the same way, in batches of
``workers`` trials: save ``state_dict()``, propose the batch, evaluate the proposals, observe every
reward in trial order. After a kill it loads the saved state and proposes the batch again, so a
strategy must

- keep its own random generators (``search.rng`` for ``random.Random``), never the global ones;
- return from ``state_dict()`` everything that decides its next proposals, as tensors, numbers,
  strings, lists and dicts (``torch.save`` writes it, ``torch.load(weights_only=True)`` reads it):
  after ``load_state_dict`` it proposes exactly what the uninterrupted strategy would have;
- accept several proposals before their observations (a batch of ``workers``);
- know nothing about training, data or files: the runner evaluates, writes and resumes.

A multi-objective strategy (Optuna's NSGA-II) also defines ``observe_result(indices, result, reward)``;
the runner then calls it instead of ``observe``, with the trial's whole result (``val_acc1``,
``latency_ms``, ...), and the strategy reads its objectives from there.

A strategy is built as ``Class(space, *, seed=..., **options)``; an unknown option raises
``TypeError``, which ``strategies.make_strategy`` turns into one line. Registering the class in
``strategies.STRATEGY_CLASSES`` makes it a ``backbones search --strategy`` choice.

Weight-sharing strategies (the one-shot supernet; differentiable search later) train shared weights
before they propose, then score proposals with those weights instead of training each one. They also
implement ``SharedWeights``, take the proxy task as ``task=`` and are listed in
``strategies.WEIGHT_SHARING``. The runner calls ``train_epoch()`` until ``training_done()``, writing
``weights_state_dict()`` (weights, optimizer, generators, progress) to ``supernet.pt`` after each
epoch, so a killed training resumes at its last finished epoch and ends where an uninterrupted one
ends; then it evaluates the trials with ``evaluator()``. ``state_dict()`` still holds only what decides
the proposals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from vision_backbones.search.spaces import SearchSpace

Evaluator = Callable[[Mapping[str, Any]], dict[str, Any]]
"""A trial (``number``, ``indices``, ``architecture``, ``seed``) -> its result (``val_acc1``, ...)."""


@runtime_checkable
class Strategy(Protocol):
    """What the runner needs from every strategy."""

    space: SearchSpace

    def propose(self) -> tuple[int, ...]:
        """The next member to evaluate, as one choice index per decision."""
        ...

    def observe(self, indices: Sequence[int], reward: float) -> None:
        """Learn from the reward of a proposed member (in the order the members were proposed)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything that decides the next proposals, loadable with ``weights_only=True``."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a ``state_dict()``: the same proposals as the strategy that wrote it."""
        ...


@runtime_checkable
class SharedWeights(Protocol):
    """What the runner needs, besides ``Strategy``, from a strategy that trains shared weights."""

    def training_done(self) -> bool:
        """Whether the shared weights are trained (``propose`` may be called)."""
        ...

    def train_epoch(self) -> float:
        """One resumable unit of training (an epoch); returns its mean loss."""
        ...

    def weights_state_dict(self) -> dict[str, Any]:
        """Weights, optimizer, generators and progress of the training, loadable with ``weights_only=True``."""
        ...

    def load_weights_state_dict(self, state: dict[str, Any]) -> None:
        """Continue training (or searching) from a ``weights_state_dict()``."""
        ...

    def evaluator(self) -> Evaluator:
        """Scores a trial with the shared weights (in this process: it holds the trained network)."""
        ...
