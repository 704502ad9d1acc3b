"""Tool schemas derived from typed signatures and Google-style docstrings.

One generator serves every tool: the base tools (Python functions), custom tools named by
import path in YAML workflows (:func:`schema_from_function`), and custom tools whose source
code arrives over the REST API (:func:`schema_from_source`, which reads the syntax tree and
never executes the untrusted code; it runs later in a sandbox). Both give the same
:class:`ToolSchema` for the same function.

Parameters the runtime injects (``agent_state``, ``self``, ``ctx``, or anything annotated
``AgentState``) are left out of the schema. The description is the docstring's summary, and
each parameter's description comes from its ``Args:`` entry; an unannotated parameter falls
back to the docstring's ``(type)``. What looks wrong but still yields a usable schema (an
undocumented parameter, a documented one that does not exist, a missing docstring, a type
with no JSON form) is collected in :attr:`ToolSchema.warnings`.

Errors::

    ValueError
     └── ToolSchemaError   the function cannot be a tool (bad name, *args, **kwargs,
                           positional-only parameter, source that does not parse)
"""

from __future__ import annotations

import ast
import copy
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from agents.tools import _jsontypes as js
from agents.tools._ast_types import AstTypeMapper, dotted_name
from agents.tools._docstring import parse_docstring
from agents.tools._jsontypes import JsonSchema
from agents.tools._py_types import PyTypeMapper
from agents.tools._validate import check_arguments
from storage.errors import UserError

DEFAULT_INJECTED: frozenset[str] = frozenset({"agent_state", "self", "ctx"})
"""Parameter names the runtime supplies itself, never shown to the model."""

_INJECTED_TYPES = frozenset({"AgentState"})
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ToolSchemaError(UserError, ValueError):
    """A function cannot become a tool; the message says what to change."""


class ToolSchema(msgspec.Struct, frozen=True, kw_only=True):
    """What the model is told about one tool.

    Attributes:
        name: The tool's name (the function's name), valid for OpenAI's function calling.
        description: The docstring's summary paragraph, whitespace-normalised.
        parameters: A JSON Schema object: ``type``, ``properties`` and ``required``.
        warnings: Problems worth fixing that did not stop the schema being built.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    warnings: tuple[str, ...] = ()

    def json_schema(self) -> dict[str, Any]:
        """Letta's tool ``json_schema``: ``{"name", "description", "parameters"}``."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": copy.deepcopy(self.parameters),
        }

    def to_openai(self) -> dict[str, Any]:
        """The entry for the ``tools`` list of an OpenAI chat completion request."""
        return {"type": "function", "function": self.json_schema()}


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    schema: JsonSchema
    required: bool
    default: Any = js.NO_DEFAULT


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ToolSchemaError(
            f"tool name {name!r} is not valid for function calling (it must match "
            f"^[a-zA-Z0-9_-]{{1,64}}$): rename the function using only ASCII letters, digits, "
            f"'_' and '-', at most 64 characters"
        )


def _assemble(
    name: str, doc: str | None, params: list[_Param], skipped: set[str], warnings: list[str]
) -> ToolSchema:
    _check_name(name)
    parsed = parse_docstring(doc)
    if not parsed.summary and not parsed.params:
        warnings.append(
            f"tool {name!r} has no docstring: the model gets no description; add a Google-style "
            f"docstring with a summary line and an Args: section"
        )
    properties: dict[str, JsonSchema] = {}
    required: list[str] = []
    for param in params:
        schema = param.schema
        entry = parsed.params.get(param.name)
        if entry is None:
            if parsed.summary or parsed.params:
                warnings.append(
                    f"parameter {param.name!r} of tool {name!r} is not documented in the "
                    f"docstring's Args: section"
                )
        elif js.is_unconstrained(schema) and entry.type_text:
            documented = AstTypeMapper({}, warnings).from_text(
                entry.type_text, f"parameter {param.name!r}"
            )
            schema = {**documented, **schema}
        if entry is not None and entry.description:
            schema = {**schema, "description": entry.description}
        if param.default is not js.NO_DEFAULT and param.default is not None:
            schema = {**schema, "default": param.default}
        properties[param.name] = schema
        if param.required:
            required.append(param.name)
    for extra in parsed.params.keys() - {param.name for param in params} - skipped:
        warnings.append(
            f"the docstring of tool {name!r} documents {extra!r}, which is not a parameter"
        )
    parameters: JsonSchema = {"type": "object", "properties": properties, "required": required}
    return ToolSchema(
        name=name,
        description=parsed.summary,
        parameters=parameters,
        warnings=tuple(warnings),
    )


