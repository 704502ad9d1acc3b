"""Checks the arguments a model sent against a tool's JSON Schema.

Every problem is a sentence the agent runtime can hand back to the model as the tool's error:
it names the argument, says what arrived and what to send instead. Only the JSON Schema that
:mod:`agents.tools.schema` produces is understood (``type``, ``enum``, ``items``,
``prefixItems``, ``properties``, ``required``, ``additionalProperties``, ``anyOf``).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from agents.tools._jsontypes import JsonSchema, json_type_of

_MAX_ITEM_PROBLEMS = 5
_PHRASES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a JSON array",
    "object": "a JSON object",
    "null": "null",
}


def _show(value: object) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _got(value: object) -> str:
    kind = json_type_of(value)
    if kind in ("array", "object"):
        return f"{_PHRASES[kind]}"
    if kind is None:
        return type(value).__name__
    return f"{kind} {_show(value)}" if kind != "null" else "null"


def _matches(kind: str, value: object) -> bool:
    actual = json_type_of(value)
    return actual == kind or (kind == "number" and actual == "integer")


def _hint(kind: str, value: object) -> str:
    """A concrete suggestion for the common near-misses models make."""
    if isinstance(value, str):
        text = value.strip()
        if kind in ("integer", "number"):
            try:
                number = json.loads(text)
            except ValueError:
                number = None
            if json_type_of(number) in ("integer", "number") and not isinstance(number, bool):
                return f"; send {text} without quotes"
        if kind == "boolean" and text.lower() in ("true", "false"):
            return f"; send {text.lower()} without quotes"
        if kind in ("array", "object") and text[:1] in "[{":
            return "; send the JSON value itself, not a string holding JSON"
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return f"; send {int(value)}"
    return ""


def _check(schema: JsonSchema, value: object, path: str, problems: list[str]) -> None:
    if "anyOf" in schema:
        options: list[JsonSchema] = schema["anyOf"]
        for option in options:
            attempt: list[str] = []
            _check(option, value, path, attempt)
            if not attempt:
                return
        kinds = [_PHRASES.get(str(option.get("type")), "another shape") for option in options]
        problems.append(f"argument '{path}' must be {' or '.join(kinds)}, not {_got(value)}")
        return
    expected = schema.get("type")
    kinds = [expected] if isinstance(expected, str) else list(expected or [])
    if kinds and not any(_matches(kind, value) for kind in kinds):
        want = " or ".join(_PHRASES.get(kind, kind) for kind in kinds)
        problems.append(
            f"argument '{path}' must be {want}, not {_got(value)}{_hint(kinds[0], value)}"
        )
        return
    if "enum" in schema:
        allowed: list[Any] = schema["enum"]
        if not any(json_type_of(value) == json_type_of(a) and value == a for a in allowed):
            choices = ", ".join(_show(a) for a in allowed)
            problems.append(f"argument '{path}' must be one of {choices}; got {_show(value)}")
        return
    if isinstance(value, list):
        _check_items(schema, value, path, problems)
    elif isinstance(value, dict):
        _check_object(schema, value, path, problems)


def _check_items(schema: JsonSchema, value: list[Any], path: str, problems: list[str]) -> None:
    prefix: list[JsonSchema] = schema.get("prefixItems", [])
    if prefix and len(value) != len(prefix):
        problems.append(f"argument '{path}' must be an array of exactly {len(prefix)} items")
        return
    found: list[str] = []
    for index, item in enumerate(value):
        item_schema = prefix[index] if prefix else schema.get("items")
        if item_schema is not None:
            _check(item_schema, item, f"{path}[{index}]", found)
    problems.extend(found[:_MAX_ITEM_PROBLEMS])
    if len(found) > _MAX_ITEM_PROBLEMS:
        problems.append(f"...and {len(found) - _MAX_ITEM_PROBLEMS} more problems in '{path}'")


def _check_object(
    schema: JsonSchema, value: dict[str, Any], path: str, problems: list[str]
) -> None:
    properties: dict[str, JsonSchema] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            problems.append(f"argument '{path}' is missing its required field '{name}'")
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            _check(properties[key], item, f"{path}.{key}", problems)
        elif isinstance(extra, dict):
            _check(extra, item, f"{path}.{key}", problems)
        elif extra is False:
            problems.append(
                f"argument '{path}' has no field '{key}'; its fields are {', '.join(properties)}"
            )


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_arguments(tool: str, parameters: JsonSchema, arguments: object) -> list[str]:
    """Problems with ``arguments`` for the tool ``tool`` whose parameters are ``parameters``.

    A ``null`` for an optional argument counts as leaving it out.
    """
    if not isinstance(arguments, Mapping):
        got = _got(arguments)
        return [f"the arguments of {tool} must be a JSON object of named arguments, not {got}"]
    properties: dict[str, JsonSchema] = parameters.get("properties", {})
    required: list[str] = parameters.get("required", [])
    problems: list[str] = []
    for name in required:
        if name not in arguments:
            kind = _PHRASES.get(str(properties.get(name, {}).get("type")), "a value")
            about = properties.get(name, {}).get("description")
            tail = f" ({about})" if about else ""
            problems.append(f"missing required argument '{name}': send it as {kind}{tail}")
    for name, value in arguments.items():
        if name not in properties:
            known = list(properties)
            takes = ", ".join(f"'{n}'" for n in known) if known else "no arguments"
            problems.append(
                f"unknown argument '{name}'{_suggest(str(name), known)}: {tool} takes {takes}"
            )
        elif value is None and name not in required:
            continue
        else:
            _check(properties[name], value, name, problems)
    return problems


__all__ = ("check_arguments",)
