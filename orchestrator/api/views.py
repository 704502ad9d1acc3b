"""Response bodies in Letta's shapes, and their construction from memgrid's records.

Every Struct here is what one Letta schema (``AgentState``, ``Block``, ``Tool``, ``Passage``,
``Run``...) requires in both contract releases (0.11.7 and 0.16.8), with sensible values for
the fields that memgrid has no notion of. They also feed the OpenAPI document.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Literal

import msgspec

from agents.letta_messages import LettaMessage, StopReason, UsageStatistics, iso
from agents.llm import model_name
from agents.tools.registry import base_tool_records
from orchestrator.api.callbacks import CallbackState
from storage.records import Agent, AgentType, Block, Passage, PipRequirement, Run, Tool, ToolRule

__all__ = (
    "AgentState",
    "ArchivalSearchResponse",
    "ArchivalSearchResult",
    "BlockView",
    "Deleted",
    "EmbeddingConfig",
    "Health",
    "LLMConfig",
    "LettaResponse",
    "Memory",
    "PassageView",
    "RunView",
    "ToolView",
    "agent_view",
    "base_tool_id",
    "base_tools",
    "block_view",
    "embedding_config",
    "llm_config",
    "passage_view",
    "run_view",
    "tool_view",
)

_OPENAI_URL = "https://api.openai.com/v1"


class LLMConfig(msgspec.Struct, kw_only=True):
    """Letta's ``LLMConfig``: the model an agent talks to."""

    model: str
    model_endpoint_type: str = "openai"
    model_endpoint: str | None = None
    provider_name: str | None = "openai"
    provider_category: str = "base"
    model_wrapper: str | None = None
    context_window: int
    put_inner_thoughts_in_kwargs: bool = True
    handle: str | None = None
    temperature: float = 0.7
    max_tokens: int | None = None
    enable_reasoner: bool = False


class EmbeddingConfig(msgspec.Struct, kw_only=True):
    """Letta's ``EmbeddingConfig``: the embedder of an agent's archival memory."""

    embedding_endpoint_type: str
    embedding_endpoint: str | None = None
    embedding_model: str
    embedding_dim: int
    embedding_chunk_size: int = 300
    handle: str | None = None
    batch_size: int = 32


class BlockView(msgspec.Struct, kw_only=True):
    """Letta's ``Block`` (``BlockResponse`` in 0.16)."""

    id: str
    label: str
    value: str
    limit: int
    description: str
    read_only: bool
    metadata: dict[str, str]
    name: str | None = None
    template_name: str | None = None
    is_template: bool = False
    preserve_on_migration: bool = False
    hidden: bool | None = None
    project_id: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    created_by_id: str | None = None
    last_updated_by_id: str | None = None


class Memory(msgspec.Struct, kw_only=True):
    """Letta's ``Memory``: an agent's core memory."""

    blocks: list[BlockView]
    file_blocks: list[BlockView] = msgspec.field(default_factory=list)
    prompt_template: str = ""


class ToolView(msgspec.Struct, kw_only=True):
    """Letta's ``Tool``."""

    id: str
    name: str
    tool_type: str
    description: str
    source_type: str = "python"
    source_code: str | None = None
    json_schema: dict[str, object] = msgspec.field(default_factory=dict)
    args_json_schema: dict[str, object] | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    return_char_limit: int = 6000
    pip_requirements: list[PipRequirement] | None = None
    npm_requirements: list[str] | None = None
    default_requires_approval: bool | None = None
    created_by_id: str | None = None
    last_updated_by_id: str | None = None
    metadata_: dict[str, str] = msgspec.field(default_factory=dict)


