"""Workflows in YAML: shared blocks, tools, agents, routes and an entry agent.

Example::

    name: recruiting
    blocks:
      - label: company
        value: The company is called AgentOS.
    tools:
      - import: tools.py:reject          # a path relative to this file, or package.module:fn
    agents:
      - name: evaluator
        persona: You evaluate candidates.
        tools: [reject, send_message_to_agent_and_wait_for_reply]
        tool_rules:
          - {type: exit_loop, tool_name: reject}
        blocks: [company]
    routes:
      - {from: evaluator, to: outreach}
    entry: evaluator

Loading checks everything before anything is applied; each problem names the file, the path
inside it (``agents[1].tool_rules[0].tool_name``) and what is wrong. Applying is idempotent by
name: re-running a workflow updates its blocks, tools and agents in place. Text is taken
literally: there is no ``{var}`` templating to collide with JSON in prompts.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import yaml

from agents.manage import base_tool_names
from agents.tools.base import base_tool_functions
from agents.tools.registry import load_import_path
from agents.tools.schema import ToolSchemaError, schema_from_function
from storage.errors import InvalidRecord, UserError
from storage.records import ToolRule

__all__ = (
    "AgentDef",
    "BlockDef",
    "RouteDef",
    "ToolDef",
    "Workflow",
    "WorkflowError",
    "load_workflow",
)


class WorkflowError(UserError):
    """A workflow file that cannot be applied; ``problems`` has one line per problem."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


