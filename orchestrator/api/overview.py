"""``GET /v1/agents/{agent_id}/context`` and ``GET /v1/tags/``: looking at agents as a whole.

The context overview is :func:`agents.context_window.context_overview`, the same measure
``memgrid context`` prints: tokens by section of what the agent's next step would send.
"""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath, FromQuery

from agents.context_window import ContextOverview, context_overview
from orchestrator.api.paging import Paging, ordered
from orchestrator.api.state import Api

__all__ = ("AgentContextController", "TagsController")


class AgentContextController(Controller):
    """An agent's context window, section by section (Letta's ``ContextWindowOverview``)."""

    path = "/v1/agents/{agent_id:str}/context"
    tags = ["agents"]

    @get("/")
    async def retrieve(self, agent_id: FromPath[str], api: Api) -> ContextOverview:
        """Tokens by section of the agent's next request to its model."""
        return await context_overview(api.rt, await api.agent(agent_id))


class TagsController(Controller):
    """The tags of all agents."""

    path = "/v1/tags"
    tags = ["tag"]

    @get("/", dependencies=ordered(50))
    async def list_tags(
        self,
        api: Api,
        paging: Paging,
        query_text: FromQuery[str | None] = None,
        name: FromQuery[str | None] = None,
    ) -> list[str]:
        """Every tag some agent carries, sorted (``desc`` reverses), matching ``query_text``
        (a substring, any case) or exactly ``name``; paged by tag as cursor."""
        tags = sorted({tag for agent in await api.rt.agents.list() for tag in agent.tags})
        if query_text:
            tags = [t for t in tags if query_text.lower() in t.lower()]
        if name is not None:
            tags = [t for t in tags if t == name]
        return paging.of(tags, lambda t: t)