class AgentState(msgspec.Struct, kw_only=True):
    """Letta's ``AgentState`` with every field its 0.11 and 0.16 clients require."""

    id: str
    name: str
    system: str
    agent_type: AgentType = "memgpt_agent"
    llm_config: LLMConfig
    embedding_config: EmbeddingConfig
    model: str
    embedding: str
    memory: Memory
    blocks: list[BlockView]
    tools: list[ToolView]
    sources: list[str] = msgspec.field(default_factory=list)
    tags: list[str]
    tool_rules: list[ToolRule]
    message_ids: list[str]
    description: str
    metadata: dict[str, str]
    created_at: str
    updated_at: str
    created_by_id: str | None = None
    last_updated_by_id: str | None = None
    response_format: None = None
    tool_exec_environment_variables: list[str] = msgspec.field(default_factory=list)
    identity_ids: list[str] = msgspec.field(default_factory=list)
    message_buffer_autoclear: bool = False
    enable_sleeptime: bool = False
    multi_agent_group: None = None
    last_run_completion: str | None = None
    timezone: str = "UTC"
    hidden: bool | None = None


class PassageView(msgspec.Struct, kw_only=True):
    """Letta's ``Passage`` (the vector stays in Qdrant: ``embedding`` is null)."""

    id: str
    text: str
    embedding: list[float] | None = None
    embedding_config: EmbeddingConfig | None = None
    created_at: str
    updated_at: str | None = None
    tags: list[str]
    source_id: str | None = None
    file_id: str | None = None
    file_name: str | None = None
    archive_id: str | None = None
    organization_id: str | None = None
    is_deleted: bool = False
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class ArchivalSearchResult(msgspec.Struct, kw_only=True):
    """One hit of ``GET .../archival-memory/search``."""

    id: str
    timestamp: str
    content: str
    tags: list[str]


class ArchivalSearchResponse(msgspec.Struct, kw_only=True):
    """Letta's ``ArchivalMemorySearchResponse``."""

    results: list[ArchivalSearchResult]
    count: int


RunStatus = Literal["created", "running", "completed", "failed", "cancelled"]


class RunView(msgspec.Struct, kw_only=True):
    """Letta's ``Run`` (also served as a ``Job``)."""

    id: str
    agent_id: str
    status: RunStatus
    created_at: str
    completed_at: str | None
    stop_reason: str | None
    job_type: str = "run"
    background: bool | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    request_config: None = None
    callback_url: str | None = None
    callback_sent_at: str | None = None
    callback_status_code: int | None = None
    callback_error: str | None = None
    ttft_ns: int | None = None
    total_duration_ns: int | None = None
    user_id: str | None = None
    created_by_id: str | None = None
    last_updated_by_id: str | None = None
    updated_at: str | None = None


class LettaResponse(msgspec.Struct, kw_only=True):
    """What ``POST /v1/agents/{agent_id}/messages`` answers."""

    messages: list[LettaMessage]
    stop_reason: StopReason
    usage: UsageStatistics


class Health(msgspec.Struct, kw_only=True):
    """``GET /v1/health/``."""

    version: str
    status: str


def embedding_config(handle: str, openai_base_url: str | None) -> EmbeddingConfig:
    """Letta's view of an embedding handle (``openai/...``, ``hashing/N`` or local MiniLM).

    An endpoint's vector length is the one asked for (``openai/<model>@<size>``), else the
    one it was seen to serve (:mod:`storage.embeddings.sizes`); before any was seen, what
    OpenAI serves under that name (1536 for names it does not know).
    """
    from storage.embeddings.factory import split_size
    from storage.embeddings.sizes import KNOWN_DIMENSIONS, learned_dimension

    provider, _, rest = handle.partition("/")
    if provider == "openai" and rest:
        model, size = split_size(rest)
        dimension = size or learned_dimension(model, openai_base_url)
        return EmbeddingConfig(
            embedding_endpoint_type="openai",
            embedding_endpoint=openai_base_url or _OPENAI_URL,
            embedding_model=model,
            embedding_dim=dimension or KNOWN_DIMENSIONS.get(model, 1536),
            handle=handle,
        )
    if provider == "hashing" and rest.isdigit():
        return EmbeddingConfig(
            embedding_endpoint_type="hugging-face",
            embedding_model=handle,
            embedding_dim=int(rest),
            handle=handle,
        )
    return EmbeddingConfig(
        embedding_endpoint_type="hugging-face",
        embedding_model=rest or handle,
        embedding_dim=384,
        handle=handle,
    )


