"""The values of hostile cases: nasty strings, raw bodies, values built from a schema.

Private to :mod:`tests.api.hostile`.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Mapping
from typing import Any

__all__ = ("CONTENT_TYPES", "NASTY_STRINGS", "RAW_BODIES", "Values", "deref", "dumps", "nest_into")

_MAX_DEPTH = 6  # of schema recursion when building a valid value

# Strings that have broken parsers, databases, key builders and loggers before.
NASTY_STRINGS: tuple[str, ...] = (
    "",
    " ",
    "\x00",
    "null",
    "None",
    "-1",
    "0" * 40,
    "../../../../etc/passwd",
    "..",
    "%2e%2e%2f",
    "a/b",
    "{agent}",
    "{a}:b*c?[d]",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "\u202eevil\u202c",
    "🙂" * 50,
    "\ud7ff\ue000\uffff",
    "\U0001d573\U0001d58a\U0001d591\U0001d591\U0001d594",  # "Hello" in Fraktur
    "\r\nX-Injected: 1",
    "\t\n\x0b\x0c\r",
    "agent-00000000-0000-0000-0000-000000000000",
    "block-" + "f" * 200,
)
_HUGE_STRING = 200_000
_DEEP = 20_000

CONTENT_TYPES = (
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
    "application/xml",
    "",
)
RAW_BODIES = (
    lambda: b"",
    lambda: b"{",
    lambda: b'{"a": }',
    lambda: b"\xff\xfe\x00\x01",
    lambda: b"[" * _DEEP + b"]" * _DEEP,
    lambda: b'{"a":' * _DEEP + b"1" + b"}" * _DEEP,
    lambda: b"NaN",
    lambda: b'{"x": NaN, "y": Infinity}',
    lambda: b'"just a string"',
    lambda: b"1e999999",
    lambda: b'{"a": "\\ud800"}',
    lambda: b'{"a": 1, "a": 2}',
    lambda: b"null",
    lambda: b" " * 10_000,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")


def nest_into(body: dict[str, Any], rng: random.Random) -> bytes:
    """``body`` with one field replaced by arrays nested ``_DEEP`` deep (json would recurse)."""
    key = rng.choice(sorted(body))
    marker = "\x01DEEP\x01"
    encoded = dumps({**body, key: marker}).decode()
    deep = "[" * _DEEP + "]" * _DEEP
    return encoded.replace(json.dumps(marker, ensure_ascii=False), deep, 1).encode()


class Values:
    """Values for one case: valid ones from a schema, and hostile ones."""

    def __init__(self, document: Mapping[str, Any], rng: random.Random) -> None:
        self.document = document
        self.rng = rng

    def valid(self, schema: Mapping[str, Any] | None, depth: int = 0) -> Any:
        rng = self.rng
        schema = deref(self.document, schema or {})
        if schema.get("enum"):
            return rng.choice(schema["enum"])
        if "const" in schema:
            return schema["const"]
        for key in ("oneOf", "anyOf"):
            if schema.get(key):
                options = [o for o in schema[key] if deref(self.document, o).get("type") != "null"]
                return self.valid(rng.choice(options or schema[key]), depth + 1)
        if schema.get("allOf"):
            return self.valid(schema["allOf"][0], depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = rng.choice([k for k in kind if k != "null"] or kind)
        if kind == "object" or "properties" in schema:
            if depth > _MAX_DEPTH:
                return {}
            required = set(schema.get("required", ()))
            return {
                name: self.valid(sub, depth + 1)
                for name, sub in schema.get("properties", {}).items()
                if name in required or rng.random() < 0.5
            }
        if kind == "array":
            if depth > _MAX_DEPTH:
                return []
            return [self.valid(schema.get("items"), depth + 1) for _ in range(rng.randint(1, 2))]
        if kind == "integer":
            return rng.randint(1, 10)
        if kind == "number":
            return rng.choice([0.5, 1.0, 3])
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "null":
            return None
        if kind == "string":
            return _plain_string(rng)
        return _plain_string(rng)

    def hostile_value(self) -> Any:
        rng = self.rng
        return rng.choice(
            [
                lambda: None,
                lambda: rng.choice(NASTY_STRINGS),
                lambda: "x" * _HUGE_STRING,
                lambda: "\U0001f600" * (_HUGE_STRING // 4),
                lambda: -1,
                lambda: 0,
                lambda: 2**70,
                lambda: -(2**63) - 1,
                lambda: 1e308,
                lambda: True,
                list,
                lambda: [None] * 1000,
                dict,
                lambda: {"": None},
                lambda: ["x" * 100] * 2000,
                lambda: {str(i): i for i in range(2000)},
            ]
        )()

    def query_values(self, name: str, schema: Mapping[str, Any]) -> list[tuple[str, str]]:
        value = self.valid(schema)
        if isinstance(value, list):
            return [(name, _query_text(v)) for v in value]
        if value is None:
            return []
        return [(name, _query_text(value))]

    def hostile_query(self, parameters: tuple[Mapping[str, Any], ...]) -> list[tuple[str, str]]:
        rng = self.rng
        names = [str(p["name"]) for p in parameters if p.get("in") == "query"] or ["limit"]
        name = rng.choice(names)
        value = rng.choice(
            [
                *NASTY_STRINGS,
                "-1",
                "0",
                "99999999999999999999999",
                "1e400",
                "nan",
                "true",
                "[]",
                "x" * 20_000,
            ]
        )
        # Clients refuse URLs over 64 KiB: long values go once.
        repeated = [(name, value)] * (1 if len(value) > 100 else rng.choice([1, 1, 2, 50]))
        return [*repeated, (rng.choice(NASTY_STRINGS) or "q", "1")]


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _plain_string(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 12)))


def deref(document: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    """``node`` with a local ``$ref`` followed (recursively)."""
    seen = 0
    while isinstance(node, Mapping) and "$ref" in node and seen < 32:
        target: Any = document
        for part in str(node["$ref"]).lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        node, seen = target, seen + 1
    return node
