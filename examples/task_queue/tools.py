"""The task queue's tools: push to and pop from a JSON list kept in the agent's ``tasks`` block.

memgrid runs a tool registered by import path inside the worker that runs the agent, and fills
a parameter named ``agent_state`` with the calling agent (its ``id``, ``name`` and ``tags``).
The course's tools edited the block through the Letta REST client; these use memgrid's block
store directly, on a short-lived connection to the same Redis the worker uses
(``MEMGRID_REDIS_URL``, else the local server under ``MEMGRID_HOME``). Each edit is a
compare-and-set on the block's version, so a concurrent edit is never lost, and the agent's
next step sees the new value in its core memory.

Like every custom tool's effect on the world, these edits are at-least-once: if a worker dies
after the tool ran but before the step committed, the step runs again and so does the tool.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
import msgspec

from bus import BusSettings, connect, resolve_redis_url
from storage.agents import AgentStore
from storage.blocks import BlockStore
from storage.records import Block


class AgentState(Protocol):
    """What memgrid passes as ``agent_state`` (left out of the tool's schema)."""

    id: str


@asynccontextmanager
async def _block_store() -> AsyncIterator[tuple[AgentStore, BlockStore]]:
    url = await anyio.to_thread.run_sync(resolve_redis_url, BusSettings.from_env())
    redis = connect(url, max_connections=2)
    try:
        yield AgentStore(redis), BlockStore(redis)
    finally:
        await redis.aclose()


async def _edit_tasks(agent_id: str, change: Callable[[list[str]], list[str]]) -> list[str]:
    """Apply ``change`` to the agent's task list (re-run on the latest value on conflict)."""
    async with _block_store() as (agents, blocks):
        agent = await agents.get(agent_id)
        found = [b for b in await blocks.get_many(agent.block_ids) if b.label == "tasks"]
        if not found:
            raise ValueError("this agent has no 'tasks' block; create it with value '[]'")

        def apply(block: Block) -> Block:
            tasks = change(json.loads(block.value or "[]"))
            return msgspec.structs.replace(block, value=json.dumps(tasks))

        updated = await blocks.update(found[0].id, apply, editor=agent_id)
        return list(json.loads(updated.value))


async def task_queue_push(agent_state: AgentState, task_description: str) -> str:
    """Push a task to the end of the task queue stored in core memory.

    Args:
        task_description: A description of the next task you must accomplish.
    """
    tasks = await _edit_tasks(agent_state.id, lambda tasks: [*tasks, task_description])
    return f"Queued. Tasks now: {json.dumps(tasks)}"


async def task_queue_pop(agent_state: AgentState) -> str:
    """Take the next task off the front of the task queue stored in core memory."""
    popped: list[str] = []

    def pop(tasks: list[str]) -> list[str]:
        popped[:] = tasks[:1]  # re-run on a conflict: keep only the last attempt's task
        return tasks[1:]

    remaining = await _edit_tasks(agent_state.id, pop)
    if not popped:
        return "The task queue is empty."
    return f"Next task: {popped[0]}. Remaining tasks: {json.dumps(remaining)}"
