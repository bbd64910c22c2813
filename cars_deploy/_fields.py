"""Type checks for the dataclass settings read back from files (``config.json``, checkpoints, model cards).

A file written by another version, edited by hand or made up by an attacker can hold ``"C": "8"`` or
``"history": 3``; read unchecked, such a value fails deep inside a run as an internal error. Every loader
passes what it read through ``dataclass_from_dict`` (or ``require``), which names the file and the field
in one ``UserInputError`` line. Written by hand because the checks are a few lines over the dataclasses'
own annotations; a validation library (pydantic) would be a new dependency for the same result.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from typing import Any, Mapping, TypeVar

from .errors import UserInputError

__all__ = ["dataclass_from_dict", "require", "check_finite"]

T = TypeVar("T")


def require(value: Any, kind: type | tuple[type, ...], where: str, name: str) -> Any:
    """``value`` if it is a ``kind`` (``bool`` is never an ``int`` here), else a ``UserInputError``."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise UserInputError(f"{where}: field {name!r} must be {names}, got {type(value).__name__} {_short(value)}")
    return value


def check_finite(obj: Any, what: str) -> None:
    """Raises ``UserInputError`` naming the first float field of dataclass ``obj`` that is NaN or infinite."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UserInputError(f"{what}: {f.name} must be a finite number, got {value}")


def dataclass_from_dict(cls: type[T], data: Any, where: str) -> T:
    """``cls(**data)`` after checking that ``data`` is an object whose keys are fields of ``cls`` and whose
    values have the fields' annotated types; ``where`` names the file in the error."""
    if not isinstance(data, Mapping):
        raise UserInputError(f"{where}: expected a JSON object of settings, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        raise UserInputError(f"{where}: unknown setting(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        if not _matches(value, hints[name]):
            raise UserInputError(
                f"{where}: field {name!r} must be {_describe(hints[name])}, got {type(value).__name__} {_short(value)}"
            )
        values[name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is tuple:
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True  # any other annotation is the dataclass's own validate()'s business


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if args:
        return " or ".join(_describe(a) for a in args) if origin is not tuple else f"a list of {_describe(args[0])}"
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
