"""Random-generator states as plain data, so ``torch.load(weights_only=True)`` reads a strategy's state back.

Every strategy keeps its own generator (never the global one) and returns its state from
``state_dict``; these helpers are the one place that turns a ``random.Random`` state into lists and
ints (what ``weights_only`` loading accepts) and back. ``torch.Generator`` states are ``uint8``
tensors already and need no conversion.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any


def rng_state(rng: random.Random) -> list[Any]:
    """``random.Random`` state as lists and ints (what ``weights_only`` loading accepts)."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_rng_state(rng: random.Random, state: Sequence[Any]) -> None:
    """Restore a state written by ``rng_state``."""
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))
