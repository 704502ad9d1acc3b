"""JSON Schema fragments shared by the runtime-type and the AST annotation mappers.

Both mappers must produce the same schema for the same annotation (a tool registered from a
function and the same tool uploaded as source code look alike to the model), so the shapes
that are not a one-liner live here.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from typing import Any, TypeAlias

JsonSchema: TypeAlias = dict[str, Any]
"""A JSON Schema fragment (JSON values all the way down)."""

NO_DEFAULT: Any = object()
"""Marks a parameter default that cannot be written as a JSON literal."""

_META_KEYS = frozenset({"description", "default"})


# JSON Schema's type names of Python's JSON values, tried in order (a bool is an int too).
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def json_type_of(value: object) -> str | None:
    """The JSON Schema type name of a JSON literal, or None for anything else."""
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), None)


def json_literal(value: object) -> Any:
    """``value`` as a JSON value (enum members by value, tuples as lists) or ``NO_DEFAULT``."""
    if isinstance(value, enum.Enum):
        return json_literal(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else NO_DEFAULT
    if isinstance(value, list | tuple):
        items = [json_literal(item) for item in value]
        return NO_DEFAULT if any(item is NO_DEFAULT for item in items) else items
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        values = {key: json_literal(item) for key, item in value.items()}
        return NO_DEFAULT if any(item is NO_DEFAULT for item in values.values()) else values
    return NO_DEFAULT


def is_unconstrained(schema: JsonSchema) -> bool:
    """True when ``schema`` accepts any value (only annotations such as a description)."""
    return set(schema) <= _META_KEYS


def scalar(type_name: str) -> JsonSchema:
    """``{"type": type_name}``."""
    return {"type": type_name}


def array(items: JsonSchema | None) -> JsonSchema:
    """An array, with an item schema when the item type constrains anything."""
    if items is None or is_unconstrained(items):
        return {"type": "array"}
    return {"type": "array", "items": items}


def fixed_tuple(items: list[JsonSchema]) -> JsonSchema:
    """A fixed-length tuple such as ``tuple[int, str]``."""
    return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}


def mapping(values: JsonSchema | None) -> JsonSchema:
    """A JSON object with arbitrary keys, with a value schema when it constrains anything."""
    if values is None or is_unconstrained(values):
        return {"type": "object"}
    return {"type": "object", "additionalProperties": values}


def union(members: Iterable[JsonSchema]) -> JsonSchema:
    """A union; ``None`` members are dropped (``Optional[X]`` is described as ``X``)."""
    unique: list[JsonSchema] = []
    saw_null = False
    for member in members:
        if member == {"type": "null"}:
            saw_null = True
            continue
        if is_unconstrained(member):
            return {}
        if member not in unique:
            unique.append(member)
    if not unique:
        return {"type": "null"} if saw_null else {}
    if len(unique) == 1:
        return unique[0]
    return {"anyOf": unique}


def enum_of(values: Iterable[object]) -> JsonSchema:
    """An ``enum`` of JSON literals, typed when all values share one JSON type.

    ``None`` is left out, as ``Literal["a", None]`` is an optional ``Literal["a"]``.
    """
    chosen: list[Any] = []
    for value in values:
        literal = json_literal(value)
        if literal is None or literal is NO_DEFAULT:
            continue
        # ``True == 1`` in Python, so compare types too.
        if any(type(seen) is type(literal) and seen == literal for seen in chosen):
            continue
        chosen.append(literal)
    types = {json_type_of(value) for value in chosen}
    if len(types) == 1:
        return {"type": types.pop(), "enum": chosen}
    return {"enum": chosen}


def obj(properties: dict[str, JsonSchema], required: list[str]) -> JsonSchema:
    """A JSON object with named properties."""
    schema: JsonSchema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def with_description(schema: JsonSchema, description: str | None) -> JsonSchema:
    """``schema`` with a ``description`` key unless it already has one or there is none."""
    if not description or "description" in schema:
        return schema
    return {**schema, "description": description}


FORMATS: dict[str, str] = {"datetime": "date-time", "date": "date", "time": "time", "UUID": "uuid"}
"""Type names that travel as strings with a JSON Schema ``format``."""

__all__ = (
    "FORMATS",
    "NO_DEFAULT",
    "JsonSchema",
    "array",
    "enum_of",
    "fixed_tuple",
    "is_unconstrained",
    "json_literal",
    "json_type_of",
    "mapping",
    "obj",
    "scalar",
    "union",
    "with_description",
)
