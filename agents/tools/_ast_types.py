"""Annotation expressions (``ast`` nodes) to JSON Schema, without evaluating anything.

Tool source uploaded over the API is untrusted and runs later in a sandbox, so its schema is
derived from the syntax tree alone: names are recognised by spelling (``List``,
``typing.List`` and ``list`` alike), and classes defined in the same source (an ``Enum``, a
``TypedDict``, a ``msgspec.Struct`` or a dataclass) become enums and nested objects. The
result matches what :mod:`agents.tools._py_types` gives for the same annotations at run time.
Docstring types such as ``(Optional[str])`` go through here too.
"""

from __future__ import annotations

import ast

from agents.tools import _jsontypes as js
from agents.tools._docstring import parse_docstring
from agents.tools._jsontypes import JsonSchema

_SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
_ANY = frozenset({"Any", "object"})
_NULL = frozenset({"None", "NoneType"})
_ARRAYS = frozenset(
    {
        "list",
        "List",
        "Sequence",
        "MutableSequence",
        "Iterable",
        "Collection",
        "set",
        "Set",
        "frozenset",
        "FrozenSet",
        "AbstractSet",
        "MutableSet",
        "deque",
        "Deque",
    }
)
_TUPLES = frozenset({"tuple", "Tuple"})
_MAPPINGS = frozenset(
    {"dict", "Dict", "Mapping", "MutableMapping", "OrderedDict", "DefaultDict", "defaultdict"}
)
_WRAPPERS = frozenset({"Required", "NotRequired", "ReadOnly", "Final"})
_ENUM_BASES = frozenset({"Enum", "StrEnum", "IntEnum", "Flag", "IntFlag"})
_RECORD_BASES = frozenset({"TypedDict", "Struct"})


