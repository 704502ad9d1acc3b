"""Resolved Python types (``typing.get_type_hints`` output) to JSON Schema.

The runtime twin of :mod:`agents.tools._ast_types`: same shapes for the same annotations, plus
what only a live object can tell (an imported ``Enum``'s values, a ``msgspec.Struct``'s
fields and renames, a ``TypedDict``'s required keys).
"""

from __future__ import annotations

import collections
import collections.abc as abc
import dataclasses
import datetime
import enum
import types
import typing
import uuid
from typing import Annotated, Any, Literal, Union

import msgspec

from agents.tools import _jsontypes as js
from agents.tools._ast_types import AstTypeMapper
from agents.tools._docstring import parse_docstring
from agents.tools._jsontypes import JsonSchema

_ARRAYS: frozenset[object] = frozenset(
    {
        list,
        set,
        frozenset,
        collections.deque,
        abc.Sequence,
        abc.MutableSequence,
        abc.Iterable,
        abc.Collection,
        abc.Set,
        abc.MutableSet,
    }
)
_MAPPINGS: frozenset[object] = frozenset(
    {dict, collections.OrderedDict, collections.defaultdict, abc.Mapping, abc.MutableMapping}
)
_WRAPPERS: frozenset[object] = frozenset({typing.Required, typing.NotRequired, typing.Final})
_SCALARS: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: bool is an int
    (int, "integer"),
    (float, "number"),
    (str, "string"),
)
_FORMATS: dict[type, str] = {  # datetime before date: a datetime is a date
    datetime.datetime: "date-time",
    datetime.date: "date",
    datetime.time: "time",
    uuid.UUID: "uuid",
}


def _description(metadata: tuple[object, ...]) -> str | None:
    for meta in metadata:
        if isinstance(meta, str):
            return meta
        if isinstance(meta, msgspec.Meta) and meta.description:
            return meta.description
    return None


class PyTypeMapper:
    """Maps resolved annotations to JSON Schema, collecting warnings about what it cannot map.

    Args:
        warnings: The list that receives human-readable warnings.
    """

    def __init__(self, warnings: list[str]) -> None:
        self._warnings = warnings
        self._active: set[type] = set()

    def map(self, tp: object, where: str) -> JsonSchema:
        """Map one annotation; unresolved string annotations are read as syntax."""
        if tp is Any or tp is object:
            return {}
        if tp is None or tp is type(None):
            return js.scalar("null")
        if isinstance(tp, str | typing.ForwardRef):
            text = tp if isinstance(tp, str) else tp.__forward_arg__
            return AstTypeMapper({}, self._warnings).from_text(text, where)
        if isinstance(tp, typing.NewType):
            return self.map(tp.__supertype__, where)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is Annotated:
            described = _description(getattr(tp, "__metadata__", ()))
            return js.with_description(self.map(args[0], where), described)
        if origin is Union or origin is types.UnionType:
            return js.union([self.map(arg, where) for arg in args])
        if origin is Literal:
            return js.enum_of(args)
        if origin in _WRAPPERS:
            return self.map(args[0], where)
        if origin in _ARRAYS or tp in _ARRAYS:
            return js.array(self.map(args[0], where) if args else None)
        if origin is tuple or tp is tuple:
            return self._tuple(args, where)
        if origin in _MAPPINGS or tp in _MAPPINGS:
            return js.mapping(self.map(args[1], where) if len(args) == 2 else None)
        if isinstance(tp, type):
            return self._class(tp, where)
        return self._unknown(tp, where)

    def _unknown(self, tp: object, where: str) -> JsonSchema:
        text = getattr(tp, "__name__", None) or repr(tp)
        self._warnings.append(f"{where}: type {text} has no JSON Schema form; it accepts any value")
        return {}

    def _tuple(self, args: tuple[object, ...], where: str) -> JsonSchema:
        if len(args) == 2 and args[1] is Ellipsis:
            return js.array(self.map(args[0], where))
        if not args or args == ((),):
            return js.array(None)
        return js.fixed_tuple([self.map(arg, where) for arg in args])

    def _class(self, tp: type, where: str) -> JsonSchema:
        # Enum before the scalars: a StrEnum is a str, an IntEnum an int.
        if issubclass(tp, enum.Enum):
            return js.enum_of(member.value for member in tp)
        for scalar_type, name in _SCALARS:
            if issubclass(tp, scalar_type):
                return js.scalar(name)
        for format_type, fmt in _FORMATS.items():
            if issubclass(tp, format_type):
                return {"type": "string", "format": fmt}
        is_record = (
            issubclass(tp, msgspec.Struct)
            or typing.is_typeddict(tp)
            or dataclasses.is_dataclass(tp)
        )
        if not is_record:
            return self._unknown(tp, where)
        if tp in self._active:
            return {"type": "object"}  # a recursive type: describe the inner level loosely
        self._active.add(tp)
        try:
            return self._record(tp, where)
        except Exception as exc:  # its own annotations do not resolve: describe it loosely
            self._warnings.append(f"{where}: cannot read the fields of {tp.__name__}: {exc}")
            return {"type": "object"}
        finally:
            self._active.discard(tp)

    def _record(self, tp: type, where: str) -> JsonSchema:
        docs = parse_docstring(tp.__doc__).params
        fields: list[tuple[str, str, object, bool]] = []  # (python name, JSON name, type, required)
        if issubclass(tp, msgspec.Struct):
            fields = [
                (f.name, f.encode_name, f.type, f.required) for f in msgspec.structs.fields(tp)
            ]
        elif typing.is_typeddict(tp):
            hints = typing.get_type_hints(tp, include_extras=True)
            required_keys: frozenset[str] = getattr(tp, "__required_keys__", frozenset())
            fields = [(name, name, hint, name in required_keys) for name, hint in hints.items()]
        elif dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp, include_extras=True)
            fields = [
                (
                    f.name,
                    f.name,
                    hints.get(f.name, Any),
                    f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
                )
                for f in dataclasses.fields(tp)
                if f.init
            ]
        properties: dict[str, JsonSchema] = {}
        required: list[str] = []
        for name, json_name, hint, is_required in fields:
            doc = docs.get(name)
            schema = self.map(hint, f"{where}, field {json_name!r}")
            properties[json_name] = js.with_description(schema, doc.description if doc else None)
            if is_required:
                required.append(json_name)
        return js.obj(properties, required)


__all__ = ("PyTypeMapper",)
