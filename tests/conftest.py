"""Shared test fixtures: one thread per xdist worker, seeding, and the shared reference helpers.

The reference builders live in :mod:`vision_backbones.measure.references` (``benchmarks/compare.py``
uses the same ones); they are re-exported here for ``from conftest import randomize_norm_stats``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from vision_backbones.measure.references import build_pair, build_reference, randomize_norm_stats

__all__ = ["assert_close_to_scale", "build_pair", "build_reference", "leftover_temp_files", "randomize_norm_stats"]

torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_waiting_for_a_quiet_machine(monkeypatch) -> None:
    """Tests share two cores with each other: the library's measurements take one try, not up to four
    a second apart while a neighbouring test runs (the gate itself is tested in test_measure_protocol)."""
    from vision_backbones.measure import ruler

    monkeypatch.setattr(ruler, "QUIET_TRIES", 1)


def assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor, tolerance: float = 1e-4) -> None:
    """Max abs difference within ``tolerance`` times the output's scale (at least 1).

    Randomly initialised deep networks can produce activations of 1e6 and more, where float32
    reordering alone (channels_last, folded batch norm, another runtime) moves the last digits.
    """
    scale = max(1.0, expected.abs().max().item())
    difference = (actual - expected).abs().max().item()
    assert difference <= tolerance * scale, f"max abs difference {difference:.3g} > {tolerance:g} x scale {scale:.3g}"


def leftover_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Temporary files of :func:`vision_backbones.io.atomic_write` under ``folder`` (any depth).

    They are named ``.<name>.vbtmp-<pid>`` (``io.temp_path_for``): a ``*.tmp`` glob never sees them.
    """
    from vision_backbones.io import TEMP_MARK

    pattern = re.compile(r"^\..+" + re.escape(TEMP_MARK) + r"\d+$")
    return sorted(path for path in Path(folder).rglob(".*") if pattern.match(path.name))
