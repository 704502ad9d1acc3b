"""``/v1/agents``: agents, their core memory blocks and their tools."""

from __future__ import annotations

from typing import Any

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from agents.manage import (
    AgentSpec,
    BlockSpec,
    attach_block,
    create_agent,
    delete_agent,
    detach_block,
)
from agents.tools.multi_agent import MULTI_AGENT_TOOL_NAMES
from orchestrator.api._embedding import embedding_handle
from orchestrator.api.blocks import DEFAULT_LIMIT, block_changes
from orchestrator.api.errors import ApiError
from orchestrator.api.ingestion import attach
from orchestrator.api.paging import Order, Paging, cursors, descending
from orchestrator.api.passages import check_embedding_change
from orchestrator.api.schemas import (
    BlockUpdateIn,
    CreateAgentIn,
    LLMConfigIn,
    UpdateAgentIn,
)
from orchestrator.api.state import Api
from orchestrator.api.views import (
    AgentState,
    BlockView,
    Deleted,
    Memory,
    ToolView,
    block_view,
    tool_view,
)
from storage.agents import UnknownCursor
from storage.errors import InvalidRecord, NotFound
from storage.records import Agent, Block, Source
from storage.settings import StorageSettings
from storage.sources import SourceStore

__all__ = ("AgentsController", "check_embedding")

# Which request field an InvalidRecord from the runtime is about, by its message's start.
_FIELDS = (
    ("unknown tools", "tools"),
    ("invalid tool rules", "tool_rules"),
    ("two blocks share", "memory_blocks"),
    ("block ", "memory_blocks"),
    ("a block needs", "memory_blocks"),
    ("an agent needs a non-empty name", "name"),
    ("context_window", "context_window_limit"),
    ("max_steps", "max_steps"),
)


def _invalid(exc: InvalidRecord) -> ApiError:
    message = str(exc)
    field = next((f for prefix, f in _FIELDS if message.startswith(prefix)), None)
    return ApiError(400, message, field=field)


def _model(model: str | None, config: LLMConfigIn | None) -> str | None:
    if model:
        return model
    if config is None:
        return None
    if config.handle:
        return config.handle
    return config.model if "/" in config.model else f"openai/{config.model}"


async def check_embedding(handle: str) -> None:
    """Refuse (400) an embedding handle that no embedder knows."""
    from storage.embeddings.factory import UnknownEmbeddingHandle, embedder_from_handle

    try:
        embedder = embedder_from_handle(handle, StorageSettings.from_env())
    except UnknownEmbeddingHandle as exc:
        raise ApiError(400, str(exc), field="embedding") from None
    except ValueError:
        return  # a valid form whose endpoint is not configured here; the workers may have it
    await embedder.aclose()


async def _sources(
    api: Api, source_ids: list[str] | None, folder_ids: list[str] | None
) -> list[Source]:
    """The sources named by id (checked before anything changes)."""
    store = SourceStore(api.rt.redis)
    found: list[Source] = []
    for field, ids in (("source_ids", source_ids), ("folder_ids", folder_ids)):
        for source_id in ids or []:
            try:
                found.append(await store.get(source_id))
            except NotFound:
                raise ApiError(404, f"no source with id {source_id!r}", field=field) from None
    return found


def _by_label(blocks: list[Block], label: str) -> Block:
    for block in blocks:
        if block.label == label:
            return block
    raise NotFound(f"the agent has no block labelled {label!r}")


