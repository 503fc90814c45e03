"""One validation layer for public arguments and config values.

Each helper returns the value when it is acceptable and otherwise raises a one-line ``ValueError``
naming the value and what was expected (``data.batch_size must be an int >= 1, got 0``). ``bool`` is
never accepted as a number, and numbers are never accepted as strings ('10' is not 10).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bounds(low: float | None, high: float | None, *, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def check_int(name: str, value: Any, *, min: int | None = None, max: int | None = None) -> int:
    """``value`` as an int in ``[min, max]``; bools, floats and strings are refused."""
    ok = _is_int(value) and (min is None or value >= min) and (max is None or value <= max)
    if not ok:
        raise ValueError(f"{name} must be an int {_bounds(min, max)}".rstrip() + f", got {value!r}")
    return int(value)


def check_float(
    name: str,
    value: Any,
    *,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
) -> float:
    """``value`` as a finite float within the bounds (``*_open``: the bound itself is excluded)."""
    ok = _is_number(value) and math.isfinite(value)
    if ok and min is not None:
        ok = value > min if min_open else value >= min
    if ok and max is not None:
        ok = value < max if max_open else value <= max
    if not ok:
        bounds = _bounds(min, max, low_open=min_open, high_open=max_open)
        raise ValueError(f"{name} must be a finite number {bounds}".rstrip() + f", got {value!r}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_range(name: str, value: Any, *, min: float, max: float) -> tuple[float, float]:
    """A ``(low, high)`` pair with ``min <= low <= high <= max`` and ``low > 0`` when ``min`` is 0."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2 and all(_is_number(v) for v in value)
    if ok:
        low, high = value
        ok = min <= low <= high <= max and (min != 0 or low > 0)
    if not ok:
        raise ValueError(f"{name} must be (low, high) with {min:g} {'<' if min == 0 else '<='} low <= high <= {max:g}, got {_plain(value)!r}")
    return float(value[0]), float(value[1])


def check_ints(name: str, value: Any, *, min: int | None = None, length: int | None = None) -> tuple[int, ...]:
    """A sequence (not a string) of ints, each ``>= min``, of ``length`` items if given."""
    ok = isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and all(_is_int(v) for v in value)
    ok = ok and (min is None or all(v >= min for v in value)) and (length is None or len(value) == length)
    if not ok:
        what = f"{length} ints" if length is not None else "a sequence of ints"
        raise ValueError(f"{name} must be {what}{f' >= {min}' if min is not None else ''}, got {_plain(value)!r}")
    return tuple(value)


def check_existing_dir(name: str, value: Any, *, expected: str = "") -> Path:
    path = Path(value)
    if not path.is_dir():
        raise ValueError(f"{name}: {str(path)!r} does not exist{'; expected ' + expected if expected else ''}")
    return path


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ---- config dataclasses: the annotated type of each field


def _matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits a field annotation (ints, floats, bools, str, tuples, Optional)."""
    if annotation is Any or isinstance(annotation, (str, typing.TypeVar)):
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return _is_int(value)
    if annotation is float:
        return _is_number(value)
    if annotation is str:
        return isinstance(value, str)
    if origin in (tuple, list, Sequence):
        if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
            return False
        if not args:
            return True
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        if origin is tuple:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        return all(_matches(v, args[0]) for v in value)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # Callable, Literal and other forms: left to the family's own checks


def check_overrides(model: str, config: Any, overrides: dict[str, Any]) -> None:
    """Each override must fit its config field's annotated type (``depths='2222'`` is refused)."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        if field.name in overrides and not _matches(overrides[field.name], hints.get(field.name, Any)):
            hint = hints.get(field.name)
            expected = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
            raise ValueError(f"{field.name}={overrides[field.name]!r} for model {model!r}: expected {expected}")


def check_path_arg(name: str, value: Any) -> str | os.PathLike[str]:
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a file path, got {type(value).__name__} {value!r}")
    return value
