"""Read and rewrite a variant's config through the field paths its family declares (``family.DesignFields``).

Scaling and NetAdapt change configs only through these three functions, so neither names a family's
fields: ``"widths"`` is a config field (an int or a tuple of ints), ``"rows.out_channels"`` one
attribute of every row of a tuple-of-rows field. Each rewrite builds a new config, so the family's own
``__post_init__`` refuses an invalid one (an odd ShuffleNet v2 width, a ShuffleNet v1 width that its
groups do not divide) with its one-line ``ValueError``.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def read_path(config: Any, path: str) -> Any:
    """The value at ``path``: the field itself, or a tuple with the attribute of every row."""
    head, _, attribute = path.partition(".")
    value = getattr(config, head)
    if not attribute:
        return value
    return tuple(getattr(row, attribute) for row in value)


def _replace_row(row: Any, attribute: str, value: Any) -> Any:
    if dataclasses.is_dataclass(row):
        return dataclasses.replace(row, **{attribute: value})  # type: ignore[type-var]
    return row._replace(**{attribute: value})  # a NamedTuple row (MBConvRow)


def with_path(config: Any, path: str, value: Any) -> Any:
    """``config`` with ``path`` set to ``value`` (for a row path, one value per row), validated anew."""
    head, _, attribute = path.partition(".")
    if not attribute:
        return dataclasses.replace(config, **{head: value})
    rows = getattr(config, head)
    if len(value) != len(rows):
        raise ValueError(f"{path} takes one value per row ({len(rows)}), got {len(value)}: {value!r}")
    return dataclasses.replace(config, **{head: tuple(_replace_row(r, attribute, v) for r, v in zip(rows, value))})


def _plain(value: Any) -> Any:
    """Rows as dicts (what JSON and YAML configs hold), tuples kept."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return dict(value._asdict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    return value


def overrides_between(base: Any, config: Any) -> dict[str, Any]:
    """The ``create_model`` overrides that turn ``base`` into ``config``: every field that differs."""
    changed = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value != getattr(base, field.name):
            changed[field.name] = _plain(value)
    return changed