def dotted_name(node: ast.expr) -> str | None:
    """The last component of a ``Name`` or ``Attribute`` (``typing.List`` → ``List``)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _description(meta: ast.expr) -> str | None:
    """A description from ``Annotated`` metadata: a string or ``Meta(description=...)``."""
    if isinstance(meta, ast.Constant) and isinstance(meta.value, str):
        return meta.value
    if isinstance(meta, ast.Call):
        for keyword in meta.keywords:
            value = keyword.value
            if keyword.arg == "description" and isinstance(value, ast.Constant):
                return value.value if isinstance(value.value, str) else None
    return None


class AstTypeMapper:
    """Maps annotation nodes to JSON Schema, collecting warnings about what it cannot map.

    Args:
        classes: Top-level classes of the source, by name, for enums and nested objects.
        warnings: The list that receives human-readable warnings.
    """

    def __init__(self, classes: dict[str, ast.ClassDef], warnings: list[str]) -> None:
        self._classes = classes
        self._warnings = warnings
        self._active: set[str] = set()

    def from_text(self, text: str, where: str) -> JsonSchema:
        """Map a type written as text (a string annotation or a docstring's ``(type)``)."""
        try:
            node = ast.parse(text.strip(), mode="eval").body
        except SyntaxError:
            self._warnings.append(f"{where}: cannot read the type {text!r}; it accepts any value")
            return {}
        return self.map(node, where)

    def map(self, node: ast.expr | None, where: str) -> JsonSchema:
        """Map one annotation node; ``None`` (no annotation) accepts anything."""
        if node is None:
            return {}
        if isinstance(node, ast.Constant):
            if node.value is None:
                return js.scalar("null")
            if isinstance(node.value, str):
                return self.from_text(node.value, where)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return js.union([self.map(node.left, where), self.map(node.right, where)])
        elif isinstance(node, ast.Subscript):
            return self._generic(node, where)
        else:
            name = dotted_name(node)
            if name is not None:
                return self._named(name, where)
        return self._unknown(ast.unparse(node), where)

    def _unknown(self, text: str, where: str) -> JsonSchema:
        self._warnings.append(f"{where}: type {text} has no JSON Schema form; it accepts any value")
        return {}

    def _named(self, name: str, where: str) -> JsonSchema:
        if name in _SCALARS:
            return js.scalar(_SCALARS[name])
        if name in _ANY:
            return {}
        if name in _NULL:
            return js.scalar("null")
        if name in _ARRAYS or name in _TUPLES:
            return js.array(None)
        if name in _MAPPINGS:
            return js.mapping(None)
        if name in js.FORMATS:
            return {"type": "string", "format": js.FORMATS[name]}
        if name in self._classes:
            return self._class(self._classes[name], where)
        return self._unknown(name, where)

    def _generic(self, node: ast.Subscript, where: str) -> JsonSchema:
        name = dotted_name(node.value)
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if name is None or not args:  # ``tuple[()]`` and the like: as if unsubscripted
            return self.map(node.value, where)
        if name in ("Optional", "Union"):
            return js.union([self.map(arg, where) for arg in args])
        if name == "Literal":
            try:
                values = [ast.literal_eval(arg) for arg in args]
            except ValueError:
                return self._unknown(ast.unparse(node), where)
            return js.enum_of(values)
        if name == "Annotated":
            described = [text for text in map(_description, args[1:]) if text]
            base = self.map(args[0], where)
            return js.with_description(base, described[0] if described else None)
        if name in _WRAPPERS:
            return self.map(args[0], where)
        if name in _ARRAYS:
            return js.array(self.map(args[0], where))
        if name in _TUPLES:
            if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is ...:
                return js.array(self.map(args[0], where))
            return js.fixed_tuple([self.map(arg, where) for arg in args])
        if name in _MAPPINGS:
            return js.mapping(self.map(args[1], where) if len(args) == 2 else None)
        return self._unknown(ast.unparse(node), where)

    def _class(self, node: ast.ClassDef, where: str) -> JsonSchema:
        bases = {dotted_name(base) for base in node.bases}
        if bases & _ENUM_BASES:
            return self._enum(node, where)
        decorators = {
            dotted_name(item.func if isinstance(item, ast.Call) else item)
            for item in node.decorator_list
        }
        if not (bases & _RECORD_BASES or "dataclass" in decorators):
            return self._unknown(node.name, where)
        if node.name in self._active:
            return {"type": "object"}  # a recursive type: describe the inner level loosely
        self._active.add(node.name)
        try:
            return self._record(node, where)
        finally:
            self._active.discard(node.name)

    def _enum(self, node: ast.ClassDef, where: str) -> JsonSchema:
        values: list[object] = []
        for statement in node.body:
            if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
                try:
                    values.append(ast.literal_eval(statement.value))
                except ValueError:
                    return self._unknown(f"{node.name} (an enum with computed values)", where)
        return js.enum_of(values)

    def _record(self, node: ast.ClassDef, where: str) -> JsonSchema:
        total = not any(
            keyword.arg == "total"
            and isinstance(keyword.value, ast.Constant)
            and keyword.value.value is False
            for keyword in node.keywords
        )
        docs = parse_docstring(ast.get_docstring(node)).params
        properties: dict[str, JsonSchema] = {}
        required: list[str] = []
        for statement in node.body:
            if not isinstance(statement, ast.AnnAssign) or not isinstance(
                statement.target, ast.Name
            ):
                continue
            annotation = statement.annotation
            if dotted_name(annotation) == "ClassVar" or (
                isinstance(annotation, ast.Subscript)
                and dotted_name(annotation.value) == "ClassVar"
            ):
                continue
            field = statement.target.id
            schema = self.map(annotation, f"{where}, field {field!r}")
            doc = docs.get(field)
            properties[field] = js.with_description(schema, doc.description if doc else None)
            wrapper = (
                dotted_name(annotation.value) if isinstance(annotation, ast.Subscript) else None
            )
            if wrapper == "Required" or (
                statement.value is None and total and wrapper != "NotRequired"
            ):
                required.append(field)
        return js.obj(properties, required)


__all__ = ("AstTypeMapper", "dotted_name")
