"""``/v1/tools``: base tools (read-only) and custom tools whose source arrives over the API.

A custom tool's schema is derived from its source by reading the syntax tree
(:func:`agents.tools.schema.schema_from_source`); the source is never executed here. Workers
run it in the sandbox when an agent calls it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post, put
from litestar.params import FromPath, FromQuery, JSONBody

from agents.tools.schema import schema_from_source
from orchestrator.api.errors import ApiError
from orchestrator.api.paging import Paging, ordered
from orchestrator.api.schemas import ToolCreateIn, ToolUpdateIn
from orchestrator.api.state import Api
from orchestrator.api.views import Deleted, ToolView, base_tools, tool_view
from storage.records import PipRequirement, Tool, new_id

__all__ = ("ToolsController",)

MAX_SOURCE_CHARS = 200_000
MAX_REQUIREMENTS = 32
# A package name as PEP 508 spells it (extras allowed), and a version or version specifier:
# nothing that pip would read as an option, a URL or a path.
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._,-]+\])?")
_VERSION = re.compile(r"(==|>=|<=|~=|!=|>|<)? *[A-Za-z0-9*][A-Za-z0-9.*+!_-]*")


def _requirements(given: list[PipRequirement] | None) -> list[PipRequirement]:
    if not given:
        return []
    if len(given) > MAX_REQUIREMENTS:
        raise ApiError(422, f"at most {MAX_REQUIREMENTS} packages", field="pip_requirements")
    for i, req in enumerate(given):
        if not _NAME.fullmatch(req.name):
            raise ApiError(
                422,
                f"{req.name!r} is not a package name (letters, digits, '.', '_', '-')",
                field=f"pip_requirements[{i}].name",
            )
        if req.version is not None and not _VERSION.fullmatch(req.version.strip()):
            raise ApiError(
                422,
                f"{req.version!r} is not a version; give one like '1.16.0' or '>=1.16'",
                field=f"pip_requirements[{i}].version",
            )
    return list(given)


# letta-client 0.1.x (Fern) names itself so; 1.x tools get the default environment's pin.
_OLD_CLIENT = re.compile(r"letta-client/(0\.\d+\.\d+)")


def _author_client(request: Request[Any, Any, Any]) -> str | None:
    """The 0.x letta-client version the request came from: the letta-client of the tool's
    sandbox then matches the client its code was written for, as on the Letta server of
    that era (0.1.x clients, 1.x API methods renamed)."""
    found = _OLD_CLIENT.fullmatch(request.headers.get("user-agent", ""))
    return found.group(1) if found else None


def _from_source(data: ToolCreateIn, client: str | None = None) -> Tool:
    if data.source_type != "python":
        raise ApiError(
            422, f"only python tools are supported, not {data.source_type!r}", field="source_type"
        )
    if len(data.source_code) > MAX_SOURCE_CHARS:
        raise ApiError(413, f"longer than {MAX_SOURCE_CHARS} characters", field="source_code")
    schema = schema_from_source(data.source_code)
    if schema.name in base_tools():
        raise ApiError(
            409, f"{schema.name!r} is a base tool's name; rename the function", field="source_code"
        )
    if data.return_char_limit is not None and data.return_char_limit < 1:
        raise ApiError(422, "must be at least 1", field="return_char_limit")
    return Tool(
        id=new_id("tool"),
        name=schema.name,
        description=data.description or schema.description,
        json_schema=schema.json_schema(),
        source_code=data.source_code,
        tags=list(data.tags or []),
        return_char_limit=data.return_char_limit or 6000,
        pip_requirements=_requirements(data.pip_requirements),
        letta_client=client,
    )


class ToolsController(Controller):
    """Tools: create, upsert from source, list, retrieve, modify, delete."""

    path = "/v1/tools"
    tags = ["tools"]

    @post("/", status_code=200)
    async def create(
        self, data: JSONBody[ToolCreateIn], api: Api, request: Request[Any, Any, Any]
    ) -> ToolView:
        """Create a tool from its source; a tool of that name already existing is a 409."""
        tool = _from_source(data, _author_client(request))
        if await api.rt.tools.get_by_name(tool.name) is not None:
            raise ApiError(
                409, f"a tool named {tool.name!r} exists; PUT /v1/tools/ replaces it", field="name"
            )
        return tool_view(await api.rt.tools.upsert(tool))

    @put("/")
    async def upsert(
        self, data: JSONBody[ToolCreateIn], api: Api, request: Request[Any, Any, Any]
    ) -> ToolView:
        """Create or replace a tool by the name of the function in ``source_code``."""
        tool = _from_source(data, _author_client(request))
        return tool_view(await api.rt.tools.upsert(tool))

    @get("/", dependencies=ordered(50))
    async def list_tools(
        self, api: Api, *, name: FromQuery[str | None] = None, paging: Paging
    ) -> list[ToolView]:
        """Base and custom tools, by name."""
        tools = sorted([*base_tools().values(), *await api.rt.tools.list()], key=lambda t: t.name)
        if name is not None:
            tools = [t for t in tools if t.name == name]
        return [tool_view(t) for t in paging.of(tools, lambda t: t.id)]

    @get("/count")
    async def count_tools(self, api: Api) -> int:
        """How many tools there are, base tools included."""
        return len(base_tools()) + len(await api.rt.tools.list())

    @get("/{tool_id:str}")
    async def retrieve(self, tool_id: FromPath[str], api: Api) -> ToolView:
        """A tool by id."""
        return tool_view(await api.tool(tool_id))

    @patch("/{tool_id:str}")
    async def modify(
        self, tool_id: FromPath[str], data: JSONBody[ToolUpdateIn], api: Api
    ) -> ToolView:
        """Change a custom tool's source, description, tags, return limit or requirements."""
        tool = await self._custom(tool_id, api)
        if data.source_code is not None:
            fresh = _from_source(
                ToolCreateIn(source_code=data.source_code, description=data.description)
            )
            if fresh.name != tool.name:
                raise ApiError(
                    422,
                    f"the source defines {fresh.name!r}, not {tool.name!r}; renaming a tool is "
                    "not supported (create a new one)",
                    field="source_code",
                )
            tool = msgspec.structs.replace(
                tool,
                source_code=fresh.source_code,
                json_schema=fresh.json_schema,
                description=fresh.description,
            )
        if data.description is not None:
            tool = msgspec.structs.replace(tool, description=data.description)
        if data.tags is not None:
            tool = msgspec.structs.replace(tool, tags=list(data.tags))
        if data.pip_requirements is not None:
            tool = msgspec.structs.replace(
                tool, pip_requirements=_requirements(data.pip_requirements)
            )
        if data.return_char_limit is not None:
            if data.return_char_limit < 1:
                raise ApiError(422, "must be at least 1", field="return_char_limit")
            tool = msgspec.structs.replace(tool, return_char_limit=data.return_char_limit)
        return tool_view(await api.rt.tools.upsert(tool))

    @delete("/{tool_id:str}", status_code=200)
    async def delete_tool(self, tool_id: FromPath[str], api: Api) -> Deleted:
        """Delete a custom tool (agents that name it lose it at their next step)."""
        tool = await self._custom(tool_id, api)
        await api.rt.tools.delete(tool.id)
        return Deleted(message=f"tool {tool.name} deleted")

    async def _custom(self, tool_id: str, api: Api) -> Tool:
        tool = await api.tool(tool_id)
        if tool.tool_type == "base":
            raise ApiError(409, f"{tool.name!r} is a base tool and cannot change", field="tool_id")
        return tool
