"""A healthy worker keeps its leases; stale signals are found wherever they are; a worker that
lost an agent leaves the new holder's signal alone."""

from __future__ import annotations

import contextlib
import time

import anyio
import anyio.lowlevel
import pytest
import redis.asyncio as aioredis
from redis.exceptions import MaxConnectionsError

from agents.manage import AgentSpec, create_agent
from agents.runs import RunStore
from agents.runtime import Runtime
from agents.scripted import ChatRequest, Outcome, ScriptedModel, Slow, say
from agents.worker import Worker, WorkerSettings
from bus import connect, streams
from bus import keys as bus_keys
from bus.envelopes import InboxMessage
from bus.lease import acquire
from tests._util import agent_with_message, burst, http_pool


async def _finished(runs: RunStore, agent_id: str, run_id: str, timeout_s: float) -> None:
    with anyio.fail_after(timeout_s):
        async for _ in runs.follow(agent_id, run_id):
            pass


async def test_a_worker_whose_pool_is_saturated_still_renews_its_leases(
    redis_url: str, redis_client: aioredis.Redis, runtime: Runtime, scripted_model: ScriptedModel
) -> None:
    # A worker whose 4 pooled connections are all held by slow commands (as thousands of
    # turns would hold 256) while its turn waits on the model: renewal must not queue.
    small = connect(redis_url, max_connections=4)
    rt = Runtime(redis=small, llm=http_pool(scripted_model))
    calls = 0

    async def hold() -> None:
        # A cluster node's pool refuses a command beyond its size (one of the worker's own
        # may hold a connection there) where one Redis's pool queues it: full either way.
        with contextlib.suppress(MaxConnectionsError):
            await small.blpop(["mg:test:never"], timeout=1.5)

    async def policy(request: ChatRequest) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            async with anyio.create_task_group() as tg:
                for _ in range(4):  # 1.5 s: more than three lease times
                    tg.start_soon(hold)
        return say("kept")

    scripted_model.policy = policy
    try:
        agent = await create_agent(rt, AgentSpec(name="saturated"))
        runs = RunStore(redis_client)
        sub = await runs.submit(agent.id, [InboxMessage(content="hi")])
        worker = await burst(rt, lease_ms=450)
        run = await runs.get(agent.id, sub.run_id)
    finally:
        await rt.aclose()
        await small.aclose()
    assert run.status == "completed" and run.replies == ["kept"]
    assert run.attempts == 1 and calls == 1  # never lost, never re-run
    assert worker.counters["lease_expired"] == 0
    # Renewal is measured: how many rounds ran, how late and how long the worst one was;
    # every round was done within two intervals (300 ms) of being due, well inside the lease.
    c = worker.counters
    assert c["lease_renewals"] >= 5
    assert c["lease_renew_late_ms_max"] >= 0 and c["lease_renew_ms_max"] >= 0
    assert c["lease_renew_late_ms_max"] + c["lease_renew_ms_max"] < 300


async def test_a_worker_whose_event_loop_lags_still_renews_its_leases(
    runtime: Runtime, scripted_model: ScriptedModel
) -> None:
    # Thousands of turns in flight make each pass of the event loop long (here 45 tasks x
    # 10 ms between awaits: ~0.45 s a pass, half the lease). The worker is slow, not dead:
    # it must keep its leases.
    calls = 0
    held_after_lag: bytes | None = None

    async def hog(until: float) -> None:
        while anyio.current_time() < until:
            time.sleep(0.01)  # noqa: ASYNC251  (a turn's CPU between two awaits, on purpose)
            await anyio.lowlevel.checkpoint()

    async def policy(request: ChatRequest) -> Outcome:
        nonlocal calls, held_after_lag
        calls += 1
        if calls == 1:
            async with anyio.create_task_group() as tg:
                for _ in range(45):
                    tg.start_soon(hog, anyio.current_time() + 3.0)
            # Expired once, a lease is gone for good (renewal only extends a lease it finds).
            held_after_lag = await runtime.redis.get(bus_keys.lease(agent.id))
        return say("kept")

    scripted_model.policy = policy
    agent, runs, sub = await agent_with_message(runtime, "lagging", "hi")
    worker = await burst(runtime, lease_ms=900)
    run = await runs.get(agent.id, sub.run_id)
    assert run.status == "completed" and run.replies == ["kept"]
    assert held_after_lag is not None and held_after_lag.startswith(worker.id.encode())
    assert run.attempts == 1 and calls == 1  # never lost, never re-run
    assert worker.counters["lease_expired"] == 0
    # The loop's lag is measured too: it is what an overloaded worker shows first.
    assert worker.counters["lease_loop_lag_ms_max"] >= 300


async def test_a_worker_whose_event_loop_hangs_lets_its_leases_go(
    runtime: Runtime, scripted_model: ScriptedModel
) -> None:
    # A loop that stops (here blocked 1.5 s, five lease times) is not a healthy worker: the
    # keeper's thread stops renewing after two lease times, so other workers may take over.
    calls = 0
    held_after_hang: bytes | None = b"?"

    async def policy(request: ChatRequest) -> Outcome:
        nonlocal calls, held_after_hang
        calls += 1
        if calls == 1:
            time.sleep(1.5)  # noqa: ASYNC251  (the worker's loop hangs, on purpose)
            held_after_hang = await runtime.redis.get(bus_keys.lease(agent.id))
        return say("again")

    scripted_model.policy = policy
    agent, runs, sub = await agent_with_message(runtime, "hung", "hi")
    await burst(runtime, lease_ms=300)
    assert held_after_hang is None  # free for another worker to take
    run = await runs.get(agent.id, sub.run_id)
    assert run.status == "completed" and run.replies == ["again"]


