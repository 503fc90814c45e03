"""Atomic file writes: a file is either its old self or completely new, never half-written.

Everything this library writes (weights, exports, checkpoints, reports) goes through here: the data
is written to a temporary file in the target folder, flushed to disk, given the permissions a plain
``open()`` would give it, then renamed over the target (``os.replace`` is atomic on one filesystem).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(tmp)
        with open(tmp, "rb") as written:  # the data reaches the disk before the rename makes it visible
            os.fsync(written.fileno())
        umask = os.umask(0)
        os.umask(umask)
        # mkstemp makes the file 0600; give it the replaced file's mode, or what open() would.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
