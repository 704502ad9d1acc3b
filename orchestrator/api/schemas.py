"""Request bodies in Letta's shapes: msgspec Structs that validate input and feed OpenAPI.

Unknown fields are ignored (Letta's clients send many that memgrid has no use for); a field
of the wrong type is refused with a 422 naming it. Fields that memgrid cannot honour and that
would change the meaning of a request (``source_ids``, image content) are refused explicitly.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from storage.records import PipRequirement, ToolRule

__all__ = (
    "ApprovalIn",
    "ArchiveCreateIn",
    "ArchivePassageIn",
    "ArchivePassagesIn",
    "ArchiveUpdateIn",
    "BlockUpdateIn",
    "ContentPart",
    "CreateAgentIn",
    "CreateBlockIn",
    "CreatePassageIn",
    "EmbeddingConfigIn",
    "LLMConfigIn",
    "MemoryBlockIn",
    "MessageIn",
    "MessagesIn",
    "SourceCreateIn",
    "SourceUpdateIn",
    "ToolCreateIn",
    "ToolUpdateIn",
    "UpdateAgentIn",
)


class LLMConfigIn(msgspec.Struct, kw_only=True):
    """The parts of Letta's ``LLMConfig`` that memgrid uses (the model and its window)."""

    model: str
    handle: str | None = None
    context_window: int | None = None
    model_endpoint_type: str | None = None


class EmbeddingConfigIn(msgspec.Struct, kw_only=True):
    """The parts of Letta's ``EmbeddingConfig`` that memgrid uses."""

    embedding_model: str
    handle: str | None = None
    embedding_endpoint_type: str | None = None
    # Qdrant's largest vector; a size nobody serves is a 400 here, not an endpoint error.
    embedding_dim: Annotated[int, msgspec.Meta(ge=1, le=65536)] | None = None


class MemoryBlockIn(msgspec.Struct, kw_only=True):
    """A block created with an agent (Letta's ``CreateBlock``)."""

    label: str
    value: str = ""
    limit: int | None = None
    description: str | None = None
    read_only: bool = False
    metadata: dict[str, str] | None = None


class CreateAgentIn(msgspec.Struct, kw_only=True):
    """Letta's ``CreateAgentRequest`` (the fields memgrid honours)."""

    name: str | None = None
    memory_blocks: list[MemoryBlockIn] | None = None
    tools: list[str] | None = None
    tool_ids: list[str] | None = None
    block_ids: list[str] | None = None
    source_ids: list[str] | None = None
    folder_ids: list[str] | None = None
    tool_rules: list[ToolRule] | None = None
    tags: list[str] | None = None
    system: str | None = None
    agent_type: str | None = None  # checked by agents.manage.create_agent
    llm_config: LLMConfigIn | None = None
    embedding_config: EmbeddingConfigIn | None = None
    include_base_tools: bool = True
    include_multi_agent_tools: bool = False
    description: str | None = None
    metadata: dict[str, str] | None = None
    model: str | None = None
    embedding: str | None = None
    context_window_limit: int | None = None


class UpdateAgentIn(msgspec.Struct, kw_only=True):
    """Letta's ``UpdateAgent``: every field optional; absent fields stay as they are."""

    name: str | None = None
    system: str | None = None
    tags: list[str] | None = None
    tool_ids: list[str] | None = None
    block_ids: list[str] | None = None
    source_ids: list[str] | None = None
    folder_ids: list[str] | None = None
    tool_rules: list[ToolRule] | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None
    model: str | None = None
    embedding: str | None = None
    llm_config: LLMConfigIn | None = None
    embedding_config: EmbeddingConfigIn | None = None
    context_window_limit: int | None = None


class ContentPart(msgspec.Struct, kw_only=True):
    """One part of a message's content; memgrid takes ``{"type": "text", "text": ...}``."""

    type: str = "text"
    text: str | None = None


class ApprovalIn(msgspec.Struct, kw_only=True):
    """Letta 0.16's ``ApprovalReturn``: the decision on one held tool call."""

    type: Literal["approval"] = "approval"
    tool_call_id: str
    approve: bool
    reason: str | None = None


