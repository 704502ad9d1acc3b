"""The base tools: replying, and searching recall and archival memory; the tools that edit
core memory are in :mod:`agents.tools.memory`, the multi-agent ones in
:mod:`agents.tools.multi_agent`.

Each tool is a typed function whose first parameter is the :class:`ToolContext` (injected, not
in the schema); its schema comes from the signature and docstring. A tool refuses bad input by
raising :class:`ToolError` with a message that tells the model what to do instead; nothing is
written then. Block edits are compare-and-set writes keyed by the step and tool call, so a
redelivered step cannot apply the same edit twice.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, Protocol, TypedDict, Unpack

import msgspec

from storage.blocks import BlockStore
from storage.errors import ControlSignal
from storage.messages import MessageLog
from storage.records import Agent, Block, Passage

__all__ = (
    "BASE_TOOL_NAMES",
    "MEMORY_TOOL_NAMES",
    "Archival",
    "NewPassages",
    "ScoredText",
    "SearchOptions",
    "ToolContext",
    "ToolError",
    "archival_memory_insert",
    "archival_memory_search",
    "base_tool_functions",
    "conversation_search",
    "send_message",
)


class ToolError(ControlSignal):
    """A refusal the model should read: say what was wrong and what to do instead."""


class ScoredText(msgspec.Struct, frozen=True, kw_only=True):
    passage: Passage
    score: float


class SearchOptions(TypedDict):
    """What narrows and pages an archival search, passed as is through every layer that
    forwards one (:mod:`agents.archival_rpc`, ``orchestrator.shared_archival``).

    Attributes:
        top_k: How many passages at most.
        offset: How many of the best to skip (a page's start).
        tags: Only passages with these tags (None: any).
        match_all_tags: A passage needs every one of ``tags``, not just one.
        start: Only passages created at or after this epoch time.
        end: Only passages created at or before this epoch time.
        archive_ids: Archives attached to the owner, ranked with its own passages.
    """

    top_k: int
    offset: int
    tags: list[str] | None
    match_all_tags: bool
    start: float | None
    end: float | None
    archive_ids: NotRequired[Sequence[str]]


class NewPassages(msgspec.Struct, frozen=True, kw_only=True):
    """Texts to store as passages of one owner, and what they share (see
    :meth:`Archival.insert_many`)."""

    texts: list[str]
    tags: list[str]
    source_id: str | None = None
    file_id: str | None = None
    ids: list[str] | None = None


class Archival(Protocol):
    """Archival memory of agents: passages with embeddings, searched by meaning.

    The implementations (local, remote, shared) subclass it and write :meth:`add_passages`;
    :meth:`insert` and :meth:`insert_many` are built on it.
    """

    async def insert(
        self,
        owner_id: str,
        embedding: str,
        text: str,
        tags: list[str],
        *,
        passage_id: str | None = None,
    ) -> Passage:
        """Embed ``text`` and store it as a passage of ``owner_id`` (as ``passage_id`` when
        given, so that inserting it again replaces it)."""
        ids = [passage_id] if passage_id else None
        return (await self.insert_many(owner_id, embedding, [text], tags, ids=ids))[0]

    async def insert_many(
        self,
        owner_id: str,
        embedding: str,
        texts: list[str],
        tags: list[str],
        *,
        source_id: str | None = None,
        file_id: str | None = None,
        ids: list[str] | None = None,
    ) -> list[Passage]:
        """Embed ``texts`` with ``embedding`` and store them as passages of ``owner_id``
        (of a source's file when ``source_id`` and ``file_id`` are given; with ``ids``, one a
        text, so that inserting them again replaces them)."""
        batch = NewPassages(texts=texts, tags=tags, source_id=source_id, file_id=file_id, ids=ids)
        return await self.add_passages(owner_id, embedding, batch)

    async def add_passages(
        self, owner_id: str, embedding: str, batch: NewPassages
    ) -> list[Passage]:
        """:meth:`insert_many` of ``batch``: what an implementation writes."""
        ...

    async def search(
        self, owner_id: str, embedding: str, query: str, **options: Unpack[SearchOptions]
    ) -> list[ScoredText]:
        """The passages of ``owner_id`` (and of the archives in ``options``) nearest in meaning
        to ``query``, embedded with the model ``embedding`` names; best first."""
        ...

    async def count(self, owner_id: str) -> int: ...

    async def tags(self, owner_id: str) -> list[str]: ...

    async def delete_owner(self, owner_id: str) -> int: ...


@dataclass
class ToolContext:
    """What a tool may touch during one tool call of one step."""

    agent: Agent
    blocks: list[Block]
    block_store: BlockStore
    messages: MessageLog
    archival: Archival | None
    run_id: str
    step_id: str
    call_id: str
    fence: tuple[str, str] | None = None
    messaging: Any = None  # agents.messaging.Messaging, for the multi-agent tools
    # The ids of the archives attached to the agent, read when a tool needs them.
    archives: Callable[[], Awaitable[list[str]]] | None = None
    sent_messages: list[str] = field(default_factory=list)
    memory_edited: bool = False

    def effect_id(self, kind: str) -> str:
        """A stable id for an effect of this tool call: the same if the step is re-run."""
        name = f"{self.agent.id}:{self.step_id}:{self.call_id}:{kind}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))

    def block(self, label: str) -> Block:
        for block in self.blocks:
            if block.label == label:
                return block
        labels = ", ".join(repr(b.label) for b in self.blocks) or "none"
        raise ToolError(
            f"there is no memory block labelled {label!r}; the blocks are: {labels}. "
            "Use one of those labels."
        )

    async def edit(self, label: str, change: Callable[[str], str]) -> Block:
        """Change a block's value with compare-and-set; ``change`` runs on the latest value."""
        current = self.block(label)
        if current.read_only:
            raise ToolError(
                f"block {label!r} is read-only; you cannot edit it. Keep the information "
                "elsewhere (another block or archival memory) if you need it."
            )

        def apply(latest: Block) -> Block:
            value = change(latest.value)
            if len(value) > latest.limit:
                raise ToolError(
                    f"that edit would make block {label!r} {len(value)} characters long, over "
                    f"its limit of {latest.limit}. Condense the block with memory_rethink, or "
                    "save the detail with archival_memory_insert instead."
                )
            return msgspec.structs.replace(latest, value=value)

        updated = await self.block_store.update(
            current.id,
            apply,
            editor=self.agent.id,
            edit_id=f"{self.step_id}:{self.call_id}",
            fence=self.fence,
        )
        self.blocks = [updated if b.id == updated.id else b for b in self.blocks]
        self.memory_edited = True
        return updated


# --- replying --------------------------------------------------------------------------------


def send_message(ctx: ToolContext, message: str) -> str:
    """Send a message to the user. This is the only way the user sees what you say.

    Args:
        message: The message to send, in your persona's voice.
    """
    if not message.strip():
        raise ToolError("the message is empty; write what you want the user to read")
    ctx.sent_messages.append(message)
    return "Sent message successfully."


# --- archival memory -----------------------------------------------------------------------


def _archival(ctx: ToolContext) -> Archival:
    if ctx.archival is None:
        raise ToolError("archival memory is not available right now; try again later")
    return ctx.archival


def _timestamp(value: str | None, name: str, *, end: bool = False) -> float | None:
    if value is None or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ToolError(
            f"{name}={value!r} is not a date; use ISO 8601 like 2024-01-31 or 2024-01-31T14:00:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if end and len(text) == 10:  # a bare date as an end bound means the whole day
        parsed += dt.timedelta(days=1)
    return parsed.timestamp()


async def archival_memory_insert(
    ctx: ToolContext, content: str, tags: list[str] | None = None
) -> str:
    """Save a passage to archival memory, your unlimited long-term store searched by meaning.

    Args:
        content: The text to remember; make it self-contained so it reads well when found.
        tags: Optional tags to filter searches by later.
    """
    if not content.strip():
        raise ToolError("content is empty; pass the text to save")
    passage = await _archival(ctx).insert(
        ctx.agent.id,
        ctx.agent.embedding,
        content,
        sorted(set(tags or [])),
        passage_id=f"passage-{ctx.effect_id('archival')}",
    )
    return f"Saved to archival memory as {passage.id}."


async def archival_memory_search(
    ctx: ToolContext,
    query: str,
    tags: list[str] | None = None,
    tag_match_mode: Literal["any", "all"] = "any",
    top_k: int = 5,
    page: int = 0,
    start_datetime: str | None = None,
    end_datetime: str | None = None,
) -> str:
    """Search archival memory by meaning.

    Args:
        query: What to look for, in words.
        tags: Only passages with these tags.
        tag_match_mode: "any" to match any of the tags, "all" to require every tag.
        top_k: How many results to return (1 to 50).
        page: Which page of results, starting at 0.
        start_datetime: Only passages saved at or after this ISO 8601 time.
        end_datetime: Only passages saved at or before this ISO 8601 time.
    """
    if not 1 <= top_k <= 50:
        raise ToolError(f"top_k must be between 1 and 50, got {top_k}")
    if page < 0:
        raise ToolError(f"page must be 0 or more, got {page}")
    start = _timestamp(start_datetime, "start_datetime")
    end = _timestamp(end_datetime, "end_datetime", end=True)
    # The agent's own passages and those of its attached archives, ranked together.
    archive_ids = await ctx.archives() if ctx.archives is not None else []
    results = await _archival(ctx).search(
        ctx.agent.id,
        ctx.agent.embedding,
        query,
        top_k=top_k,
        offset=page * top_k,
        tags=tags or None,
        match_all_tags=tag_match_mode == "all",
        start=start,
        end=end,
        archive_ids=archive_ids,
    )
    if not results:
        return "No results found."
    rows = [
        {
            "timestamp": dt.datetime.fromtimestamp(r.passage.created_at, tz=dt.UTC).isoformat(),
            "content": r.passage.text,
            "tags": r.passage.tags,
        }
        for r in results
    ]
    return json.dumps(rows, ensure_ascii=False)


# --- recall memory -------------------------------------------------------------------------


async def conversation_search(
    ctx: ToolContext,
    query: str,
    roles: list[Literal["user", "assistant", "tool"]] | None = None,
    limit: int = 10,
    page: int = 0,
    start_date: str | None = None,
    end_date: str | None = None,
) -> str:
    """Search your whole conversation history (recall memory) by keywords or a "quoted phrase".

    Args:
        query: Keywords to find; put an exact phrase in double quotes.
        roles: Only messages from these roles.
        limit: How many messages to return (1 to 50).
        page: Which page of results, starting at 0.
        start_date: Only messages at or after this ISO 8601 date or time.
        end_date: Only messages at or before this ISO 8601 date or time.
    """
    if not 1 <= limit <= 50:
        raise ToolError(f"limit must be between 1 and 50, got {limit}")
    if page < 0:
        raise ToolError(f"page must be 0 or more, got {page}")
    found = await ctx.messages.search(
        ctx.agent.id,
        query,
        roles=list(roles) if roles else None,
        start=_timestamp(start_date, "start_date"),
        end=_timestamp(end_date, "end_date", end=True),
        limit=limit,
        page=page,
    )
    if not found.messages:
        return "No results found."
    rows = [
        {
            "timestamp": dt.datetime.fromtimestamp(m.created_at, tz=dt.UTC).isoformat(),
            "role": m.role,
            "content": _searchable_text(m.content, m.tool_calls),
        }
        for m in found.messages
    ]
    return json.dumps({"total": found.total, "page": page, "results": rows}, ensure_ascii=False)


def _searchable_text(content: str, calls: list[Any]) -> str:
    parts = [content] if content else []
    parts += [f"{c.name}({c.arguments})" for c in calls]
    return " ".join(parts)


BaseToolFunction = Callable[..., str | Awaitable[str]]

MEMORY_TOOL_NAMES = (
    "core_memory_append",
    "core_memory_replace",
    "memory_insert",
    "memory_replace",
    "memory_rethink",
)
BASE_TOOL_NAMES = (
    "send_message",
    *MEMORY_TOOL_NAMES,
    "archival_memory_insert",
    "archival_memory_search",
    "conversation_search",
)


def base_tool_functions() -> dict[str, BaseToolFunction]:
    """Every built-in tool by name (the multi-agent tools are added on request)."""
    from agents.tools.memory import (
        core_memory_append,
        core_memory_replace,
        memory,
        memory_insert,
        memory_replace,
        memory_rethink,
    )
    from agents.tools.multi_agent import (
        send_message_to_agent_and_wait_for_reply,
        send_message_to_agent_async,
        send_message_to_agents_matching_tags,
    )

    return {
        "send_message_to_agent_and_wait_for_reply": send_message_to_agent_and_wait_for_reply,
        "send_message_to_agent_async": send_message_to_agent_async,
        "send_message_to_agents_matching_tags": send_message_to_agents_matching_tags,
        "send_message": send_message,
        "core_memory_append": core_memory_append,
        "core_memory_replace": core_memory_replace,
        "memory_insert": memory_insert,
        "memory_replace": memory_replace,
        "memory_rethink": memory_rethink,
        "memory": memory,
        "archival_memory_insert": archival_memory_insert,
        "archival_memory_search": archival_memory_search,
        "conversation_search": conversation_search,
    }
