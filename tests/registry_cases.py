"""Parametrization over the registry: every registered model is tested by registering it."""

from __future__ import annotations

import pytest

from vision_backbones import list_models
from vision_backbones.registry import build_on_meta

GIANT_PARAMS = 60_000_000


def _param_count(name: str) -> int:
    return sum(p.numel() for p in build_on_meta(name, features_only=True).parameters())


def model_cases() -> list:
    cases = []
    for name in list_models():
        marks = [pytest.mark.giant] if _param_count(name) > GIANT_PARAMS else []
        cases.append(pytest.param(name, marks=marks, id=name))
    return cases


MODEL_CASES = model_cases()


def input_size_for(model) -> int:
    """A small input the model takes: 64 px, or its minimum when larger."""
    return max(64, model.min_input_size)