def _variadic_error(tool: str, text: str) -> ToolSchemaError:
    return ToolSchemaError(
        f"tool {tool!r} takes {text}: the model passes named JSON arguments, so declare each "
        f"argument as a named parameter instead"
    )


def _positional_error(tool: str, param: str) -> ToolSchemaError:
    return ToolSchemaError(
        f"parameter {param!r} of tool {tool!r} is positional-only: tool arguments are passed "
        f"by name, so remove the '/' from the signature"
    )


def _resolve_hints(func: Callable[..., Any], raw: dict[str, object]) -> dict[str, object]:
    """Resolve annotations one by one, so one unresolvable name does not spoil the rest."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # any failure of evaluating annotations: retry per parameter below
        pass
    resolved: dict[str, object] = {}
    nsobj: Any = inspect.unwrap(func)
    for name, annotation in raw.items():
        holder = types.SimpleNamespace(
            __annotations__={name: annotation}, __globals__=getattr(nsobj, "__globals__", {})
        )
        try:
            resolved[name] = typing.get_type_hints(holder, include_extras=True)[name]
        except Exception:  # an unresolvable name: read the annotation as syntax instead
            resolved[name] = annotation
    return resolved


def _type_name(text: str) -> str:
    """``'"agents.AgentState"'`` → ``AgentState`` (quotes nest under the future import)."""
    text = text.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    return text.rsplit(".", 1)[-1]


def _injected_annotation(annotation: object) -> bool:
    if isinstance(annotation, str):
        return _type_name(annotation) in _INJECTED_TYPES
    return getattr(annotation, "__name__", None) in _INJECTED_TYPES


def schema_from_function(
    func: Callable[..., Any], *, injected: Iterable[str] = DEFAULT_INJECTED
) -> ToolSchema:
    """Build a tool schema from a function's signature, type hints and docstring.

    Args:
        func: The tool function (sync or async). Annotations may be strings, as under
            ``from __future__ import annotations``; names that cannot be resolved are read
            by spelling.
        injected: Parameter names the runtime supplies, left out of the schema.

    Returns:
        The schema; :attr:`ToolSchema.warnings` lists what is worth fixing.

    Raises:
        ToolSchemaError: The name is not a valid tool name, or the signature has
            ``*args``, ``**kwargs`` or positional-only parameters.
    """
    name = getattr(func, "__name__", None)
    if not isinstance(name, str):
        raise ToolSchemaError(f"{func!r} has no __name__: define the tool with def")
    _check_name(name)
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ToolSchemaError(f"cannot read the signature of tool {name!r}: {exc}") from exc
    skip = frozenset(injected)
    skipped: set[str] = set(skip)
    kept: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        if param.name in skip or _injected_annotation(param.annotation):
            skipped.add(param.name)
        elif param.kind is param.VAR_POSITIONAL:
            raise _variadic_error(name, f"*{param.name}")
        elif param.kind is param.VAR_KEYWORD:
            raise _variadic_error(name, f"**{param.name}")
        elif param.kind is param.POSITIONAL_ONLY:
            raise _positional_error(name, param.name)
        else:
            kept.append(param)
    raw = {p.name: p.annotation for p in kept if p.annotation is not inspect.Parameter.empty}
    hints = _resolve_hints(func, raw) if raw else {}
    warnings: list[str] = []
    mapper = PyTypeMapper(warnings)
    params = [
        _Param(
            name=p.name,
            schema=mapper.map(hints[p.name], f"parameter {p.name!r}") if p.name in hints else {},
            required=p.default is inspect.Parameter.empty,
            default=js.NO_DEFAULT
            if p.default is inspect.Parameter.empty
            else js.json_literal(p.default),
        )
        for p in kept
    ]
    return _assemble(name, inspect.getdoc(func), params, skipped, warnings)


def _pick_function(tree: ast.Module, name: str | None) -> ast.FunctionDef | ast.AsyncFunctionDef:
    functions = [
        node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    if name is not None:
        for node in reversed(functions):
            if node.name == name:
                return node
        found = ", ".join(node.name for node in functions) or "none"
        raise ToolSchemaError(
            f"the source defines no top-level function named {name!r} (functions found: {found})"
        )
    if not functions:
        raise ToolSchemaError("the source defines no top-level function: define the tool with def")
    return functions[-1]


def _literal_default(node: ast.expr | None) -> Any:
    if node is None:
        return js.NO_DEFAULT
    try:
        return js.json_literal(ast.literal_eval(node))
    except ValueError:
        return js.NO_DEFAULT


def schema_from_source(
    source: str, *, name: str | None = None, injected: Iterable[str] = DEFAULT_INJECTED
) -> ToolSchema:
    """Build a tool schema from Python source code without executing it.

    Args:
        source: The module source holding the tool function (as Letta's
            ``upsert_from_function`` sends it).
        name: The function to use; by default the only (or the last) top-level function.
        injected: Parameter names the runtime supplies, left out of the schema.

    Returns:
        The schema; :attr:`ToolSchema.warnings` lists what is worth fixing.

    Raises:
        ToolSchemaError: The source does not parse (the message names the line), has no such
            function, or the function cannot be a tool (see :func:`schema_from_function`).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ToolSchemaError(
            f"the tool source has a syntax error on line {exc.lineno}: {exc.msg}"
        ) from exc
    func = _pick_function(tree, name)
    tool = func.name
    _check_name(tool)
    skip = frozenset(injected)
    args = func.args
    if args.vararg is not None:
        raise _variadic_error(tool, f"*{args.vararg.arg}")
    if args.kwarg is not None:
        raise _variadic_error(tool, f"**{args.kwarg.arg}")
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    pairs = list(zip(positional, defaults, strict=True))
    pairs += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    warnings: list[str] = []
    mapper = AstTypeMapper(classes, warnings)
    skipped: set[str] = set(skip)
    params: list[_Param] = []
    for arg, default in pairs:
        annotation = arg.annotation
        type_name = None
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            type_name = _type_name(annotation.value)
        elif annotation is not None:
            type_name = dotted_name(annotation)
        if arg.arg in skip or type_name in _INJECTED_TYPES:
            skipped.add(arg.arg)
            continue
        if arg in args.posonlyargs:
            raise _positional_error(tool, arg.arg)
        params.append(
            _Param(
                name=arg.arg,
                schema=mapper.map(annotation, f"parameter {arg.arg!r}"),
                required=default is None,
                default=_literal_default(default),
            )
        )
    return _assemble(tool, ast.get_docstring(func), params, skipped, warnings)


def validate_arguments(schema: ToolSchema, arguments: dict[str, Any]) -> list[str]:
    """Check the arguments a model sent for a tool call.

    Args:
        schema: The tool's schema.
        arguments: The decoded JSON arguments of the call.

    Returns:
        One human-readable problem per mistake, each naming the argument and what to send
        instead (an empty list when the call is valid). ``null`` for an optional argument
        counts as leaving it out, so the caller should drop such arguments before calling.
    """
    return check_arguments(schema.name, schema.parameters, arguments)


__all__ = (
    "DEFAULT_INJECTED",
    "ToolSchema",
    "ToolSchemaError",
    "schema_from_function",
    "schema_from_source",
    "validate_arguments",
)
