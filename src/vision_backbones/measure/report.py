"""Markdown reports assembled from sections that separate benchmarks own.

``benchmarks/RESULTS.md`` is written by several commands (the eager comparison, the deploy matrix,
the input pipeline); each rewrites only its own section, delimited by HTML comments, so running one
benchmark never erases another's figures.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vision_backbones.io import atomic_write_bytes


def _markers(name: str) -> tuple[str, str]:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ValueError(f"section name {name!r}: expected lowercase letters, digits and dashes")
    return f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"


def replace_section(path: str | os.PathLike[str], name: str, text: str) -> Path:
    """Put ``text`` between the ``name`` markers in ``path`` (appended if absent), atomically."""
    begin, end = _markers(name)
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    block = f"{begin}\n{text.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old, count=1)
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + block + "\n"
    return atomic_write_bytes(path, new.encode())


def read_section(path: str | os.PathLike[str], name: str) -> str | None:
    """The text of section ``name`` in ``path``, or ``None``."""
    begin, end = _markers(name)
    path = Path(path)
    if not path.exists():
        return None
    match = re.search(re.escape(begin) + r"\n?(.*?)\n?" + re.escape(end), path.read_text(), re.DOTALL)
    return match.group(1) if match else None
