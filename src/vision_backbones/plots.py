"""Figures: one way to get a headless pyplot and one way to save a figure.

Every chart the library draws (profile, pick, NetAdapt path, search front) is a PNG written
atomically; the figure is closed even when saving fails, so a long process that draws many charts
does not keep them all in memory (pyplot holds every open figure).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vision_backbones.io import atomic_write_stream


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend: charts are files, never windows (servers have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | os.PathLike[str], *, dpi: int | None = None) -> Path:
    """Write ``figure`` to the ``.png`` file ``path`` atomically, then close it (also when writing fails)."""
    path = Path(path)
    try:
        if path.suffix.lower() != ".png":
            raise ValueError(f"expected a .png figure path, got {str(path)!r}")
        return atomic_write_stream(path, lambda stream: figure.savefig(stream, format="png", dpi=dpi))
    finally:
        pyplot().close(figure)
