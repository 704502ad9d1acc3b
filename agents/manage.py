"""Creating, changing and deleting agents with their blocks: the Python API of the runtime.

Used by the CLI, the REST API and workflows alike, so that every entry point applies the same
defaults and checks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import msgspec
import structlog

from agents.prompts import DEFAULT_SYSTEM_PROMPT, LETTA_V1_SYSTEM_PROMPT, MEMGPT_V2_SYSTEM_PROMPT
from agents.runtime import Runtime
from agents.tools.base import BASE_TOOL_NAMES, base_tool_functions
from bus import keys as bus_keys
from storage import keys
from storage.blocks import new_block
from storage.errors import InvalidRecord, NotFound
from storage.records import Agent, AgentType, Block, Run, ToolRule, decode, new_id
from storage.settings import DEFAULT_EMBEDDING

__all__ = (
    "BASE_TOOLS_BY_TYPE",
    "DEFAULT_HUMAN",
    "DEFAULT_PERSONA",
    "AgentSpec",
    "BlockSpec",
    "attach_block",
    "base_tool_names",
    "create_agent",
    "default_model",
    "delete_agent",
    "detach_block",
)

log = structlog.get_logger("memgrid.manage")

_BATCH = 200


def _texts(values: Iterable[object]) -> list[str]:
    """Members of a Redis reply as str (clients run with ``decode_responses=False``)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


DEFAULT_PERSONA = (
    "I am a helpful, curious assistant with a long memory. I keep what I learn about the "
    "people I talk to in my core memory and use it to help them better."
)
DEFAULT_HUMAN = ""


def default_model() -> str:
    """``MEMGRID_MODEL`` or ``openai/gpt-4o-mini``."""
    return os.environ.get("MEMGRID_MODEL") or "openai/gpt-4o-mini"


class BlockSpec(msgspec.Struct, kw_only=True):
    label: str
    value: str = ""
    limit: int = 5000
    description: str = ""
    read_only: bool = False


class AgentSpec(msgspec.Struct, kw_only=True):
    """What a caller asks for; unset fields take memgrid's defaults."""

    name: str | None = None
    agent_type: str | None = None  # an AgentType; memgpt_agent when None (docs/agent-types.md)
    system: str | None = None
    model: str | None = None
    embedding: str | None = None
    memory_blocks: list[BlockSpec] | None = None
    block_ids: list[str] = msgspec.field(default_factory=list)
    tools: list[str] = msgspec.field(default_factory=list)
    include_base_tools: bool = True
    tool_rules: list[ToolRule] = msgspec.field(default_factory=list)
    tags: list[str] = msgspec.field(default_factory=list)
    description: str = ""
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    context_window: int | None = None
    max_steps: int | None = None
    model_endpoint: str | None = None


_V2_MEMORY_TOOLS = ("memory_insert", "memory_replace", "memory_rethink", "memory")
_SEARCH_TOOLS = ("archival_memory_insert", "archival_memory_search", "conversation_search")
#: The base tools an agent of each type gets (``include_base_tools``): MemGPT's set; Letta's
#: v2 memory tools with send_message; the v2 memory tools alone (a letta_v1 agent answers in
#: plain text).
BASE_TOOLS_BY_TYPE: dict[AgentType, tuple[str, ...]] = {
    "memgpt_agent": BASE_TOOL_NAMES,
    "memgpt_v2_agent": ("send_message", *_V2_MEMORY_TOOLS, *_SEARCH_TOOLS),
    "letta_v1_agent": (*_V2_MEMORY_TOOLS, *_SEARCH_TOOLS),
}
_SYSTEM_PROMPTS: dict[AgentType, str] = {
    "memgpt_agent": DEFAULT_SYSTEM_PROMPT,
    "memgpt_v2_agent": MEMGPT_V2_SYSTEM_PROMPT,
    "letta_v1_agent": LETTA_V1_SYSTEM_PROMPT,
}


def base_tool_names(agent_type: str | None) -> tuple[str, ...]:
    """The base tools an agent of ``agent_type`` gets (memgpt_agent's when None).

    Raises:
        InvalidRecord: a type memgrid does not run.
    """
    return BASE_TOOLS_BY_TYPE[_agent_type(agent_type)]


def _agent_type(value: str | None) -> AgentType:
    """The agent type asked for (memgpt_agent when none was).

    Raises:
        InvalidRecord: a type memgrid does not run (Letta's react_agent, sleeptime_agent...).
    """
    if value is None:
        return "memgpt_agent"
    for known in BASE_TOOLS_BY_TYPE:
        if value == known:
            return known
    raise InvalidRecord(
        f"agent_type {value!r} is not one memgrid runs: use memgpt_agent, memgpt_v2_agent or "
        "letta_v1_agent, or leave it out for memgpt_agent"
    )


