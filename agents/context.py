"""Context compilation: an agent's state becomes the chat request of its next step.

Layout of the system message (pinned by golden-file tests):

1. the agent's system prompt;
2. tool rules, when any (rendered by the rule engine);
3. ``<memory_blocks>``: each block with label, description, characters used / limit,
   read-only flag and value;
4. ``<memory_metadata>``: current time, last memory edit, recall and archival sizes, archival
   tags;
5. ``<conversation_summary>``: the summary of evicted messages, shown as a system alert.

Then the in-context messages, in order, in OpenAI chat shape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from storage.records import Block, Message

if TYPE_CHECKING:
    from agents.tools.base import Archival

__all__ = (
    "MemoryStats",
    "archival_totals",
    "compile_system",
    "render_blocks",
    "render_metadata",
    "render_summary",
    "to_openai_messages",
)


class MemoryStats(msgspec.Struct, frozen=True, kw_only=True):
    """Numbers shown in the memory metadata section."""

    now: float
    last_memory_edit_at: float | None
    recall_count: int
    archival_count: int
    archival_tags: tuple[str, ...] = ()
    evicted_count: int = 0


async def archival_totals(archival: Archival, owner_ids: Sequence[str]) -> tuple[int, list[str]]:
    """How many passages the owners have together and their distinct tags: what an agent is
    told of its archival memory (its own passages and its attached archives')."""
    count, tags = 0, set[str]()
    for owner_id in owner_ids:
        found = await archival.count(owner_id)
        count += found
        if found:
            tags.update(await archival.tags(owner_id))
    return count, sorted(tags)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %I:%M:%S %p UTC%z")


def render_blocks(blocks: Sequence[Block]) -> str:
    """The ``<memory_blocks>`` section."""
    parts = [
        "<memory_blocks>",
        "The following memory blocks are part of your core memory, always in context:",
    ]
    for block in blocks:
        parts += [
            "",
            f"<{block.label}>",
            "<description>",
            block.description or _default_description(block.label),
            "</description>",
            "<metadata>",
            f"- chars_current={len(block.value)}",
            f"- chars_limit={block.limit}",
            f"- read_only={'true' if block.read_only else 'false'}",
            "</metadata>",
            "<value>",
            block.value,
            "</value>",
            f"</{block.label}>",
        ]
    parts.append("</memory_blocks>")
    return "\n".join(parts)


def _default_description(label: str) -> str:
    if label == "persona":
        return "Your persona: who you are and how you behave."
    if label == "human":
        return "What you know about the person you are talking to."
    return f"The {label!r} block of your core memory."


def render_metadata(stats: MemoryStats) -> str:
    edited = _when(stats.last_memory_edit_at) if stats.last_memory_edit_at else "never"
    lines = [
        "<memory_metadata>",
        f"- The current time is: {_when(stats.now)}",
        f"- Memory blocks were last modified: {edited}",
        f"- {stats.recall_count} previous messages are stored in recall memory "
        "(search them with conversation_search)",
        f"- {stats.archival_count} passages are stored in archival memory "
        "(search them with archival_memory_search)",
    ]
    if stats.archival_tags:
        lines.append(f"- Archival memory tags: {', '.join(stats.archival_tags)}")
    lines.append("</memory_metadata>")
    return "\n".join(lines)


def render_summary(summary: str, evicted: int) -> str:
    return "\n".join(
        [
            "<conversation_summary>",
            f"System alert: {evicted} earlier messages left your context window to make room. "
            "They are still in recall memory. Summary of them:",
            summary,
            "</conversation_summary>",
        ]
    )


def compile_system(
    system_prompt: str,
    blocks: Sequence[Block],
    stats: MemoryStats,
    *,
    summary: str = "",
    rules: str = "",
) -> str:
    """The full system message of the next request."""
    sections = [system_prompt.strip()]
    if rules.strip():
        sections.append(rules.strip())
    sections.append(render_blocks(blocks))
    sections.append(render_metadata(stats))
    if summary.strip():
        sections.append(render_summary(summary.strip(), stats.evicted_count))
    return "\n\n".join(sections)


def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Stored messages in OpenAI chat shape; a tool result always follows its call."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": message.content or None}
            if message.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in message.tool_calls
                ]
            elif not message.content:
                entry["content"] = ""
            out.append(entry)
        elif message.role == "tool":
            out.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
            )
        else:
            out.append({"role": message.role, "content": message.content})
    return out
