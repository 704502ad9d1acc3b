"""What an agent's next request to the model holds, section by section, in tokens.

The same compilation the step loop uses (:func:`agents.context.compile_system`, the tools the
gate offers at the start of a turn, the messages in context) measured with the agent model's
token counter. It answers ``memgrid context`` and ``GET /v1/agents/{id}/context`` (Letta's
``ContextWindowOverview``), so a person sees why an agent is near its window before it is.
"""

from __future__ import annotations

from typing import Any

import msgspec

from agents._decide import policy_for
from agents.context import (
    MemoryStats,
    archival_totals,
    compile_system,
    render_blocks,
    render_metadata,
    render_summary,
    to_openai_messages,
)
from agents.gate import TurnState
from agents.runtime import Runtime
from agents.tools.registry import agent_tools
from storage.records import Agent
from storage.step_reads import read_step

__all__ = ("ContextOverview", "context_overview")


class ContextOverview(msgspec.Struct, kw_only=True):
    """Tokens by section against the window; field names follow Letta's
    ``ContextWindowOverview`` so that its clients read it unchanged."""

    context_window_size_max: int
    context_window_size_current: int
    num_messages: int
    num_archival_memory: int
    num_recall_memory: int
    num_tokens_external_memory_summary: int
    external_memory_summary: str
    num_tokens_system: int
    system_prompt: str
    num_tokens_core_memory: int
    core_memory: str
    num_tokens_tool_usage_rules: int
    tool_usage_rules: str | None
    num_tokens_summary_memory: int
    summary_memory: str | None
    num_tokens_functions_definitions: int
    functions_definitions: list[dict[str, Any]]
    num_tokens_messages: int
    messages: list[dict[str, Any]]


async def context_overview(rt: Runtime, agent: Agent) -> ContextOverview:
    """Measure ``agent``'s context as its next step would compile it."""
    reads = await read_step(rt.redis, agent)
    archival_count, tags = 0, tuple[str, ...]()
    if rt.archival is not None:
        try:
            owners = [agent.id, *reads.archive_ids]
            archival_count, found = await archival_totals(rt.archival, owners)
            tags = tuple(found)
        except Exception:  # an unreachable archive is shown as empty, as the loop does
            archival_count, tags = 0, ()
    stats = MemoryStats(
        now=rt.clock(),
        last_memory_edit_at=agent.last_memory_edit_at,
        recall_count=reads.message_count,
        archival_count=archival_count,
        archival_tags=tags,
        evicted_count=agent.evicted_count,
    )
    tools = agent_tools(agent, reads.tools)
    offered = rt.gate.offered(agent, TurnState(), list(tools))
    policy = policy_for(agent.agent_type)
    schemas = [policy.tool_entry(tools[name]) for name in offered if name in tools]
    rules = rt.gate.prompt(agent).strip()
    summary = agent.summary.strip()
    system = compile_system(agent.system, reads.blocks, stats, summary=agent.summary, rules=rules)
    messages = to_openai_messages(reads.messages)
    counter = rt.counter(agent.model)

    def tokens(text: str) -> int:
        return counter.count([{"role": "system", "content": text}]) if text else 0

    metadata = render_metadata(stats)
    functions = counter.count([], schemas) if schemas else 0
    in_messages = counter.count(messages) if messages else 0
    return ContextOverview(
        context_window_size_max=agent.context_window,
        context_window_size_current=counter.count(
            [{"role": "system", "content": system}, *messages], schemas
        ),
        num_messages=len(messages) + 1,  # the system message counts, as in Letta
        num_archival_memory=archival_count,
        num_recall_memory=reads.message_count,
        num_tokens_external_memory_summary=tokens(metadata),
        external_memory_summary=metadata,
        num_tokens_system=tokens(agent.system.strip()),
        system_prompt=agent.system.strip(),
        num_tokens_core_memory=tokens(render_blocks(reads.blocks)),
        core_memory=render_blocks(reads.blocks),
        num_tokens_tool_usage_rules=tokens(rules),
        tool_usage_rules=rules or None,
        num_tokens_summary_memory=tokens(
            render_summary(summary, agent.evicted_count) if summary else ""
        ),
        summary_memory=summary or None,
        num_tokens_functions_definitions=functions,
        functions_definitions=schemas,
        num_tokens_messages=in_messages,
        messages=messages,
    )
