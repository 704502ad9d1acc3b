"""Dead letters: written with the run's failed status, retried without losing or redoing work."""

from __future__ import annotations

import sys

import anyio
import pytest
import redis.asyncio as aioredis
import structlog

from agents._endings import dead_letter_run
from agents.letta_messages import StopReason, ToolCallMessage, UsageStatistics
from agents.manage import AgentSpec, create_agent
from agents.runs import RunStore, retry_dead_letter
from agents.runtime import Runtime
from agents.scripted import ChatRequest, FunctionModel, Outcome, say, tool_call
from bus import keys as bus_keys
from bus import streams
from bus.envelopes import InboxMessage, RunRequest, encode_envelope
from bus.errors import LeaseLost
from bus.lease import acquire
from storage import keys
from storage.errors import NotFound
from storage.records import Run
from tests._cluster import sync_client
from tests._util import agent_with_message, burst


async def test_a_retried_run_keeps_its_steps_and_replays_its_half_done_step(
    runtime: Runtime, function_model: FunctionModel, redis_url: str
) -> None:
    agent = await create_agent(runtime, AgentSpec(name="dl"))
    record_key = keys.agent(agent.id)
    saved: list[bytes] = []
    sync = sync_client(redis_url)
    calls = []

    def policy(request: ChatRequest) -> Outcome:
        calls.append(request)
        if len(calls) == 1:  # step 0 commits
            return tool_call(
                "core_memory_append", label="human", content="likes tea", request_heartbeat=True
            )
        if len(calls) == 2:  # step 1: journaled, its tool runs, then every commit fails
            raw = sync.get(record_key)
            assert isinstance(raw, bytes)
            saved.append(raw)
            sync.set(record_key, b"not json")  # an operator's bad hand edit
            return tool_call(
                "core_memory_append", label="human", content="likes coffee", request_heartbeat=True
            )
        return say("Noted.")

    function_model.policy = policy
    runs = RunStore(runtime.redis)
    try:
        sub = await runs.submit(agent.id, [InboxMessage(content="tea, then coffee")])
        await burst(runtime, max_attempts=2)
        run = await runs.get(agent.id, sub.run_id)
        assert run.status == "failed" and run.steps == 1
        (dead,) = await streams.list_dead_letters(runtime.redis)

        await runtime.redis.set(record_key, saved[0])  # fixed
        again = await retry_dead_letter(runtime.redis, dead["id"])
        assert again.run_id == sub.run_id
        assert await streams.list_dead_letters(runtime.redis) == []
        # Until a worker runs it, the run reads as queued again, its committed step kept.
        queued = await runs.get(agent.id, sub.run_id)
        assert (queued.status, queued.steps, queued.error) == ("created", 1, None)
        await burst(runtime, max_attempts=2)
    finally:
        sync.close()

    run = await runs.get(agent.id, sub.run_id)
    assert run.status == "completed"
    events, ended = await runs.events(agent.id, sub.run_id)
    assert ended
    # Step 0's events stayed; step 1 ran as journaled (no new model call for it); one end.
    appended = [e.tool_call.arguments for e in events if isinstance(e, ToolCallMessage)]
    assert ["likes tea" in a for a in appended[:2]] == [True, False]
    assert "likes coffee" in appended[1]
    assert [type(e) for e in events if isinstance(e, StopReason | UsageStatistics)] == [
        StopReason,
        UsageStatistics,
    ]
    assert len(calls) == 3  # tea, coffee (once, replayed after the retry), "Noted."
    stored = await runtime.agents.get(agent.id)
    (human,) = [b for b in await runtime.blocks.get_many(stored.block_ids) if b.label == "human"]
    assert human.value.count("likes coffee") == 1 and human.value.count("likes tea") == 1


async def test_a_dead_letter_is_written_only_with_the_runs_failed_status(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    agent, runs, sub = await agent_with_message(runtime, "fenced-dl", "x")
    stale = await acquire(runtime.redis, agent.id, "paused-worker", 2000)
    assert stale is not None
    # The paused worker's lease expired and another worker took the agent.
    await runtime.redis.delete(bus_keys.lease(agent.id))
    assert await acquire(runtime.redis, agent.id, "new-owner", 2000) is not None
    envelope = RunRequest(run_id=sub.run_id, agent_id=agent.id, messages=())
    run = Run(id=sub.run_id, agent_id=agent.id, attempts=2)
    with pytest.raises(LeaseLost):
        await dead_letter_run(
            runtime.redis, stale, run, encode_envelope(envelope), 1, retain=runtime.settings
        )
    assert await streams.list_dead_letters(runtime.redis) == []
    assert (await runs.get(agent.id, sub.run_id)).status == "created"


async def test_trimming_old_dead_letters_is_counted_and_logged(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    agents = [await create_agent(runtime, AgentSpec(name=f"trim{i}")) for i in range(3)]
    runs = RunStore(runtime.redis)
    for agent in agents:
        await runs.submit(agent.id, [InboxMessage(content="boom")])
        await runtime.redis.set(keys.agent(agent.id), b"not json")
    with structlog.testing.capture_logs() as logs:
        worker = await burst(runtime, max_attempts=1, dead_letter_cap=2)
    assert worker.counters["dead_lettered"] == 3
    assert worker.counters["dead_letters_trimmed"] == 1
    assert len(await streams.list_dead_letters(runtime.redis)) == 2
    trimmed = [e for e in logs if e["event"] == "dead_letters_trimmed"]
    assert [(e["count"], e["cap"]) for e in trimmed] == [(1, 2)]


async def test_retrying_an_unknown_dead_letter_names_the_fix(
    redis_client: aioredis.Redis,
) -> None:
    with pytest.raises(NotFound, match="memgrid dlq list"):
        await retry_dead_letter(redis_client, "0-1")


async def test_a_bad_dead_letter_cap_is_refused_by_name() -> None:
    done = await anyio.run_process(
        [sys.executable, "-m", "orchestrator.cli", "worker", "--dead-letter-cap", "0"],
        check=False,
    )
    assert done.returncode == 2
    assert b"--dead-letter-cap must be at least 1" in done.stderr
    assert b"Traceback" not in done.stderr


async def test_two_retries_of_one_dead_letter_queue_it_once(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    agent = await create_agent(runtime, AgentSpec(name="twice"))
    good = await runtime.redis.get(keys.agent(agent.id))
    runs = RunStore(runtime.redis)
    sub = await runs.submit(agent.id, [InboxMessage(content="boom")])
    await runtime.redis.set(keys.agent(agent.id), b"not json")
    await burst(runtime, max_attempts=1)
    (dead,) = await streams.list_dead_letters(runtime.redis)
    await runtime.redis.set(keys.agent(agent.id), good or b"")
    outcomes: list[str] = []

    async def retry() -> None:
        try:
            outcomes.append((await retry_dead_letter(runtime.redis, dead["id"])).run_id)
        except NotFound:
            outcomes.append("not found")

    async with anyio.create_task_group() as tg:
        tg.start_soon(retry)
        tg.start_soon(retry)
    assert sorted(outcomes) == sorted([sub.run_id, "not found"])
    assert await runtime.redis.xlen(bus_keys.inbox(agent.id)) == 1
    run = await runs.get(agent.id, sub.run_id)
    assert (run.status, run.attempts, run.retries) == ("created", 0, 1)