def llm_config(agent: Agent, openai_base_url: str | None) -> LLMConfig:
    """Letta's view of an agent's model."""
    return LLMConfig(
        model=model_name(agent.model),
        model_endpoint=agent.model_endpoint or openai_base_url or _OPENAI_URL,
        context_window=agent.context_window,
        handle=agent.model,
    )


def block_view(block: Block) -> BlockView:
    """Letta's view of a block: the fields the two share (a copy), the rest Letta's defaults."""
    view = msgspec.convert(block, BlockView, from_attributes=True)
    view.name = block.template_name  # Letta 0.11's name of the field
    return view


_MEMORY_TOOLS = frozenset(
    {"core_memory_append", "core_memory_replace", "memory_replace", "memory_insert"}
)
_MEMORY_TOOLS |= {"memory_rethink", "archival_memory_insert", "archival_memory_search"}
_MEMORY_TOOLS |= {"conversation_search"}


def base_tool_id(name: str) -> str:
    """A base tool's id: stable across processes and restarts (derived from its name)."""
    return f"tool-{uuid.uuid5(uuid.NAMESPACE_URL, f'memgrid:base-tool:{name}')}"


def base_tools() -> dict[str, Tool]:
    """The base tools as records with stable ids, by name."""
    return {
        t.name: msgspec.structs.replace(t, id=base_tool_id(t.name)) for t in base_tool_records()
    }


def tool_view(tool: Tool) -> ToolView:
    if tool.tool_type == "base":
        kind = "letta_memory_core" if tool.name in _MEMORY_TOOLS else "letta_core"
    else:
        kind = "custom"
    return ToolView(
        id=tool.id,
        name=tool.name,
        tool_type=kind,
        description=tool.description,
        source_code=tool.source_code,
        json_schema=dict(tool.json_schema),
        tags=list(tool.tags),
        return_char_limit=tool.return_char_limit,
        pip_requirements=list(tool.pip_requirements) or None,
    )


def agent_view(
    agent: Agent, blocks: Sequence[Block], tools: Sequence[Tool], openai_base_url: str | None
) -> AgentState:
    """An agent as Letta's ``AgentState``; ``blocks`` and ``tools`` are its resolved records."""
    block_views = [block_view(b) for b in blocks]
    return AgentState(
        id=agent.id,
        name=agent.name,
        agent_type=agent.agent_type,
        system=agent.system,
        llm_config=llm_config(agent, openai_base_url),
        embedding_config=embedding_config(agent.embedding, openai_base_url),
        model=agent.model,
        embedding=agent.embedding,
        memory=Memory(blocks=block_views),
        blocks=block_views,
        tools=[tool_view(t) for t in tools],
        tags=list(agent.tags),
        tool_rules=list(agent.tool_rules),
        message_ids=list(agent.message_ids),
        description=agent.description,
        metadata=dict(agent.metadata),
        created_at=iso(agent.created_at),
        updated_at=iso(agent.updated_at),
    )


def passage_view(passage: Passage, config: EmbeddingConfig | None) -> PassageView:
    return PassageView(
        id=passage.id,
        text=passage.text,
        embedding_config=config,
        created_at=iso(passage.created_at),
        tags=list(passage.tags),
        source_id=passage.source_id,
        file_id=passage.file_id,
    )


def run_view(run: Run, callback: CallbackState | None = None) -> RunView:
    status: RunStatus = "running" if run.status == "waiting" else run.status
    duration = None
    if run.completed_at is not None:
        duration = int((run.completed_at - run.created_at) * 1e9)
    return RunView(
        callback_url=callback.url if callback else None,
        callback_sent_at=iso(callback.sent_at) if callback and callback.sent_at else None,
        callback_status_code=callback.status_code if callback else None,
        callback_error=callback.error if callback else None,
        id=run.id,
        agent_id=run.agent_id,
        status=status,
        created_at=iso(run.created_at),
        completed_at=iso(run.completed_at) if run.completed_at is not None else None,
        stop_reason=run.stop_reason,
        total_duration_ns=duration,
    )


class Deleted(msgspec.Struct, kw_only=True):
    """What a DELETE answers (Letta answers a message too)."""

    message: str
