"""What a search maximises: accuracy, MnasNet's latency-aware reward, and FLOP / parameter limits.

MnasNet (Tan et al., https://arxiv.org/abs/1807.11626, eq. 2) rewards ``ACC(m) x (LAT(m) / T) ** w``
with ``w = alpha`` when ``LAT(m) <= T`` and ``w = beta`` otherwise:

- *soft* (the paper's default): ``alpha = beta = -0.07``, from "doubling latency buys about 5 %
  accuracy" (``2 ** -0.07 ~ 1 / 1.05``); a faster model is always rewarded a little;
- *hard* (the paper's Fig. 3, top): ``alpha = 0, beta = -1``: plain accuracy under the target, and
  a steep penalty above it.

Limits on FLOPs or parameters are hard: an architecture over a limit scores ``INFEASIBLE`` (-1,
below any accuracy or reward, which are >= 0), so a strategy that maximises never prefers it and
still gets a finite number to learn from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vision_backbones.validate import check_choice, check_float, check_int

KINDS = ("accuracy", "mnasnet")
MODES = ("soft", "hard")
SOFT_EXPONENT = -0.07  # MnasNet's alpha = beta
HARD_EXPONENTS = (0.0, -1.0)  # MnasNet's (alpha, beta) for a hard constraint
INFEASIBLE = -1.0


def mnasnet_exponent(
    latency_ms: float, target_ms: float, *, mode: str = "soft", exponent: float = SOFT_EXPONENT
) -> float:
    """MnasNet's ``w`` for one latency: ``exponent`` everywhere (soft), or 0 / -1 under / over ``target_ms`` (hard)."""
    check_choice("mode", mode, MODES)
    if mode == "soft":
        return exponent
    return HARD_EXPONENTS[0] if latency_ms <= target_ms else HARD_EXPONENTS[1]


def mnasnet_reward(
    accuracy: float, latency_ms: float, *, target_ms: float, mode: str = "soft", exponent: float = SOFT_EXPONENT
) -> float:
    """``accuracy x (latency_ms / target_ms) ** w`` (MnasNet eq. 2); ``accuracy`` in any unit >= 0."""
    check_float("accuracy", accuracy, min=0)
    check_float("latency_ms", latency_ms, min=0, min_open=True)
    check_float("target_ms", target_ms, min=0, min_open=True)
    check_float("exponent", exponent, max=0)
    w = mnasnet_exponent(latency_ms, target_ms, mode=mode, exponent=exponent)
    return accuracy * (latency_ms / target_ms) ** w


@dataclass(frozen=True)
class Objective:
    """Scores one trial's result (``evaluate_architecture``'s dict); higher is better.

    Attributes:
        kind: ``"accuracy"`` (the metric alone) or ``"mnasnet"`` (the latency-aware reward).
        target_ms: MnasNet's ``T`` (required for ``"mnasnet"``).
        mode: ``"soft"`` or ``"hard"`` (see the module docstring).
        exponent: the soft ``w`` (-0.07).
        max_flops, max_params: hard limits on ``flops_key`` / ``params_key`` (``None``: none).
        metric: the accuracy key (the search ranks on validation, never on test).
    """

    kind: str = "accuracy"
    target_ms: float | None = None
    mode: str = "soft"
    exponent: float = SOFT_EXPONENT
    max_flops: int | None = None
    max_params: int | None = None
    metric: str = "val_acc1"
    latency_key: str = "latency_ms"
    flops_key: str = "deploy_flops"
    params_key: str = "deploy_params"

    def __post_init__(self) -> None:
        check_choice("objective", self.kind, KINDS)
        check_choice("mode", self.mode, MODES)
        check_float("exponent", self.exponent, max=0)
        if self.kind == "mnasnet" and self.target_ms is None:
            raise ValueError("objective 'mnasnet' needs target_ms, the latency target T in ms (> 0)")
        if self.target_ms is not None:
            check_float("target_ms", self.target_ms, min=0, min_open=True)
        if self.max_flops is not None:
            check_int("max_flops", self.max_flops, min=1)
        if self.max_params is not None:
            check_int("max_params", self.max_params, min=1)

    def _value(self, result: Mapping[str, Any], key: str) -> float:
        if key not in result or result[key] is None:
            raise ValueError(f"result has no {key!r}; expected a dict from evaluate_architecture with {key} measured")
        value = float(result[key])
        if not math.isfinite(value):
            raise ValueError(f"result[{key!r}] is {value}; expected a finite number")
        return value

    def feasible(self, result: Mapping[str, Any]) -> bool:
        """Whether ``result`` keeps the FLOP and parameter limits."""
        if self.max_flops is not None and self._value(result, self.flops_key) > self.max_flops:
            return False
        return self.max_params is None or self._value(result, self.params_key) <= self.max_params

    def score(self, result: Mapping[str, Any]) -> float:
        """The reward of ``result``; ``INFEASIBLE`` (-1) when it breaks a limit."""
        if not self.feasible(result):
            return INFEASIBLE
        accuracy = self._value(result, self.metric)
        if self.kind == "accuracy":
            return accuracy
        latency = self._value(result, self.latency_key)
        return mnasnet_reward(accuracy, latency, target_ms=self.target_ms, mode=self.mode, exponent=self.exponent)  # type: ignore[arg-type]
