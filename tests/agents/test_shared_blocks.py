"""Shared memory blocks: concurrent edits never lose an update; history; the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import msgspec
import redis.asyncio as aioredis

from agents.manage import AgentSpec, attach_block, create_agent
from agents.runtime import Runtime
from agents.tools.base import ToolContext
from agents.tools.memory import core_memory_append
from storage.blocks import new_block
from storage.records import Agent


async def test_twenty_agents_append_to_one_block_at_once(runtime: Runtime) -> None:
    shared = await runtime.blocks.create(
        new_block("team", "", limit=20_000, metadata={"shared": "true"}), editor="test"
    )
    agents: list[Agent] = []
    for i in range(20):
        agent = await create_agent(runtime, AgentSpec(name=f"writer{i}", memory_blocks=[]))
        agents.append(await attach_block(runtime, agent.id, shared.id))

    async def append(agent: Agent) -> None:
        blocks = await runtime.blocks.get_many(agent.block_ids)
        ctx = ToolContext(
            agent=agent,
            blocks=blocks,
            block_store=runtime.blocks,
            messages=runtime.messages,
            archival=None,
            run_id="run-x",
            step_id=f"step-{agent.id}",
            call_id="call-1",
        )
        await core_memory_append(ctx, "team", f"note from {agent.name}")

    async with anyio.create_task_group() as tg:
        for agent in agents:
            tg.start_soon(append, agent)
    block = await runtime.blocks.get(shared.id)
    lines = block.value.splitlines()
    assert sorted(lines) == sorted(f"note from writer{i}" for i in range(20))
    history = await runtime.blocks.history(shared.id)
    assert [h.version for h in history] == list(range(1, 22))  # creation + 20 appends
    assert {h.editor for h in history[1:]} == {a.id for a in agents}
    assert history[-1].value == block.value
    # Every agent sees the shared block (and its latest value) at its next step.
    for agent in agents:
        [seen] = await runtime.blocks.get_many((await runtime.agents.get(agent.id)).block_ids)
        assert seen.value == block.value


async def test_an_edit_replayed_with_the_same_id_applies_once(runtime: Runtime) -> None:
    block = await runtime.blocks.create(new_block("human", ""), editor="test")

    def add(current: object) -> object:
        return msgspec.structs.replace(current, value=current.value + "x")  # type: ignore[attr-defined]

    for _ in range(3):
        await runtime.blocks.update(block.id, add, editor="a", edit_id="step-1:call-1")  # type: ignore[arg-type]
    assert (await runtime.blocks.get(block.id)).value == "x"


def test_blocks_cli(redis_url: str, redis_client: aioredis.Redis, tmp_path: Path) -> None:
    env = {**os.environ, "MEMGRID_REDIS_URL": redis_url, "MEMGRID_HOME": str(tmp_path)}

    def memgrid(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    made = memgrid("blocks", "create", "company", "--value", "AgentOS", "--json")
    assert made.returncode == 0, made.stderr
    block_id = json.loads(made.stdout)["id"]
    assert memgrid("agents", "create", "eval").returncode == 0
    assert memgrid("blocks", "attach", block_id, "eval").returncode == 0
    shown = json.loads(memgrid("blocks", "show", block_id, "--json").stdout)
    assert shown["agents"] == ["eval"] and shown["value"] == "AgentOS"
    history = json.loads(memgrid("blocks", "history", block_id, "--json").stdout)
    assert [h["value"] for h in history] == ["AgentOS"] and history[0]["editor"] == "cli"
    listed = memgrid("blocks", "list")
    assert block_id in listed.stdout
    missing = memgrid("blocks", "history", "block-nope")
    assert missing.returncode == 2 and "no block with id 'block-nope'" in missing.stderr
    assert memgrid("blocks", "detach", block_id, "eval").returncode == 0
