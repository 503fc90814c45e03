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

# The export and tracing mechanics (FX, torch.export, TorchScript, ONNX, fusion, channels-last, the
# forward surface, sub-backbones) run on every model up to MECHANICS_PARAMS parameters and on each
# family's smallest variant: a larger variant of a family is the same code with a larger table, and
# running these checks on the 27 largest doubled the suite. The numeric checks (reference parity in
# test_convert, strides, forward/backward, freezing, the vocabulary) still run on every model.
MECHANICS_PARAMS = 40_000_000


def mechanics_cases() -> list:
    from vision_backbones.registry import get_entry

    counts = {name: _param_count(name) for name in list_models()}
    smallest: dict[str, str] = {}
    for name, count in counts.items():
        family = get_entry(name).family
        if family not in smallest or count < counts[smallest[family]]:
            smallest[family] = name
    kept = {name for name, count in counts.items() if count <= MECHANICS_PARAMS} | set(smallest.values())
    return [case for case in MODEL_CASES if case.values[0] in kept]


MECHANICS_CASES = mechanics_cases()


def input_size_for(model) -> int:
    """A small input the model takes: 64 px, or its minimum when larger."""
    return max(64, model.min_input_size)
