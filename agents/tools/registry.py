"""Which tools an agent has, what the model is told about them, and how custom tools run.

Base tools are functions of :mod:`agents.tools.base`. Custom tools are :class:`storage.Tool`
records: those with an ``import_path`` are the operator's own code (YAML workflows) and run in
a worker thread; those with ``source_code`` arrived over the API and are untrusted, so they
run out of process in the sandbox, with limits and without the server's secrets.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
import msgspec
import structlog

from agents import metrics
from agents.sandbox import SandboxSettings, default_isolation, run_tool_source
from agents.tool_envs import ToolEnvError, ToolEnvs, requirement_specs
from agents.tools.base import BaseToolFunction, base_tool_functions
from agents.tools.schema import ToolSchema, schema_from_function
from storage.records import Agent, Tool, new_id

_log = structlog.get_logger("memgrid.sandbox")

__all__ = (
    "HEARTBEAT_ARG",
    "INNER_THOUGHTS_ARG",
    "TERMINAL_TOOLS",
    "AgentTool",
    "CustomToolRunner",
    "ImportPathRunner",
    "SandboxRunner",
    "agent_tools",
    "base_schemas",
    "base_tool_records",
    "load_import_path",
    "load_module_file",
)

HEARTBEAT_ARG = "request_heartbeat"
INNER_THOUGHTS_ARG = "inner_thoughts"
TERMINAL_TOOLS = frozenset({"send_message"})

_HEARTBEAT_SCHEMA = {
    "type": "boolean",
    "description": (
        "Set true to take another step after this tool returns (to use its result or answer "
        "the user); false or absent ends your turn after this tool."
    ),
}
_THOUGHTS_SCHEMA = {
    "type": "string",
    "description": "Your private reasoning for this call, never shown to the user.",
}

_BASE_SCHEMAS: dict[str, ToolSchema] | None = None


def base_schemas() -> dict[str, ToolSchema]:
    """Schemas of the base tools, generated once from their signatures and docstrings."""
    global _BASE_SCHEMAS
    if _BASE_SCHEMAS is None:
        _BASE_SCHEMAS = {
            name: schema_from_function(func, injected={"ctx"})
            for name, func in base_tool_functions().items()
        }
    return _BASE_SCHEMAS


def base_tool_records() -> list[Tool]:
    """Base tools as records, for listing through the API next to custom ones."""
    return [
        Tool(
            id=new_id("tool"),
            name=name,
            description=schema.description,
            json_schema=schema.json_schema(),
            tool_type="base",
            tags=["memgrid_core"],
        )
        for name, schema in base_schemas().items()
    ]


_BASE_ENTRIES: dict[tuple[str, bool, bool], dict[str, Any]] = {}


@dataclass(frozen=True)
class AgentTool:
    """One tool as an agent sees it."""

    name: str
    schema: ToolSchema
    base: BaseToolFunction | None = None
    record: Tool | None = None

    @property
    def terminal(self) -> bool:
        return self.name in TERMINAL_TOOLS

    def openai(self, *, heartbeat: bool | None = None, thoughts: bool = True) -> dict[str, Any]:
        """The ``tools`` entry: the schema plus (``thoughts``) inner thoughts and, unless the
        tool ends the turn, ``request_heartbeat``. A letta_v1 agent gets neither. Base tools'
        entries are built once and shared: read only."""
        with_heartbeat = (not self.terminal) if heartbeat is None else heartbeat
        key = (self.name, with_heartbeat, thoughts)
        if self.record is None:
            cached = _BASE_ENTRIES.get(key)
            if cached is None:
                cached = _BASE_ENTRIES[key] = self._entry(with_heartbeat, thoughts)
            return cached
        return self._entry(with_heartbeat, thoughts)

    def _entry(self, with_heartbeat: bool, thoughts: bool) -> dict[str, Any]:
        parameters = copy.deepcopy(self.schema.parameters)
        properties = parameters.setdefault("properties", {})
        if thoughts:
            properties[INNER_THOUGHTS_ARG] = dict(_THOUGHTS_SCHEMA)
        if with_heartbeat:
            properties[HEARTBEAT_ARG] = dict(_HEARTBEAT_SCHEMA)
        parameters.setdefault("type", "object")
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.schema.description,
                "parameters": parameters,
            },
        }

    @classmethod
    def from_record(cls, record: Tool) -> AgentTool:
        schema = record.json_schema or {}
        return cls(
            name=record.name,
            schema=ToolSchema(
                name=record.name,
                description=str(schema.get("description") or record.description),
                parameters=dict(schema.get("parameters") or {"type": "object", "properties": {}}),
            ),
            record=record,
        )


def agent_tools(agent: Agent, custom: Mapping[str, Tool]) -> dict[str, AgentTool]:
    """The tools of ``agent`` by name: base tools by name, custom ones from ``custom``."""
    functions = base_tool_functions()
    schemas = base_schemas()
    tools: dict[str, AgentTool] = {}
    for name in agent.tools:
        if name in custom and custom[name].tool_type == "custom":
            tools[name] = AgentTool.from_record(custom[name])
        elif name in functions:
            tools[name] = AgentTool(name=name, schema=schemas[name], base=functions[name])
    return tools


class CustomToolRunner(Protocol):
    """Runs a custom tool; returns its output text and whether it succeeded."""

    async def __call__(
        self, tool: Tool, arguments: dict[str, Any], agent: Agent
    ) -> tuple[str, bool]: ...


def load_import_path(path: str) -> Any:
    """The object at ``package.module:attr``, ``package.module.attr`` or ``/abs/file.py:attr``."""
    module_name, sep, attr = path.rpartition(":") if ".py:" in path else path.partition(":")
    if module_name.endswith(".py"):
        return getattr(load_module_file(module_name), attr)
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not an import path like 'package.module:function'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None


def load_module_file(file: str) -> Any:
    """Import a Python file once per process under a stable private name."""
    resolved = Path(file).resolve()
    name = "memgrid_tools_" + hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    if not resolved.exists():
        raise ValueError(f"no tool file {resolved}")
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load tool file {resolved}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _render(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, str):
        return value
    try:
        return json.dumps(msgspec.to_builtins(value), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


class _AgentState(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    tags: list[str]


class ImportPathRunner:
    """Runs trusted tools named by import path; source tools go to ``sandbox`` if given."""

    def __init__(self, sandbox: CustomToolRunner | None = None, *, timeout_s: float = 60) -> None:
        self._sandbox = sandbox
        self._timeout_s = timeout_s

    async def __call__(
        self, tool: Tool, arguments: dict[str, Any], agent: Agent
    ) -> tuple[str, bool]:
        if not tool.import_path:
            if self._sandbox is None:
                return f"tool {tool.name!r} has no runnable code on this worker", False
            return await self._sandbox(tool, arguments, agent)
        func = load_import_path(tool.import_path)
        kwargs = dict(arguments)
        if "agent_state" in inspect.signature(func).parameters:
            kwargs["agent_state"] = _AgentState(id=agent.id, name=agent.name, tags=agent.tags)
        with anyio.fail_after(self._timeout_s):
            if inspect.iscoroutinefunction(func):
                result = await func(**kwargs)
            else:
                result = await anyio.to_thread.run_sync(lambda: func(**kwargs))
        return _render(result), True


def _specs(tool: Tool) -> list[str]:
    specs = requirement_specs(tool.pip_requirements)
    names = {re.sub(r"[-_.]+", "-", r.name).lower() for r in tool.pip_requirements}
    named = "letta-client" in names
    if tool.letta_client and not named:  # registered by a 0.x client: its API in the sandbox
        specs.append(f"letta-client=={tool.letta_client}")
    return specs


class SandboxRunner:
    """Runs tools whose source arrived over the API in :mod:`agents.sandbox`, with the
    deployment's limits (a tool's own where the operator set some), network policy, and
    ``MEMGRID_HOME`` hidden from the tool; with ``envs``, on the interpreter of the tool's
    environment (its ``pip_requirements`` and the default packages, built on first use)."""

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        env: Mapping[str, str] | None = None,
        envs: ToolEnvs | None = None,
    ) -> None:
        self._settings = settings or SandboxSettings()
        self._env = dict(env or {})
        self._envs = envs
        self._default_env_failed = False  # logged once: tools then run on our interpreter
        home = self._settings.home
        self._hide = (str(home),) if home is not None else ()

    async def __call__(
        self, tool: Tool, arguments: dict[str, Any], agent: Agent
    ) -> tuple[str, bool]:
        if not tool.source_code:
            return f"tool {tool.name!r} has no source code to run", False
        python = sys.executable
        if self._envs is not None:  # else the server's interpreter (embedded uses, tests)
            own = _specs(tool)
            try:
                python = await self._envs.python_for(own)
            except ToolEnvError as exc:
                if own:  # the tool asked for packages: say it could not have them
                    return str(exc), False
                # Only the default environment (letta-client) failed, e.g. on a machine with
                # no package index: the tool still runs, on memgrid's own interpreter.
                if not self._default_env_failed:
                    self._default_env_failed = True
                    _log.warning("sandbox_default_env_unavailable", error=str(exc))
        result = await run_tool_source(
            tool.source_code,
            tool.name,
            arguments,
            agent_state={"id": agent.id, "name": agent.name, "tags": list(agent.tags)},
            limits=self._settings.limits_for(tool.name),
            env=self._env,
            python=python,
            network=self._settings.network,
            hide=self._hide,
            isolation=await default_isolation(self._settings),
        )
        metrics.sandbox_run(result.status, result.duration_s)
        if result.status == "success":
            return result.return_value if result.return_value is not None else "None", True
        return result.error or "the tool failed", False
