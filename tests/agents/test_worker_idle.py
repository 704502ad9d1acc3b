"""An idle worker waits on the ready shards instead of polling them, and starts a message to
an agent on any shard at once: on one Redis one blocked read covers every shard, on a Redis
Cluster (the cluster pass) one blocked read per shard does."""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio
import redis.asyncio as aioredis

from agents.manage import AgentSpec, create_agent
from agents.runs import RunStore
from agents.runtime import Runtime
from agents.scripted import FunctionModel, say
from agents.worker import Worker, WorkerSettings
from bus import is_cluster
from bus import keys as bus_keys
from bus.envelopes import InboxMessage
from bus.lease import Lease
from tests._cluster import server_clients


async def _sum(nodes: list[aioredis.Redis], section: str, field: str) -> int:
    return sum([int((await node.info(section))[field]) for node in nodes])


async def test_an_idle_worker_blocks_on_every_shard_and_starts_a_message_at_once(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    function_model.policy = lambda request: say("here")
    redis, runs = runtime.redis, RunStore(runtime.redis)
    # Agents on six different shards (on a cluster, in different slots and nodes).
    agents, shards = [], set()
    for n in range(100):
        if len(agents) == 6:
            break
        agent = await create_agent(runtime, AgentSpec(name=f"idle{n}"))
        if bus_keys.ready(agent.id) not in shards:
            shards.add(bus_keys.ready(agent.id))
            agents.append(agent)
    worker = Worker(runtime, WorkerSettings(concurrency=8, block_ms=500))
    started: dict[str, float] = {}
    arrived = anyio.Event()
    process = worker._process

    async def timed(lease: Lease, entry_id: str, raw: bytes, **kw: Any) -> object:
        started[lease.agent_id] = time.monotonic()
        arrived.set()
        return await process(lease, entry_id, raw, **kw)

    worker._process = timed  # type: ignore[assignment]
    # Every shard watched: 16 blocked reads on a cluster, one on one Redis.
    watching = len(bus_keys.ready_shards()) if is_cluster(redis) else 1
    async with server_clients(redis) as nodes, anyio.create_task_group() as tg:

        async def idle() -> None:
            with anyio.fail_after(5):
                # The servers' state has no event to wait on: polled, bounded.
                while await _sum(nodes, "clients", "blocked_clients") < watching:  # noqa: ASYNC110
                    await anyio.sleep(0.005)

        tg.start_soon(worker.run)
        await idle()
        # Commands that an idle worker sends over one second, in which each shard's read ends
        # and is sent again once or twice (~26/s measured; a sweep of every shard each 50 ms
        # made ~500/s).
        before, began = await _sum(nodes, "stats", "total_commands_processed"), time.monotonic()
        await anyio.sleep(1.0)  # the measuring window itself, not a wait for work
        after, took = await _sum(nodes, "stats", "total_commands_processed"), time.monotonic()
        per_s = (after - before - len(nodes)) / (took - began)
        assert per_s < 60, f"an idle worker sent {per_s:.0f} commands/s"
        delays = []
        for agent in agents:
            await idle()
            arrived = anyio.Event()
            sent = time.monotonic()
            sub = await runs.submit(agent.id, [InboxMessage(content="wake up")])
            with anyio.fail_after(5):
                await arrived.wait()
            delays.append(started[agent.id] - sent)
            async for _ in runs.follow(agent.id, sub.run_id, timeout_s=5):
                pass
        worker.stop()
    # From submit to the turn's start: ~1 ms (a sweep of the shards, then 50 ms blocked on one
    # of them, took 56-104 ms here).
    assert statistics.median(delays) < 0.015, [f"{d * 1000:.1f} ms" for d in delays]
    assert max(delays) < 0.1, [f"{d * 1000:.1f} ms" for d in delays]  # a hiccup, at worst