async def test_a_busy_worker_reaches_a_dead_workers_signal_behind_live_ones(
    runtime: Runtime, scripted_model: ScriptedModel
) -> None:
    agent = await create_agent(runtime, AgentSpec(name="orphan"))
    redis, ready = runtime.redis, bus_keys.ready(agent.id)
    scripted_model.policy = lambda request: say("rescued")
    await streams.ensure_group(redis, ready)
    # A live worker holds 40 signals at the front of the pending list of the orphan's ready
    # shard and keeps touching them.
    for i in range(40):
        await redis.xadd(ready, {"a": f"agent-busy-{i}"})
    busy = [i for i, _ in await streams.read_group(redis, ready, "w-busy", count=40, block_ms=None)]
    # Behind them, the signal of a worker that died a minute ago.
    runs = RunStore(redis)
    sub = await runs.submit(agent.id, [InboxMessage(content="anyone?")])
    dead = await streams.read_group(redis, ready, "w-dead", count=1, block_ms=None)
    assert [f[b"a"] for _, f in dead] == [agent.id.encode()]
    await redis.xclaim(ready, streams.GROUP, "w-dead", 0, [dead[0][0]], idle=60_000, justid=True)

    async def keep_busy_alive() -> None:
        while True:
            await streams.touch(redis, ready, "w-busy", *busy)
            await anyio.sleep(0.1)

    # One slot: every reclaim asks for one signal (XAUTOCLAIM then looks at ~10 entries).
    worker = Worker(runtime, WorkerSettings(concurrency=1, lease_ms=600, block_ms=100))
    async with anyio.create_task_group() as tg:
        tg.start_soon(keep_busy_alive)
        tg.start_soon(worker.run)
        try:
            await _finished(runs, agent.id, sub.run_id, timeout_s=10)
        finally:
            worker.stop()
            tg.cancel_scope.cancel()
    run = await runs.get(agent.id, sub.run_id)
    assert run.status == "completed" and run.replies == ["rescued"]
    # The live worker's signals were left alone.
    pending = await redis.xpending_range(ready, streams.GROUP, "-", "+", 100, "w-busy")
    assert len(pending) == 40


async def test_a_worker_that_lost_its_lease_leaves_the_new_holders_signal(
    runtime: Runtime, scripted_model: ScriptedModel
) -> None:
    agent = await create_agent(runtime, AgentSpec(name="taken-over"))
    redis, ready = runtime.redis, bus_keys.ready(agent.id)
    calls = 0

    async def policy(request: ChatRequest) -> Outcome:
        nonlocal calls
        calls += 1
        # While worker A waits on the scripted_model, its lease expires and worker B takes the agent
        # over: B reclaims A's stale signal and acquires the lease.
        await redis.delete(bus_keys.lease(agent.id))
        pending = await redis.xpending_range(ready, streams.GROUP, "-", "+", 10)
        await redis.xclaim(ready, streams.GROUP, "w-B", 0, [p["message_id"] for p in pending])
        assert await acquire(redis, agent.id, "w-B", 60_000) is not None
        return Slow(seconds=1.0, then=say("too late"))

    scripted_model.policy = policy
    runs = RunStore(redis)
    await runs.submit(agent.id, [InboxMessage(content="hi")])
    worker = await burst(runtime, lease_ms=450)
    assert calls == 1
    # B's signal is still pending on B (were it acked, no one would reclaim the agent if B
    # died), and B's lease is untouched.
    pending = await redis.xpending_range(ready, streams.GROUP, "-", "+", 10)
    assert [p["consumer"] for p in pending] == [b"w-B"]
    assert (await redis.get(bus_keys.lease(agent.id)) or b"").startswith(b"w-B:")
    assert worker.counters["lease_expired"] == 1


@pytest.mark.parametrize("owner", ["w-A", "w-B"])
async def test_release_acks_the_signal_only_for_its_owner(
    redis_client: aioredis.Redis, owner: str
) -> None:
    ready, inbox = "mg:ready", "mg:{A}:inbox"
    await streams.ensure_group(redis_client, ready)
    await redis_client.xadd(ready, {"a": "A"})
    [(entry_id, _)] = await streams.read_group(redis_client, ready, owner, count=1, block_ms=None)
    await redis_client.set("mg:{A}:lease", b"w-A:1")
    acked, left = await streams.release_and_ack(
        redis_client, "mg:{A}:lease", "w-A:1", ready, entry_id, inbox, consumer="w-A"
    )
    assert left == 0 and await redis_client.get("mg:{A}:lease") is None
    pending = await redis_client.xpending_range(ready, streams.GROUP, "-", "+", 10)
    if owner == "w-A":
        assert acked and pending == [] and await redis_client.xlen(ready) == 0
    else:  # someone else's: left pending on its owner
        assert not acked and [p["consumer"] for p in pending] == [b"w-B"]
