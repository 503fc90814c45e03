"""Silence third-party messages that a ``backbones train`` user did not ask for, each at its source.

Only exact messages are matched, so every other warning (the project's own included) still shows.
"""

from __future__ import annotations

import logging
import warnings

# Lightning 2.6 prints an advertisement for its cloud logger on every fit that has no LitLogger.
_LITLOGGER_TIP = "try installing [litlogger]"


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def silence_third_party_noise() -> None:
    """Install the filters (idempotent)."""
    # Lightning's rank-zero messages go through these two loggers (fabric's and pytorch's module names).
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.fragment == _LITLOGGER_TIP for f in logger.filters):
            logger.addFilter(_DropMessage(_LITLOGGER_TIP))
    # Lightning 2.6's _pytree helper still builds torch's LeafSpec, which torch 2.14 deprecated; the
    # warning is about Lightning's code, and nothing a user can change.
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
    # The train command writes its config.yaml into the checkpoint folder before Lightning's
    # ModelCheckpoint looks at it, which then reports the folder "not empty" on a first run.
    # Resuming and overwriting are decided by the project's own --force policy, not by this warning.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