def _default_blocks() -> list[BlockSpec]:
    return [BlockSpec(label="persona", value=DEFAULT_PERSONA), BlockSpec(label="human", value="")]


async def create_agent(
    rt: Runtime, spec: AgentSpec, *, known_tools: Sequence[str] | None = None
) -> Agent:
    """Create an agent, its own blocks, and attach existing blocks by id.

    Raises:
        InvalidRecord: a tool that does not exist, a duplicate block label, a bad limit.
        Conflict: the name is taken.
        NotFound: a block id that does not exist.
    """
    agent_id = new_id("agent")
    agent_type = _agent_type(spec.agent_type)
    tools = list(BASE_TOOLS_BY_TYPE[agent_type]) if spec.include_base_tools else []
    for name in spec.tools:
        if name not in tools:
            tools.append(name)
    builtin = base_tool_functions()
    custom = await rt.tools.get_many_by_name([t for t in tools if t not in builtin])
    known = set(builtin) | set(custom) | set(known_tools or ())
    missing = [t for t in tools if t not in known]
    if missing:
        raise InvalidRecord(
            f"unknown tools {missing}: create them first (the REST API's tools, or a "
            "workflow's tools section), or fix the names"
        )
    problems = rt.gate.check(spec.tool_rules, tools)
    if problems:
        raise InvalidRecord("invalid tool rules: " + "; ".join(problems))
    attached = await rt.blocks.get_many(spec.block_ids)
    found = {b.id for b in attached}
    absent = [b for b in spec.block_ids if b not in found]
    if absent:
        raise NotFound(f"no blocks with ids {absent}")
    specs = _default_blocks() if spec.memory_blocks is None else spec.memory_blocks
    labels = [b.label for b in attached] + [b.label for b in specs]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise InvalidRecord(f"two blocks share the label(s) {duplicates}; labels must be unique")
    own: list[Block] = [
        new_block(b.label, b.value, limit=b.limit, description=b.description, read_only=b.read_only)
        for b in specs
    ]
    agent = Agent(
        id=agent_id,
        name=spec.name or f"agent-{agent_id[6:14]}",
        agent_type=agent_type,
        system=spec.system or _SYSTEM_PROMPTS[agent_type],
        model=spec.model or default_model(),
        embedding=spec.embedding or os.environ.get("MEMGRID_EMBEDDING") or DEFAULT_EMBEDDING,
        tools=tools,
        tool_rules=list(spec.tool_rules),
        block_ids=[b.id for b in attached] + [b.id for b in own],
        tags=list(spec.tags),
        description=spec.description,
        metadata=dict(spec.metadata),
        context_window=spec.context_window or 32000,
        max_steps=spec.max_steps or 10,
        model_endpoint=spec.model_endpoint,
    )
    for block in own:
        await rt.blocks.create(block, editor=agent_id)
    try:
        await rt.agents.create(agent)
    except Exception:
        for block in own:
            await rt.blocks.delete(block.id)
        raise
    for block_id in agent.block_ids:
        await rt.blocks.mark_attached(block_id, agent_id, True)
    return agent


async def delete_agent(rt: Runtime, agent_id: str) -> Agent:
    """Delete an agent, its message log, and the blocks no other agent uses."""
    agent = await rt.agents.delete(agent_id)
    await rt.messages.delete_agent(agent_id)
    await _delete_runs_and_queues(rt, agent_id)
    if rt.archival is not None:
        try:
            await rt.archival.delete_owner(agent_id)
        except Exception as exc:  # the agent is gone either way; say what was left behind
            log.warning("archival_not_deleted", agent_id=agent_id, error=str(exc))
    for block_id in agent.block_ids:
        await rt.blocks.mark_attached(block_id, agent_id, False)
        if not await rt.blocks.attached_agents(block_id):
            try:
                block = await rt.blocks.get(block_id)
            except NotFound:
                continue
            if block.metadata.get("shared") != "true":
                await rt.blocks.delete(block_id)
    return agent


