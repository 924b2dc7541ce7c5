"""Typed checks of settings values: one line naming the key for a wrong type or an unknown
name (pydantic converts and validates each value against its annotation).

Used wherever a user's values enter: the hyper-parameters of a model (against its declared
:class:`earmark.models.spec.Param` list), the sections of a recipe (against the fields of a
settings dataclass), and single values. :mod:`earmark.settings` merges a job's settings with
these; a model checks its own hyper-parameters with :func:`check_params`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from earmark.errors import ParameterError
from earmark.models import registry

__all__ = [
    "SettingsError",
    "check_params",
    "check_section",
    "check_value",
    "describe_type",
    "type_name",
]


class SettingsError(ParameterError):
    """A setting has the wrong type, an unknown name, or conflicts with a resumed run.
    ``key`` is its dotted name (``params.C``, ``train.lr``); the message is one line."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


def describe_type(tp: Any) -> str:
    """A type annotation in words, as error messages say it: ``float`` -> "a number",
    ``list[int]`` -> "a list of integers", ``Literal["a", "b"]`` -> "one of a, b",
    ``int | None`` -> "an integer or null"."""
    words = {
        float: "a number",
        int: "an integer",
        bool: "true or false",
        str: "text",
        type(None): "null",
        dict: "a mapping",
        Any: "any value",
    }
    if tp in words:
        return words[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if origin in (list, tuple):
        inner = describe_type(args[0]) if args else "any value"
        plural = {"a number": "numbers", "an integer": "integers", "text": "texts"}
        return f"a list of {plural.get(inner, inner)}"
    if origin is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def type_name(tp: Any) -> str:
    """A short spelling of a type annotation, as ``earmark models NAME`` lists it
    (``list[int]``, ``int | None``, ``'rbf' | 'linear'``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " | ".join(repr(a) if isinstance(a, str) else str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin in (list, tuple, dict):
        inner = ", ".join(type_name(a) for a in args if a is not ...)
        return f"{origin.__name__}[{inner}]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def _takes_bool(tp: Any) -> bool:
    if tp is bool or tp is Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return any(isinstance(a, bool) for a in args)
    return origin in (typing.Union, types.UnionType) and any(_takes_bool(a) for a in args)


def check_value(tp: Any, value: Any, key: str) -> Any:
    """``value`` converted to the type annotation ``tp`` (``"0.5"`` -> ``0.5`` for a number,
    a list for a tuple), or :class:`SettingsError` naming ``key``. ``true`` is not a number."""
    from pydantic import TypeAdapter, ValidationError

    if isinstance(value, bool) and not _takes_bool(tp):
        raise SettingsError(key, f"expected {describe_type(tp)}, got {value!r}")
    try:
        out = TypeAdapter(tp).validate_python(value)
    except ValidationError:
        raise SettingsError(key, f"expected {describe_type(tp)}, got {value!r}") from None
    return list(out) if isinstance(out, tuple) else out


def check_params(model: str, params: Mapping[str, Any], *, prefix: str = "params") -> dict:
    """``params`` checked against model ``model``'s declared hyper-parameters and converted
    to their types. An unknown name or a value of the wrong type raises
    :class:`SettingsError` naming ``prefix.name``. Returns the converted values (the
    defaults are not added)."""
    spec = registry.get(model)
    if not isinstance(params, Mapping):
        raise SettingsError(prefix, f"expected a mapping of NAME: VALUE, got {params!r}")
    known = ", ".join(p.name for p in spec.params) or "none"
    out = {}
    for key, value in params.items():
        param = spec.param(str(key))
        if param is None:
            raise SettingsError(
                f"{prefix}.{key}", f"unknown hyper-parameter of {model} (known: {known})"
            )
        out[str(key)] = check_value(param.type, value, f"{prefix}.{key}")
    return out


def check_section(cls: type, values: Mapping[str, Any], *, prefix: str) -> Any:
    """An instance of the settings dataclass ``cls`` from ``values``, every field checked
    against its annotation: unknown keys, wrong types and values its own checks refuse are
    one :class:`SettingsError` naming ``prefix.key``."""
    if not isinstance(values, Mapping):
        raise SettingsError(prefix, f"expected a mapping of settings, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    converted = {}
    for key, value in values.items():
        if key not in hints:
            raise SettingsError(f"{prefix}.{key}", f"unknown setting (known: {', '.join(names)})")
        converted[key] = check_value(hints[key], value, f"{prefix}.{key}")
        if isinstance(converted[key], list) and typing.get_origin(hints[key]) is tuple:
            converted[key] = tuple(converted[key])
    try:
        return cls(**converted)
    except ParameterError as exc:
        raise SettingsError(prefix, str(exc)) from None