class AgentsController(Controller):
    """Agents: create, list, retrieve, modify, delete; core memory; attached tools."""

    path = "/v1/agents"
    tags = ["agents"]

    @post("/", status_code=200)
    async def create(self, data: JSONBody[CreateAgentIn], api: Api) -> AgentState:
        """Create an agent with its memory blocks, tools, tool rules and sources."""
        sources = await _sources(api, data.source_ids, data.folder_ids)
        tools = list(data.tools or [])
        for name in await api.tool_names(data.tool_ids or [], "tool_ids"):
            if name not in tools:
                tools.append(name)
        if data.include_multi_agent_tools:
            tools += [t for t in MULTI_AGENT_TOOL_NAMES if t not in tools]
        embedding = embedding_handle(data.embedding, data.embedding_config, api.openai_base_url)
        if embedding:
            await check_embedding(embedding)
        blocks = None
        if data.memory_blocks is not None:
            blocks = [
                BlockSpec(
                    label=b.label,
                    value=b.value,
                    limit=b.limit if b.limit is not None else max(DEFAULT_LIMIT, len(b.value)),
                    description=b.description or "",
                    read_only=b.read_only,
                )
                for b in data.memory_blocks
            ]
        window = data.context_window_limit
        if window is None and data.llm_config is not None:
            window = data.llm_config.context_window
        spec = AgentSpec(
            name=data.name,
            agent_type=data.agent_type,
            system=data.system,
            model=_model(data.model, data.llm_config),
            embedding=embedding,
            memory_blocks=blocks,
            block_ids=list(data.block_ids or []),
            tools=tools,
            include_base_tools=data.include_base_tools,
            tool_rules=list(data.tool_rules or []),
            tags=list(data.tags or []),
            description=data.description or "",
            metadata=dict(data.metadata or {}),
            context_window=window,
        )
        try:
            agent = await create_agent(api.rt, spec)
        except InvalidRecord as exc:
            raise _invalid(exc) from None
        for source in sources:
            await attach(api, source, agent.id)
        return await api.agent_state(agent)

    @get("/", dependencies=cursors(50))
    async def list_agents(
        self,
        api: Api,
        *,
        name: FromQuery[str | None] = None,
        tags: FromQuery[list[str] | None] = None,
        match_all_tags: FromQuery[bool] = False,
        query_text: FromQuery[str | None] = None,
        paging: Paging,
        ascending: FromQuery[bool | None] = None,
        order: FromQuery[Order | None] = None,
    ) -> list[AgentState]:
        """Agents, newest first unless ``order=asc`` (or ``ascending=true``)."""
        try:
            chosen = await api.rt.agents.page(
                name=name,
                tags=tags or (),
                match_all_tags=match_all_tags,
                query_text=query_text or None,
                after=paging.after,
                before=paging.before,
                limit=paging.count,
                descending=descending(order, ascending),
            )
        except UnknownCursor as exc:
            raise ApiError(404, str(exc), field=exc.field, source="query") from None
        return [await api.agent_state(a) for a in chosen]

    @get("/count")
    async def count_agents(self, api: Api) -> int:
        """How many agents there are."""
        return await api.rt.agents.count()

    @get("/{agent_id:str}")
    async def retrieve(self, agent_id: FromPath[str], api: Api) -> AgentState:
        """One agent."""
        return await api.agent_state(await api.agent(agent_id))

    @patch("/{agent_id:str}")
    async def modify(
        self, agent_id: FromPath[str], data: JSONBody[UpdateAgentIn], api: Api
    ) -> AgentState:
        """Change an agent; fields left out stay as they are."""
        if data.source_ids is not None or data.folder_ids is not None:
            raise ApiError(
                400,
                "changing sources or folders through this call is not supported; use "
                "PATCH /v1/agents/{agent_id}/sources/attach/{source_id} (or detach)",
                field="source_ids" if data.source_ids is not None else "folder_ids",
            )
        agent = await api.agent(agent_id)
        fields: dict[str, Any] = {}
        for name in ("name", "system", "description"):
            value = getattr(data, name)
            if value is not None:
                fields[name] = value
        if data.tags is not None:
            fields["tags"] = list(data.tags)
        if data.metadata is not None:
            fields["metadata"] = dict(data.metadata)
        model = _model(data.model, data.llm_config)
        if model:
            fields["model"] = model
        window = data.context_window_limit or (data.llm_config and data.llm_config.context_window)
        if window:
            fields["context_window"] = window
        if embedding := embedding_handle(
            data.embedding, data.embedding_config, api.openai_base_url
        ):
            await check_embedding(embedding)
            await check_embedding_change(api, agent, embedding)
            fields["embedding"] = embedding
        tools = agent.tools
        if data.tool_ids is not None:
            tools = fields["tools"] = await api.tool_names(data.tool_ids, "tool_ids")
        rules = agent.tool_rules
        if data.tool_rules is not None:
            rules = fields["tool_rules"] = list(data.tool_rules)
        if "tools" in fields or "tool_rules" in fields:
            problems = api.rt.gate.check(rules, tools)
            if problems:
                raise ApiError(
                    400, "invalid tool rules: " + "; ".join(problems), field="tool_rules"
                )
        try:
            if data.block_ids is not None:
                await self._set_blocks(api, agent, data.block_ids)
            if fields:
                await api.rt.agents.update(agent_id, **fields)
        except InvalidRecord as exc:
            raise _invalid(exc) from None
        return await api.agent_state(await api.agent(agent_id))

    async def _set_blocks(self, api: Api, agent: Agent, block_ids: list[str]) -> None:
        missing = [b.id for b in await api.rt.blocks.get_many(block_ids)]
        absent = [b for b in block_ids if b not in missing]
        if absent:
            raise ApiError(404, f"no blocks with ids {absent}", field="block_ids")
        for block_id in agent.block_ids:
            if block_id not in block_ids:
                await detach_block(api.rt, agent.id, block_id)
        for block_id in block_ids:
            if block_id not in agent.block_ids:
                await attach_block(api.rt, agent.id, block_id)

    @delete("/{agent_id:str}", status_code=200)
    async def delete(self, agent_id: FromPath[str], api: Api) -> Deleted:
        """Delete an agent, its messages, the blocks only it used and its passages."""
        from orchestrator.api.passages import drop_passages

        agent = await delete_agent(api.rt, agent_id)
        await drop_passages(api, agent.id)
        await SourceStore(api.rt.redis).forget_agent(agent.id)
        return Deleted(message=f"agent {agent.id} deleted")

    # --- core memory -------------------------------------------------------------------

    @get("/{agent_id:str}/core-memory")
    async def core_memory(self, agent_id: FromPath[str], api: Api) -> Memory:
        """The agent's core memory."""
        agent = await api.agent(agent_id)
        blocks = await api.rt.blocks.get_many(agent.block_ids)
        return Memory(blocks=[block_view(b) for b in blocks])

    @get("/{agent_id:str}/core-memory/blocks", dependencies=cursors())
    async def list_core_blocks(
        self, agent_id: FromPath[str], api: Api, paging: Paging
    ) -> list[BlockView]:
        """The agent's blocks."""
        agent = await api.agent(agent_id)
        blocks = await api.rt.blocks.get_many(agent.block_ids)
        return [block_view(b) for b in paging.of(blocks, lambda b: b.id)]

    @get("/{agent_id:str}/core-memory/blocks/{block_label:str}")
    async def retrieve_core_block(
        self, agent_id: FromPath[str], block_label: FromPath[str], api: Api
    ) -> BlockView:
        """The agent's block with this label."""
        agent = await api.agent(agent_id)
        return block_view(_by_label(await api.rt.blocks.get_many(agent.block_ids), block_label))

    @patch("/{agent_id:str}/core-memory/blocks/{block_label:str}")
    async def modify_core_block(
        self,
        agent_id: FromPath[str],
        block_label: FromPath[str],
        data: JSONBody[BlockUpdateIn],
        api: Api,
    ) -> BlockView:
        """Change the agent's block with this label."""
        agent = await api.agent(agent_id)
        blocks = await api.rt.blocks.get_many(agent.block_ids)
        block = _by_label(blocks, block_label)
        fields = block_changes(data)
        new_label = fields.get("label")
        if new_label and new_label != block_label and any(b.label == new_label for b in blocks):
            raise ApiError(
                409, f"the agent already has a block labelled {new_label!r}", field="label"
            )
        if not fields:
            return block_view(block)
        return block_view(await api.rt.blocks.set_fields(block.id, editor="api", **fields))

    @patch("/{agent_id:str}/core-memory/blocks/attach/{block_id:str}")
    async def attach_core_block(
        self, agent_id: FromPath[str], block_id: FromPath[str], api: Api
    ) -> AgentState:
        """Attach an existing block (labels must stay unique)."""
        try:
            agent = await attach_block(api.rt, agent_id, block_id)
        except InvalidRecord as exc:
            raise ApiError(409, str(exc), field="block_id", source="path") from None
        return await api.agent_state(agent)

    @patch("/{agent_id:str}/core-memory/blocks/detach/{block_id:str}")
    async def detach_core_block(
        self, agent_id: FromPath[str], block_id: FromPath[str], api: Api
    ) -> AgentState:
        """Detach a block; the block itself stays."""
        return await api.agent_state(await detach_block(api.rt, agent_id, block_id))

    # --- tools -------------------------------------------------------------------------

    @get("/{agent_id:str}/tools", dependencies=cursors())
    async def list_agent_tools(
        self, agent_id: FromPath[str], api: Api, paging: Paging
    ) -> list[ToolView]:
        """The agent's tools."""
        agent = await api.agent(agent_id)
        tools = await api.tools_named(agent.tools)
        return [tool_view(t) for t in paging.of(tools, lambda t: t.id)]

    @patch("/{agent_id:str}/tools/attach/{tool_id:str}")
    async def attach_tool(
        self, agent_id: FromPath[str], tool_id: FromPath[str], api: Api
    ) -> AgentState:
        """Give the agent a tool."""
        await api.agent(agent_id)
        tool = await api.tool(tool_id)
        agent = await api.rt.agents.change(
            agent_id,
            lambda stored: (
                None if tool.name in stored.tools else {"tools": [*stored.tools, tool.name]}
            ),
        )
        return await api.agent_state(agent)

    @patch("/{agent_id:str}/tools/detach/{tool_id:str}")
    async def detach_tool(
        self, agent_id: FromPath[str], tool_id: FromPath[str], api: Api
    ) -> AgentState:
        """Take a tool away from the agent (tool rules naming it must go first)."""
        await api.agent(agent_id)
        tool = await api.tool(tool_id)

        def detach(stored: Agent) -> dict[str, Any]:
            tools = [t for t in stored.tools if t != tool.name]
            problems = api.rt.gate.check(stored.tool_rules, tools)
            if problems:
                raise ApiError(
                    409, "detaching it breaks tool rules: " + "; ".join(problems), field="tool_id"
                )
            return {"tools": tools}

        return await api.agent_state(await api.rt.agents.change(agent_id, detach))