async def _delete_runs_and_queues(rt: Runtime, agent_id: str) -> None:
    """Delete what the bus and the runs keep for the agent: its runs (records, id indexes, event
    streams, step journals, waits' replies, client otids), inbox, lease, fence, timer and
    source links. Found through the agent's run list and records, never a SCAN; keys it
    cannot find (a run that left the list) expire on their own.

    Deleting the fence also stops a worker that still runs a step of the agent: its commit's
    fence check fails and it writes nothing. An agent waiting on one of its unfinished runs
    gets an answer first (through the outbox, as a finished run's reply travels), so that it
    does not wait until its timeout for an agent that is gone.
    """
    redis = rt.redis
    runs_key = keys.agent_runs(agent_id)
    while run_ids := _texts(await redis.zrange(runs_key, 0, _BATCH - 1)):
        raws = await redis.mget([keys.run(agent_id, r) for r in run_ids])
        doomed: list[str] = []  # the agent's keys: one hash slot
        indexes: list[str] = []  # each in a slot of its own
        await _answer_waiters(rt, [decode(Run, raw) for raw in raws if raw is not None])
        for run_id, raw in zip(run_ids, raws, strict=True):
            doomed += [
                keys.run(agent_id, run_id),
                bus_keys.run_events(agent_id, run_id),
                bus_keys.run_callback(agent_id, run_id),
            ]
            indexes.append(keys.run_index(run_id))
            if raw is None:
                continue
            run = decode(Run, raw)
            doomed += [bus_keys.step_journal(agent_id, run_id, s) for s in range(run.steps + 1)]
            if run.otid:
                doomed.append(bus_keys.otid(agent_id, run.otid))
            if run.wait is not None:
                doomed.append(bus_keys.wait_replies(agent_id, run_id, run.wait.call_id))
        async with redis.pipeline(transaction=False) as pipe:
            # UNLINK as a raw command: a cluster's pipeline sends each to its slot's node.
            pipe.execute_command("UNLINK", *doomed)
            for index in indexes:
                pipe.execute_command("UNLINK", index)
            pipe.zrem(bus_keys.runs_by_time(agent_id), *[f"{r} {agent_id}" for r in run_ids])
            pipe.zrem(runs_key, *run_ids)
            await pipe.execute()
    sources = _texts(await redis.smembers(keys.agent_sources(agent_id)))
    archives = _texts(await redis.smembers(keys.agent_archives(agent_id)))
    async with redis.pipeline(transaction=False) as pipe:
        for source_id in sources:
            pipe.srem(keys.source_agents(source_id), agent_id)
        for archive_id in archives:  # attached archives stay, with their passages
            pipe.srem(keys.archive_agents(archive_id), agent_id)
        pipe.zrem(bus_keys.timers(), agent_id)
        pipe.execute_command(
            "UNLINK",
            runs_key,
            bus_keys.outbox(agent_id),
            keys.agent_sources(agent_id),
            keys.agent_archives(agent_id),
            bus_keys.inbox(agent_id),
            bus_keys.lease(agent_id),
            bus_keys.fence(agent_id),
        )
        await pipe.execute()


async def _answer_waiters(rt: Runtime, runs: Sequence[Run]) -> None:
    """Fail the unfinished runs that another agent waits on, with an answer saying why."""
    from agents._waits import end_wait, relay_replies, stage_reply

    open_runs = [r for r in runs if r.status not in ("completed", "failed", "cancelled")]
    for run in open_runs:
        if run.wait is not None:  # it no longer waits on anyone
            await end_wait(rt.redis, run)
    waited_on = [r for r in open_runs if r.reply_to is not None]
    if not waited_on:
        return
    now = rt.clock()
    async with rt.redis.pipeline(transaction=True) as pipe:
        for run in waited_on:
            run.status, run.stop_reason = "failed", "error"
            run.error = "the agent was deleted before it answered"
            run.completed_at = now
            stage_reply(pipe, run, now)
        await pipe.execute()
    for _ in range(1 + len(waited_on)):  # each pass relays a batch; normally one pass
        if not await relay_replies(rt.redis, waited_on[0].agent_id):
            break


async def attach_block(rt: Runtime, agent_id: str, block_id: str) -> Agent:
    agent = await rt.agents.get(agent_id)
    block = await rt.blocks.get(block_id)
    if block_id in agent.block_ids:
        return agent
    current = await rt.blocks.get_many(agent.block_ids)
    if any(b.label == block.label for b in current):
        raise InvalidRecord(
            f"agent {agent.name!r} already has a block labelled {block.label!r}; detach it first"
        )
    # Appended to the record as stored when written (a compare-and-set): a step committing
    # meanwhile, or another attach, is kept.
    agent = await rt.agents.change(
        agent_id,
        lambda stored: (
            None if block_id in stored.block_ids else {"block_ids": [*stored.block_ids, block_id]}
        ),
    )
    await rt.blocks.mark_attached(block_id, agent_id, True)
    return agent


async def detach_block(rt: Runtime, agent_id: str, block_id: str) -> Agent:
    agent = await rt.agents.get(agent_id)
    if block_id not in agent.block_ids:
        raise NotFound(f"block {block_id!r} is not attached to agent {agent.name!r}")
    agent = await rt.agents.change(
        agent_id, lambda stored: {"block_ids": [b for b in stored.block_ids if b != block_id]}
    )
    await rt.blocks.mark_attached(block_id, agent_id, False)
    return agent
