"""The one cattrs converter of reid, and how its failures become recipe problems.

TOML already gives typed values, so structuring is strict: ``"3"`` is not an int and
``3.7`` is not silently truncated. Validators run after structuring, field by field, so
that every invalid value of a recipe is reported, not only the first of each table.
"""

from __future__ import annotations

import enum
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from reidcore.errors import RecipeProblem, did_you_mean

_TYPE_WORDS = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def describe_type(type_: Any) -> str:
    """A short human description of a field type, for "expected ..." messages."""
    if type_ in _TYPE_WORDS:
        return _TYPE_WORDS[type_]
    origin = typing.get_origin(type_)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(type_))
    if origin in (list, tuple, typing.Sequence) or origin is not None and origin.__name__ in (
            "Sequence", "list", "tuple"):
        return "an array"
    if origin is dict or attrs.has(type_):
        return "a table"
    if type_ is Path:
        return "a path string"
    return getattr(type_, "__name__", str(type_))


def _describe_value(value: Any) -> str:
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
             dict: "table"}
    return f"{kinds.get(type(value), type(value).__name__)} {value!r}"


class ExpectedError(TypeError):
    """A value of the wrong type: says what was expected and what was found."""

    def __init__(self, expected: str, value: Any):
        super().__init__(f"expected {expected}, got {_describe_value(value)}")


def _strict_int(value: Any, _type: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExpectedError("an integer", value)
    return value


def _strict_float(value: Any, _type: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExpectedError("a number", value)
    return float(value)


def _strict_bool(value: Any, _type: type) -> bool:
    if not isinstance(value, bool):
        raise ExpectedError("a boolean (true or false)", value)
    return value


def _strict_str(value: Any, _type: type) -> str:
    if not isinstance(value, str):
        raise ExpectedError("a string", value)
    return value


def _strict_path(value: Any, _type: type) -> Path:
    if not isinstance(value, str):
        raise ExpectedError("a path string", value)
    return Path(value)


def _is_literal(type_: Any) -> bool:
    return typing.get_origin(type_) is Literal


def _structure_literal(value: Any, type_: Any) -> Any:
    choices = typing.get_args(type_)
    if value in choices and type(value) in {type(c) for c in choices}:
        return value
    hint = did_you_mean(value, [str(c) for c in choices]) if isinstance(value, str) else ""
    raise ValueError(f"expected one of {', '.join(repr(c) for c in choices)}, "
                     f"got {value!r}{hint}")


def _structure_enum(value: Any, type_: type[enum.Enum]) -> enum.Enum:
    try:
        return type_(value)
    except ValueError:
        choices = [member.value for member in type_]
        hint = did_you_mean(str(value), [str(c) for c in choices])
        raise ValueError(f"expected one of {', '.join(repr(c) for c in choices)}, "
                         f"got {value!r}{hint}") from None


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(Path, _strict_path)
    converter.register_unstructure_hook(Path, str)
    converter.register_structure_hook_func(_is_literal, _structure_literal)
    converter.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _structure_enum)
    converter.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), lambda member: member.value)
    return converter


converter: cattrs.Converter = _make_converter()
"""The converter every recipe section and component config goes through."""


# --- turning failures into problems ------------------------------------------------------


def _field_names(cls: type) -> list[str]:
    return [field.name for field in attrs.fields(cls)] if attrs.has(cls) else []


def problems_from_exception(exc: BaseException, path: str) -> Iterator[RecipeProblem]:
    """Flatten a cattrs exception tree into problems with recipe paths."""
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without_notes = exc.group_exceptions()
        for sub, note in with_notes:
            if isinstance(note, AttributeValidationNote):
                yield from problems_from_exception(sub, f"{path}.{note.name}")
            elif isinstance(note, IterableValidationNote):
                yield from problems_from_exception(sub, f"{path}[{note.index}]")
            else:
                yield from problems_from_exception(sub, path)
        for sub in without_notes:
            yield from problems_from_exception(sub, path)
    elif isinstance(exc, ForbiddenExtraKeysError):
        known = _field_names(exc.cl)
        for key in sorted(exc.extra_fields):
            yield RecipeProblem(
                f"{path}.{key}",
                f"unknown key{did_you_mean(key, known)}; expected one of: {', '.join(known)}")
    elif isinstance(exc, KeyError):
        yield RecipeProblem(path, "required key is missing")
    else:
        yield RecipeProblem(path, _clean_message(exc))


def _clean_message(exc: BaseException) -> str:
    if isinstance(exc, ValueError) and len(exc.args) >= 4 and isinstance(exc.args[1],
                                                                          attrs.Attribute):
        return f"expected one of {', '.join(map(repr, exc.args[2]))}, got {exc.args[3]!r}"
    if isinstance(exc, TypeError) and len(exc.args) >= 4 and isinstance(exc.args[1],
                                                                         attrs.Attribute):
        return f"expected {describe_type(exc.args[2])}, got {_describe_value(exc.args[3])}"
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    # attrs' number validators say "'name' must be >= 1: 0"; the path already names it.
    match = re.fullmatch(r"'\w+' must be (.+): (.*)", message)
    if match:
        return f"expected a value {match.group(1)}, got {match.group(2)}"
    return message


def _validate_any(value: Any, path: str) -> Iterator[RecipeProblem]:
    """Run every attrs validator found in ``value`` (recursively), reporting each failure."""
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            field_value = getattr(value, field.name)
            field_path = f"{path}.{field.name}"
            if field.validator is not None:
                try:
                    field.validator(value, field, field_value)
                except (ValueError, TypeError) as exc:
                    yield RecipeProblem(field_path, _clean_message(exc))
                    continue
            yield from _validate_any(field_value, field_path)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _validate_any(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _validate_any(item, f"{path}.{key}")


def _validate_structurable_fields(data: dict[str, Any], cls: type, path: str,
                                  known: list[RecipeProblem]) -> list[RecipeProblem]:
    """When a table fails to structure, still check the values of its other fields, so
    that a wrong type in one key does not hide an out-of-range value in another."""
    reported = {problem.path for problem in known}
    extra: list[RecipeProblem] = []
    for field in attrs.fields(attrs.resolve_types(cls)):
        field_path = f"{path}.{field.name}"
        if field.name not in data or any(p == field_path or p.startswith(field_path + ".")
                                         or p.startswith(field_path + "[") for p in reported):
            continue
        value, problems = structure(data[field.name], field.type, field_path)
        extra += problems
        if not problems and field.validator is not None:
            try:
                field.validator(None, field, value)
            except (ValueError, TypeError) as exc:
                extra.append(RecipeProblem(field_path, _clean_message(exc)))
    return extra


def structure(data: Any, cls: type, path: str = "$") -> tuple[Any | None, list[RecipeProblem]]:
    """Structure ``data`` into ``cls``; return the object (or None) and every problem."""
    if not isinstance(data, dict) and attrs.has(cls):
        return None, [RecipeProblem(path, f"expected a table, got {_describe_value(data)}")]
    try:
        with attrs.validators.disabled():
            instance: Any = converter.structure(data, cls)
    except Exception as exc:
        problems = list(problems_from_exception(exc, path))
        if attrs.has(cls):
            problems += _validate_structurable_fields(data, cls, path, problems)
        return None, problems
    problems = list(_validate_any(instance, path))
    return (instance if not problems else None), problems


def unstructure(instance: Any) -> Any:
    """The plain-data form of a config, with ``None`` values dropped (TOML has no null)."""
    return _drop_none(converter.unstructure(instance))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    return value
