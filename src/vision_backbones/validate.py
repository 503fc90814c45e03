"""One validation layer for public arguments and config values.

Each helper returns the value when it is acceptable and otherwise raises a one-line ``ValueError``
naming the value and what was expected (``data.batch_size must be an int >= 1, got 0``). ``bool`` is
never accepted as a number, and numbers are never accepted as strings ('10' is not 10).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Collection, Mapping, Sequence
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
    ok = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_number(v) for v in value)
    )
    if ok:
        low, high = value
        ok = min <= low <= high <= max and (min != 0 or low > 0)
    if not ok:
        raise ValueError(
            f"{name} must be (low, high) with {min:g} {'<' if min == 0 else '<='} low <= high <= {max:g}, got {_plain(value)!r}"
        )
    return float(value[0]), float(value[1])


def check_ints(
    name: str,
    value: Any,
    *,
    min: int | None = None,
    length: int | None = None,
    allow_empty: bool = False,
    per: str = "",
) -> tuple[int, ...]:
    """A non-empty sequence (not a string) of ints, each ``>= min``, of ``length`` items if given.

    The one spelling of the "non-empty tuple of positive ints" check every config repeats; ``per``
    names what one item stands for when ``length`` comes from another field (``"stage"``).
    """
    ok = isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and all(_is_int(v) for v in value)
    ok = ok and (min is None or all(v >= min for v in value)) and (length is None or len(value) == length)
    ok = ok and (allow_empty or len(value) > 0)
    if not ok:
        what = (
            f"{length} ints"
            if length is not None
            else "a sequence of ints"
            if allow_empty
            else "a non-empty sequence of ints"
        )
        bound = f" >= {min}" if min is not None else ""
        raise ValueError(f"{name} must be {what}{bound}{f' (one per {per})' if per else ''}, got {_plain(value)!r}")
    return tuple(value)


def check_rate(name: str, value: Any) -> float:
    """A probability in ``[0, 1)``: dropout and stochastic-depth rates (1 would drop everything)."""
    if not _is_number(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ---- config dataclasses: every override checked against its field's annotation


def _is_row_type(annotation: Any) -> bool:
    """A structured row: a ``NamedTuple`` (``MBConvRow``) or a dataclass, checked field by field."""
    is_named_tuple = isinstance(annotation, type) and issubclass(annotation, tuple) and hasattr(annotation, "_fields")
    return is_named_tuple or (isinstance(annotation, type) and dataclasses.is_dataclass(annotation))


def _row_mismatch(value: Any, row_type: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first field of a row (an instance, a mapping or a sequence of its fields) of the wrong type.

    Unknown or missing fields are left to the family's own row check, whose message lists the fields.
    """
    hints = typing.get_type_hints(row_type)
    names = list(getattr(row_type, "_fields", None) or (f.name for f in dataclasses.fields(row_type)))
    if isinstance(value, Mapping):
        items = [(k, v) for k, v in value.items() if k in hints]
    elif isinstance(value, row_type) and dataclasses.is_dataclass(value):
        items = [(n, getattr(value, n)) for n in names]
    elif isinstance(value, (tuple, list)):
        items = list(zip(names, value))
    else:
        return path, value, row_type
    for name, item in items:
        mismatch = _mismatch(item, hints[name], f"{path}.{name}")
        if mismatch is not None:
            return mismatch
    return None


def _mismatch(value: Any, annotation: Any, path: str) -> tuple[str, Any, Any] | None:
    """``(path, value, expected)`` of the first part of ``value`` that does not fit ``annotation``, or None.

    bool means a bool, int an int (not a float, not a bool), float a real number (not a bool), str a
    string, ``Literal`` one of its values, ``tuple[int, ...]`` a tuple or list of ints; rows
    (``tuple[MBConvRow, ...]``) are checked field by field and named by their path (``rows[2].stride``).
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    whole = (path, value, annotation)
    if annotation is Any or isinstance(annotation, (str, typing.TypeVar)):
        return None
    if origin in (typing.Union, types.UnionType):
        inner = [_mismatch(value, a, path) for a in args]
        return None if any(m is None for m in inner) else whole
    if origin is typing.Literal:
        return None if any(type(value) is type(a) and value == a for a in args) else whole
    if annotation is type(None):
        return None if value is None else whole
    simple = {bool: lambda v: isinstance(v, bool), int: _is_int, float: _is_number, str: lambda v: isinstance(v, str)}
    if annotation in simple:
        return None if simple[annotation](value) else whole
    if _is_row_type(annotation):
        return _row_mismatch(value, annotation, path)
    if origin in (tuple, list, Sequence):
        if not isinstance(value, (tuple, list)):
            return whole
        if not args:
            return None
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                return whole
            pairs = list(zip(value, args))
        else:
            pairs = [(v, args[0]) for v in value]
        for index, (item, item_type) in enumerate(pairs):
            mismatch = _mismatch(item, item_type, f"{path}[{index}]")
            if mismatch is not None:  # a row names its own field; a plain tuple is named as a whole
                return mismatch if mismatch[0] != f"{path}[{index}]" or _is_row_type(item_type) else whole
        return None
    if isinstance(annotation, type):
        return None if isinstance(value, annotation) else whole
    return None  # Callable and other forms: left to the family's own checks


def describe_type(annotation: Any) -> str:
    """An annotation as a reader writes it: ``tuple[int, ...]``, ``float | None``, ``one of 'a', 'b'``."""
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", str(annotation).replace("typing.", ""))


def check_overrides(model: str, config: Any, overrides: Mapping[str, Any]) -> None:
    """Each override must fit its config field's annotated type (``depths='2222'`` is refused).

    One ``ValueError`` naming the field, the value and the expected type:
    ``depths='2222' for model 'resnet18': expected tuple[int, ...]``.
    """
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        if field.name not in overrides:
            continue
        mismatch = _mismatch(overrides[field.name], hints.get(field.name, Any), field.name)
        if mismatch is not None:
            path, value, expected = mismatch
            raise ValueError(f"{path}={_plain_repr(value)} for model {model!r}: expected {describe_type(expected)}")


def check_config(model: str, config: Any) -> None:
    """Every field of ``config`` fits its annotation (a variant table's typo fails at registration)."""
    check_overrides(model, config, {f.name: getattr(config, f.name) for f in dataclasses.fields(config)})


def _plain_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