class BlockDef(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    label: str
    value: str = ""
    limit: int = 5000
    description: str = ""
    read_only: bool = False


class ToolDef(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, rename={"import_": "import"}
):
    import_: str
    name: str | None = None


class AgentDef(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    system: str | None = None
    persona: str | None = None
    human: str | None = None
    description: str = ""
    model: str | None = None
    embedding: str | None = None
    agent_type: str = "memgpt_agent"  # see docs/agent-types.md
    tools: list[str] = msgspec.field(default_factory=list)
    include_base_tools: bool = True
    tool_rules: list[ToolRule] = msgspec.field(default_factory=list)
    blocks: list[str] = msgspec.field(default_factory=list)
    memory_blocks: list[BlockDef] = msgspec.field(default_factory=list)
    tags: list[str] = msgspec.field(default_factory=list)
    context_window: int | None = None
    max_steps: int | None = None


class RouteDef(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, rename={"from_": "from"}):
    from_: str
    to: str


class Workflow(msgspec.Struct, kw_only=True):
    """A loaded, checked workflow, with its tools' functions resolved."""

    name: str
    path: Path
    blocks: list[BlockDef]
    tools: dict[str, Callable[..., Any]]
    tool_imports: dict[str, str]
    agents: list[AgentDef]
    routes: list[RouteDef]
    entry: str


_SECTIONS: dict[str, Any] = {
    "blocks": BlockDef,
    "tools": ToolDef,
    "agents": AgentDef,
    "routes": RouteDef,
}
_TOP = {"name", "entry", *_SECTIONS}
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _convert(item: Any, kind: Any, where: str, problems: list[str]) -> Any:
    try:
        return msgspec.convert(item, kind)
    except msgspec.ValidationError as exc:
        text, _, at = str(exc).partition(" - at `$")
        at = at.rstrip("`")
        problems.append(f"{where}{at}: {_explain(text, kind, at)}")
        return None


def _struct_types(kind: Any) -> list[type[msgspec.Struct]]:
    """The Struct types ``kind`` may hold (through lists, optionals and tagged unions)."""
    origin = typing.get_origin(kind)
    if origin in (list, typing.Union, types.UnionType):
        return [t for arg in typing.get_args(kind) for t in _struct_types(arg)]
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        return [kind]
    return []


def _field_type(kind: Any, path: str) -> Any:
    """The type found at ``path`` (``.tool_rules[0]``) inside ``kind``, or None."""
    for name, index in re.findall(r"\.([A-Za-z_]\w*)|\[(\d+)\]", path):
        if index:
            args = typing.get_args(kind)
            kind = args[0] if typing.get_origin(kind) is list and args else None
            continue
        hints: dict[str, Any] = {}
        for struct in _struct_types(kind):
            hints.update({f.encode_name: f.type for f in msgspec.structs.fields(struct)})
        kind = hints.get(name)
        if kind is None:
            return None
    return kind


def _explain(message: str, kind: Any, at: str) -> str:
    """msgspec's message, plus the valid names when a field or a tag is unknown."""
    unknown = re.match(r"Object contains unknown field `(.+)`$", message)
    if unknown:
        fields = sorted(
            {
                f.encode_name
                for struct in _struct_types(_field_type(kind, at))
                for f in msgspec.structs.fields(struct)
            }
        )
        return f"unknown field {unknown.group(1)!r}{_nearest(unknown.group(1), fields)}"
    bad_tag = re.match(r"Invalid value '(.+)'$", message)
    if bad_tag and at.endswith(".type"):
        owner = _field_type(kind, at.rpartition(".")[0])
        tags = sorted(
            str(s.__struct_config__.tag) for s in _struct_types(owner) if s.__struct_config__.tag
        )
        if tags:
            return f"unknown type {bad_tag.group(1)!r}{_nearest(bad_tag.group(1), tags)}"
    return message


def _nearest(word: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(word, valid, n=1)
    hint = f"; did you mean {close[0]!r}? Valid" if close else "; valid"
    return f"{hint}: {', '.join(valid)}"


def _declared(items: list[Any], key: str) -> list[str]:
    """The names of raw items, even those that failed to convert: a typo in one field of an
    agent must not read as "no agent named ..." wherever the agent is referred to."""
    return [str(i[key]) for i in items if isinstance(i, dict) and isinstance(i.get(key), str)]


def _load_tool(
    spec: ToolDef, base: Path, where: str, problems: list[str]
) -> tuple[str, Callable[..., Any], str] | None:
    target = spec.import_
    module_part, _sep, attr = target.rpartition(":")
    try:
        if module_part.endswith(".py"):
            file = (base / module_part).resolve()
            if not file.exists():
                problems.append(f"{where}.import: no file {file}")
                return None
            import_path = f"{file}:{attr}"
        else:
            import_path = target
        func = load_import_path(import_path)
    except (ImportError, ValueError, SyntaxError, AttributeError) as exc:
        problems.append(f"{where}.import: cannot import {target!r}: {exc}")
        return None
    if not callable(func):
        problems.append(f"{where}.import: {target!r} is not a function")
        return None
    name = spec.name or str(getattr(func, "__name__", ""))
    try:
        schema_from_function(func)
    except ToolSchemaError as exc:
        problems.append(f"{where}.import: {exc}")
        return None
    return name, func, import_path


def load_workflow(
    path: Path | str, *, check_rules: Callable[..., list[str]] | None = None
) -> Workflow:
    """Read and check a workflow file.

    Raises:
        WorkflowError: one line per problem, each naming the path inside the file.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise WorkflowError(path, ["no such file"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise WorkflowError(
            path, [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    if not isinstance(raw, dict):
        raise WorkflowError(path, ["the file must be a mapping with agents, blocks, tools, routes"])
    problems: list[str] = []
    for key in sorted(set(raw) - _TOP, key=str):
        problems.append(f"{key}: unknown section{_nearest(str(key), sorted(_TOP))}")
    name = raw.get("name") or path.stem
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"name: {name!r} is not a valid workflow name (letters, digits, . _ -)")
    sections: dict[str, list[Any]] = {}
    raw_items: dict[str, list[Any]] = {}
    for section, kind in _SECTIONS.items():
        items = raw.get(section) or []
        if not isinstance(items, list):
            problems.append(f"{section}: expected a list, got {type(items).__name__}")
            items = []
        raw_items[section] = items
        sections[section] = [
            _convert(item, kind, f"{section}[{i}]", problems) for i, item in enumerate(items)
        ]
    blocks: list[BlockDef] = [b for b in sections["blocks"] if b is not None]
    agents: list[AgentDef] = [a for a in sections["agents"] if a is not None]
    routes: list[RouteDef] = [r for r in sections["routes"] if r is not None]

    labels = _declared(raw_items["blocks"], "label")
    for label in sorted({x for x in labels if labels.count(x) > 1}):
        problems.append(f"blocks: the label {label!r} is declared twice")
    tools: dict[str, Callable[..., Any]] = {}
    imports: dict[str, str] = {}
    for i, spec in enumerate(sections["tools"]):
        if spec is None:
            continue
        loaded = _load_tool(spec, path.parent, f"tools[{i}]", problems)
        if loaded is not None:
            tool_name, func, import_path = loaded
            if tool_name in tools:
                problems.append(f"tools[{i}]: a second tool named {tool_name!r}")
            tools[tool_name] = func
            imports[tool_name] = import_path

    builtin = set(base_tool_functions())
    names = _declared(raw_items["agents"], "name")
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"agents: the name {dup!r} is used twice")
    for i, agent in enumerate(sections["agents"]):
        if agent is None:
            continue
        try:
            base_tools = base_tool_names(agent.agent_type) if agent.include_base_tools else ()
        except InvalidRecord as exc:
            problems.append(f"agents[{i}].agent_type: {exc}")
            base_tools = ()
        for j, tool in enumerate(agent.tools):
            if tool not in builtin and tool not in tools:
                problems.append(
                    f"agents[{i}].tools[{j}]: unknown tool {tool!r}; declare it under tools, or "
                    f"use a built-in tool"
                )
        for j, label in enumerate(agent.blocks):
            if label not in labels:
                problems.append(f"agents[{i}].blocks[{j}]: no shared block labelled {label!r}")
        if check_rules is not None and agent.tool_rules:
            agent_tools = [*base_tools, *agent.tools]
            for problem in check_rules(agent.tool_rules, agent_tools):
                problems.append(f"agents[{i}].{problem}")
    for i, route in enumerate(sections["routes"]):
        if route is None:
            continue
        for field, value in (("from", route.from_), ("to", route.to)):
            if value not in names:
                problems.append(f"routes[{i}].{field}: no agent named {value!r} in this workflow")
    entry = raw.get("entry") or (names[0] if names else "")
    if not names:
        problems.append("agents: declare at least one agent")
    elif entry not in names:
        problems.append(f"entry: no agent named {entry!r}; use one of {names}")
    if problems:
        raise WorkflowError(path, problems)
    return Workflow(
        name=str(name),
        path=path,
        blocks=blocks,
        tools=tools,
        tool_imports=imports,
        agents=agents,
        routes=routes,
        entry=str(entry),
    )
