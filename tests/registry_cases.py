"""Parametrization over the registry: every registered model is tested by registering it."""

from __future__ import annotations

from unittest import mock

import pytest

from vision_backbones import list_models
from vision_backbones.backbone import Backbone
from vision_backbones.registry import build_on_meta

GIANT_PARAMS = 60_000_000


def _no_stride_probe(self: Backbone) -> None:
    self.level_channels, self.level_strides = (0,) * len(self.stages), (1,) * len(self.stages)
    self._min_input_size = self._min_input_size or 32


def _param_count(name: str) -> int:
    """Parameters of the features backbone (stem, stages, head conv).

    Counted without the stride probe (two meta forwards per model): every pytest worker and every
    spawned test process imports this module, and the probe made that import take 30 s.
    """
    with mock.patch.object(Backbone, "_measure", _no_stride_probe):
        model = build_on_meta(name, num_classes=1)
    parts = [model.stem, model.stages] + ([model.head_conv] if model.head_conv is not None else [])
    return sum(p.numel() for part in parts for p in part.parameters())


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
