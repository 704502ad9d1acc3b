"""A healthy worker keeps its leases; stale signals are found wherever they are; a worker that
lost an agent leaves the new holder's signal alone."""

from __future__ import annotations

import anyio
import redis.asyncio as aioredis

from agents.manage import AgentSpec, create_agent
from agents.runs import RunStore
from agents.runtime import LLMPool, Runtime
from agents.scripted import ChatRequest, Outcome, ScriptedModel, say
from agents.worker import Worker, WorkerSettings
from bus import connect
from bus.envelopes import InboxMessage


async def _finished(runs: RunStore, agent_id: str, run_id: str, timeout_s: float) -> None:
    with anyio.fail_after(timeout_s):
        async for _ in runs.follow(agent_id, run_id):
            pass


async def test_a_worker_whose_pool_is_saturated_still_renews_its_leases(
    redis_url: str, redis_client: aioredis.Redis, runtime: Runtime, model: ScriptedModel
) -> None:
    # A worker whose 4 pooled connections are all held by slow commands (as thousands of
    # turns would hold 256) while its turn waits on the model: renewal must not queue.
    small = connect(redis_url, max_connections=4)
    rt = Runtime(redis=small, llm=LLMPool(runtime.llm.settings))
    calls = 0

    async def policy(request: ChatRequest) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            async with anyio.create_task_group() as tg:
                for _ in range(4):  # 1.5 s: more than three lease times
                    tg.start_soon(lambda: small.blpop(["mg:test:never"], timeout=1.5))
        return say("kept")

    model.policy = policy
    try:
        agent = await create_agent(rt, AgentSpec(name="saturated"))
        runs = RunStore(redis_client)
        sub = await runs.submit(agent.id, [InboxMessage(content="hi")])
        worker = Worker(rt, WorkerSettings(burst=True, concurrency=2, lease_ms=450))
        with anyio.fail_after(30):
            await worker.run()
        run = await runs.get(agent.id, sub.run_id)
    finally:
        await rt.aclose()
        await small.aclose()
    assert run.status == "completed" and run.replies == ["kept"]
    assert run.attempts == 1 and calls == 1  # never lost, never re-run
    assert worker.counters["lease_expired"] == 0
    # Renewal is measured: how many rounds ran, how late and how long the worst one was.
    assert worker.counters["lease_renewals"] >= 5
    assert 0 <= worker.counters["lease_renew_late_ms_max"] < 150
    assert 0 <= worker.counters["lease_renew_ms_max"] < 150