class MessageIn(msgspec.Struct, kw_only=True):
    """Letta's ``MessageCreate`` or, with ``type="approval"``, its ``ApprovalCreate``.

    One struct for both because Letta's ``MessageCreate`` may leave out its ``type`` tag, which a
    tagged union cannot decode. A message has ``content`` (a string or a list of text parts).
    An approval answers a run stopped with ``requires_approval``, in 0.11's form (``approve``,
    ``approval_request_id``, ``reason``) or 0.16's (``approvals``, one per held call).
    """

    type: str | None = None
    role: Literal["user", "system"] = "user"
    content: str | list[ContentPart] | None = None
    name: str | None = None
    otid: str | None = None
    sender_id: str | None = None
    approve: bool | None = None
    approval_request_id: str | None = None
    reason: str | None = None
    approvals: list[ApprovalIn] | None = None


class MessagesIn(msgspec.Struct, kw_only=True):
    """Letta's ``LettaRequest``, ``LettaStreamingRequest`` and ``LettaAsyncRequest`` in one.

    0.16 accepts ``input`` (a string or content parts) in place of ``messages``.
    """

    messages: list[MessageIn] | None = None
    input: str | list[ContentPart] | None = None
    max_steps: int | None = None
    use_assistant_message: bool = True
    assistant_message_tool_name: str | None = None
    assistant_message_tool_kwarg: str | None = None
    include_return_message_types: list[str] | None = None
    enable_thinking: str | None = None
    streaming: bool = False
    stream_tokens: bool = False
    include_pings: bool = False
    background: bool = False
    callback_url: str | None = None


class CreateBlockIn(msgspec.Struct, kw_only=True):
    """Letta's ``CreateBlock`` (``name`` is 0.11's ``template_name``)."""

    label: str
    value: str
    limit: int | None = None
    description: str | None = None
    read_only: bool = False
    metadata: dict[str, str] | None = None
    template_name: str | None = None
    name: str | None = None
    is_template: bool = False
    tags: list[str] | None = None
    project_id: str | None = None


class BlockUpdateIn(msgspec.Struct, kw_only=True):
    """Letta's ``BlockUpdate``."""

    value: str | None = None
    limit: int | None = None
    label: str | None = None
    description: str | None = None
    read_only: bool | None = None
    metadata: dict[str, str] | None = None


class ToolCreateIn(msgspec.Struct, kw_only=True):
    """Letta's ``ToolCreate``: the schema is derived from ``source_code`` (never executed)."""

    source_code: str
    description: str | None = None
    tags: list[str] | None = None
    source_type: str = "python"
    return_char_limit: int | None = None
    pip_requirements: list[PipRequirement] | None = None


class ToolUpdateIn(msgspec.Struct, kw_only=True):
    """Letta's ``ToolUpdate``."""

    source_code: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    return_char_limit: int | None = None
    pip_requirements: list[PipRequirement] | None = None


class CreatePassageIn(msgspec.Struct, kw_only=True):
    """Letta's ``CreateArchivalMemory``."""

    text: str
    tags: list[str] | None = None
    created_at: str | None = None


class SourceCreateIn(msgspec.Struct, kw_only=True):
    """Letta's ``SourceCreate`` (``CreateFolder`` in 1.x)."""

    name: str
    description: str | None = None
    instructions: str | None = None
    metadata: dict[str, str] | None = None
    embedding: str | None = None
    embedding_chunk_size: int | None = None
    embedding_config: EmbeddingConfigIn | None = None


class SourceUpdateIn(msgspec.Struct, kw_only=True):
    """Letta's ``SourceUpdate``."""

    name: str | None = None
    description: str | None = None
    instructions: str | None = None


class ArchiveCreateIn(msgspec.Struct, kw_only=True):
    """Letta's ``ArchiveCreateRequest``."""

    name: str
    embedding: str | None = None
    embedding_config: EmbeddingConfigIn | None = None
    description: str | None = None


class ArchiveUpdateIn(msgspec.Struct, kw_only=True):
    """Letta's ``ArchiveUpdateRequest``."""

    name: str | None = None
    description: str | None = None


class ArchivePassageIn(msgspec.Struct, kw_only=True):
    """Letta's ``PassageCreateRequest`` (``metadata`` and ``created_at`` are not kept)."""

    text: str
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    created_at: str | None = None


class ArchivePassagesIn(msgspec.Struct, kw_only=True):
    """Letta's ``PassageBatchCreateRequest``."""

    passages: list[ArchivePassageIn]
