"""What every handler shares: the process's runtime and run store, plus small helpers.

The API keeps no agent state of its own: everything is read from and written to Redis (and
the passage store) on each request, so several API processes can serve at once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import structlog
from anyio.abc import TaskGroup
from litestar.datastructures import State
from litestar.di import NamedDependency
from redis.exceptions import RedisError

from agents.runs import RunStore
from agents.runtime import Runtime
from orchestrator.api.errors import ApiError
from orchestrator.api.settings import ApiSettings
from orchestrator.api.views import AgentState, agent_view, base_tools
from storage.embeddings.sizes import load_sizes
from storage.errors import NotFound
from storage.records import Agent, Tool

__all__ = ("Api", "ApiState", "api_state", "checked_limit", "page")

T = TypeVar("T")
log = structlog.get_logger("memgrid.api")
_SIZES_EVERY_S = 1.0


@dataclass
class ApiState:
    """The runtime of this API process and what handlers derive from it."""

    rt: Runtime
    settings: ApiSettings
    background: TaskGroup | None = None
    """Where work that outlives a request runs (document ingestion); owned by the lifespan."""
    runs: RunStore = field(init=False)
    openai_base_url: str | None = field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL"))

    _sizes_at: float = field(default=-math.inf, init=False)

    def __post_init__(self) -> None:
        self.runs = RunStore(self.rt.redis, run_ttl_s=self.rt.settings.run_ttl_s)

    async def refresh_embedding_sizes(self, *, force: bool = False) -> None:
        """Load the embedding sizes that the embedding processes recorded (at most once a
        second unless ``force``), so that ``embedding_config.embedding_dim`` shows them."""
        at = anyio.current_time()
        if not force and at - self._sizes_at < _SIZES_EVERY_S:
            return
        self._sizes_at = at
        try:
            await load_sizes(self.rt.redis)
        except RedisError as exc:  # only a view's hint: the request itself says what failed
            log.debug("embedding_sizes_not_loaded", error=repr(exc))

    async def agent(self, agent_id: str) -> Agent:
        return await self.rt.agents.get(agent_id)

    async def tools_named(self, names: Sequence[str]) -> list[Tool]:
        """Tool records for names, base tools included, in the order given (unknown skipped)."""
        base = base_tools()
        custom = await self.rt.tools.get_many_by_name([n for n in names if n not in base])
        found: list[Tool] = []
        for name in names:
            tool = custom.get(name) or base.get(name)
            if tool is not None:
                found.append(tool)
        return found

    async def tool(self, tool_id: str) -> Tool:
        """A tool by id: a base tool's stable id or a custom tool's."""
        for tool in base_tools().values():
            if tool.id == tool_id:
                return tool
        return await self.rt.tools.get(tool_id)

    async def tool_names(self, tool_ids: Sequence[str], field_name: str) -> list[str]:
        names: list[str] = []
        for tool_id in tool_ids:
            try:
                names.append((await self.tool(tool_id)).name)
            except NotFound:
                raise ApiError(404, f"no tool with id {tool_id!r}", field=field_name) from None
        return names

    async def agent_state(self, agent: Agent) -> AgentState:
        blocks = await self.rt.blocks.get_many(agent.block_ids)
        tools = await self.tools_named(agent.tools)
        return agent_view(agent, blocks, tools, self.openai_base_url)


async def api_state(state: State) -> ApiState:
    """Litestar dependency: the :class:`ApiState` set up by the app's lifespan."""
    api: ApiState = state.api
    await api.refresh_embedding_sizes()
    return api


def checked_limit(limit: int | None) -> int | None:
    """A page's ``limit`` as the request gave it; a negative one is a 422."""
    if limit is not None and limit < 0:
        raise ApiError(422, "must be 0 or more", field="limit", source="query")
    return limit


def page(
    items: Sequence[T],
    key: Callable[[T], str],
    *,
    after: str | None,
    before: str | None,
    limit: int | None,
    order: str | None = None,
) -> list[T]:
    """A page of ``items`` (oldest first; ``order="desc"``: newest first) between id cursors.

    ``after`` keeps what comes after that id, ``before`` what comes before it; an unknown
    cursor is a 404. Letta's 1.x clients page by sending the last id seen as ``after``.
    """
    if order == "desc":
        items = items[::-1]
    ids = [key(item) for item in items]
    start, end = 0, len(items)
    for name, cursor in (("after", after), ("before", before)):
        if cursor is None:
            continue
        if cursor not in ids:
            raise ApiError(
                404, f"no item with id {cursor!r} to page from", field=name, source="query"
            )
        if name == "after":  # the last of its id: expanded messages share their message's id
            start = len(ids) - ids[::-1].index(cursor)
        else:
            end = ids.index(cursor)
    chosen = list(items[start:end])
    limit = checked_limit(limit)
    if limit is not None:
        chosen = chosen[-limit:] if before is not None and after is None else chosen[:limit]
        if limit == 0:
            chosen = []
    return chosen


Api = NamedDependency[ApiState]
"""How handlers ask for the :class:`ApiState` (the app provides it as ``api``)."""
