"""Workers on the bus, in process: submit, lease, run, events, redelivery, dead letters."""

from __future__ import annotations

import anyio
import pytest

from agents.letta_messages import AssistantMessage, StopReason, UsageStatistics
from agents.manage import AgentSpec, create_agent
from agents.runs import RunStore
from agents.runtime import LLMPool, Runtime
from agents.scripted import (
    ChatRequest,
    FunctionModel,
    Outcome,
    ScriptedModel,
    say,
    sequence,
    tool_call,
)
from agents.worker import Worker, WorkerSettings
from bus import keys as bus_keys
from bus.envelopes import InboxMessage
from tests._util import agent_with_message, burst


async def test_submit_run_and_follow_events(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    agent = await create_agent(runtime, AgentSpec(name="w1"))
    function_model.policy = lambda request: say(
        f"echo: {request.last_message.text if request.last_message else ''}"
    )
    runs = RunStore(runtime.redis)
    sub = await runs.submit(agent.id, [InboxMessage(content="hello")], otid="otid-1")
    assert sub.created
    again = await runs.submit(agent.id, [InboxMessage(content="hello")], otid="otid-1")
    assert again.run_id == sub.run_id and not again.created  # a retry gets the original run
    worker = await burst(runtime, concurrency=4)
    assert worker.counters["runs"] == 1
    run = await runs.get(agent.id, sub.run_id)
    assert run.status == "completed" and run.stop_reason == "end_turn"
    events = [e async for e in runs.follow(agent.id, sub.run_id, timeout_s=5)]
    assert isinstance(events[-2], StopReason) and isinstance(events[-1], UsageStatistics)
    assert [e.content for e in events if isinstance(e, AssistantMessage)] == ["echo: hello"]
    # Processed work leaves the streams: bounded memory.
    assert await runtime.redis.xlen(bus_keys.inbox(agent.id)) == 0
    assert await runtime.redis.xlen(bus_keys.ready(agent.id)) == 0
    assert len(function_model.requests) == 1


async def test_per_agent_order_over_many_messages(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    agents = [await create_agent(runtime, AgentSpec(name=f"ord{i}")) for i in range(5)]
    function_model.policy = lambda request: say(
        f"got {request.last_message.text if request.last_message else ''}"
    )
    runs = RunStore(runtime.redis)
    for n in range(6):
        for agent in agents:
            await runs.submit(agent.id, [InboxMessage(content=f"m{n}")])
    await burst(runtime, concurrency=4)
    for agent in agents:
        inputs = [
            m.content for m in await runtime.messages.list(agent.id, roles=["user"], limit=100)
        ]
        assert inputs == [f"m{n}" for n in range(6)]


async def test_a_half_done_run_resumes_after_its_last_committed_step(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    agent, runs, sub = await agent_with_message(runtime, "resume", "remember tea")
    function_model.policy = sequence(
        tool_call("core_memory_append", label="human", content="likes tea", request_heartbeat=True),
        say("Noted."),
    )
    # A first worker runs step 0 and is stopped right after committing it.
    stopper = Worker(runtime, WorkerSettings(concurrency=1, lease_ms=2000))

    def shutdown_now() -> bool:  # as SIGTERM would, right after the first step commits
        stopper.stop()
        return True

    stopper._should_stop = shutdown_now  # type: ignore[method-assign]
    with anyio.fail_after(10):
        await stopper.run()
    assert stopper.counters["preempted"] == 1
    run = await runs.get(agent.id, sub.run_id)
    assert run.status == "running" and run.steps == 1
    # Another worker finishes it: the memory edit is not applied twice, one reply.
    await burst(runtime, concurrency=4)
    run = await runs.get(agent.id, sub.run_id)
    assert run.status == "completed" and run.replies == ["Noted."]
    blocks = {b.label: b.value for b in await runtime.blocks.get_many(agent.block_ids)}
    assert blocks["human"] == "likes tea"
    assert len(function_model.requests) == 2


async def test_poison_messages_go_to_the_dead_letter_stream(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    from bus.streams import list_dead_letters

    agent, runs, sub = await agent_with_message(runtime, "poison", "boom")
    # Every attempt fails on the transport (the agent record vanished under the worker).
    await runtime.redis.set(f"mg:{{{agent.id}}}:agent", b"not json")
    await burst(runtime, concurrency=4, max_attempts=2)
    run = await runs.get(agent.id, sub.run_id)
    assert run.status == "failed"
    dead = await list_dead_letters(runtime.redis)
    assert [d["run_id"] for d in dead] == [sub.run_id]
    assert "gave up after 2 attempts; last error: DecodeError" in dead[0]["error"]
    events = [e async for e in runs.follow(agent.id, sub.run_id, timeout_s=5)]
    assert isinstance(events[-2], StopReason) and events[-2].stop_reason == "error"


async def test_a_worker_that_dies_before_writing_anything_spent_an_attempt(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    from bus.lease import take
    from bus.streams import list_dead_letters
    from storage import keys

    # A run whose worker dies as soon as it took it (a step that kills the process, every
    # time): each take is an attempt, though the dead worker wrote nothing.
    agent, runs, sub = await agent_with_message(runtime, "dies-at-once", "boom")
    for n in range(2):
        taken = await take(
            runtime.redis, agent.id, f"doomed-{n}", 5000, record_key=keys.agent(agent.id)
        )
        assert taken is not None and taken.deliveries == n + 1
        await runtime.redis.delete(bus_keys.lease(agent.id))  # expired with its holder
    await burst(runtime, max_attempts=2)
    run = await runs.get(agent.id, sub.run_id)
    assert run.status == "failed" and function_model.requests == []  # not a third time
    [dead] = await list_dead_letters(runtime.redis)
    assert dead["run_id"] == sub.run_id and "gave up after 2 attempts" in dead["error"]


async def test_an_entry_taken_as_the_worker_stops_is_no_attempt(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    from agents._leases import Held
    from bus.lease import take
    from bus.streams import GROUP
    from storage import keys

    agent, runs, sub = await agent_with_message(runtime, "taken-at-stop", "hi")
    worker = Worker(runtime, WorkerSettings(burst=True))
    taken = await take(runtime.redis, agent.id, worker.id, 5000, record_key=keys.agent(agent.id))
    assert taken is not None and taken.entry is not None and taken.deliveries == 1
    worker.stopping = True  # SIGTERM came while the take was on its way
    held = Held(taken.lease, "a-signal", anyio.CancelScope())
    assert await worker._drain(held, taken) is None
    inbox = bus_keys.inbox(agent.id)
    [pending] = await runtime.redis.xpending_range(inbox, GROUP, "-", "+", 1)
    assert pending["times_delivered"] == 0  # left pending, the delivery taken back
    await runtime.redis.delete(bus_keys.lease(agent.id))  # (released by the caller)
    await burst(runtime, max_attempts=1)
    run = await runs.get(agent.id, sub.run_id)
    assert run.status == "completed" and run.attempts == 1


def _policy(request: ChatRequest) -> Outcome:
    return say("ok")


async def test_a_worker_keeps_a_model_connection_alive_per_slot(
    runtime: Runtime, scripted_model: ScriptedModel
) -> None:
    # The SDK keeps 100 connections alive: with more turns in flight, each model call past
    # them would open (and close) a connection of its own.
    Worker(runtime, WorkerSettings(concurrency=300))
    agent = await create_agent(runtime, AgentSpec(name="pooled"))
    assert isinstance(runtime.llm, LLMPool)  # connections are the HTTP pool's
    assert runtime.llm.for_agent(agent).settings.max_connections == 300


async def test_a_busy_worker_leaves_signals_to_workers_with_free_slots(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    from agents.scripted import Slow

    function_model.policy = lambda request: Slow(seconds=0.6, then=say("done"))
    agents = [await create_agent(runtime, AgentSpec(name=f"spread{i}")) for i in range(2)]
    runs = RunStore(runtime.redis)
    subs = [await runs.submit(a.id, [InboxMessage(content="go")]) for a in agents]
    first = Worker(runtime, WorkerSettings(concurrency=1, worker_id="w-first"))
    second = Worker(runtime, WorkerSettings(concurrency=1, worker_id="w-second"))
    started = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(first.run)
        await anyio.sleep(0.2)  # the first is busy with one agent; the other must stay free
        tg.start_soon(second.run)
        for agent, sub in zip(agents, subs, strict=True):
            async for _ in runs.follow(agent.id, sub.run_id, timeout_s=10):
                pass
        elapsed = anyio.current_time() - started
        first.stop()
        second.stop()
    assert (first.counters["runs"], second.counters["runs"]) == (1, 1)
    assert elapsed < 1.1  # side by side, not one after the other (>= 1.2 s)


async def test_leases_are_renewed_through_turns_longer_than_the_lease(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    from agents.scripted import Slow

    function_model.policy = lambda request: Slow(seconds=1.0, then=say("slow but sure"))
    agent, runs, sub = await agent_with_message(runtime, "long-turn", "take your time")
    # A 0.45 s lease, renewed every 0.15 s by the worker's lease keeper, through a 1 s turn.
    await burst(runtime, lease_ms=450)
    run = await runs.get(agent.id, sub.run_id)
    assert run.status == "completed" and run.replies == ["slow but sure"]
    assert run.attempts == 1 and len(function_model.requests) == 1  # never lost, never re-run


async def test_a_turn_whose_lease_is_gone_stops_and_is_run_again(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    from agents.scripted import Slow

    agent = await create_agent(runtime, AgentSpec(name="lost-lease"))
    calls = 0

    async def policy(request: ChatRequest) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:  # the lease vanishes (as if expired) while the model thinks
            await runtime.redis.delete(bus_keys.lease(agent.id))
            return Slow(seconds=1.0, then=say("too late"))
        return say("second try")

    function_model.policy = policy
    runs = RunStore(runtime.redis)
    sub = await runs.submit(agent.id, [InboxMessage(content="hi")])
    await burst(runtime, lease_ms=450)
    run = await runs.get(agent.id, sub.run_id)
    assert run.status == "completed" and run.replies == ["second try"]
    assert calls == 2 and run.attempts == 2
    events = [e async for e in runs.follow(agent.id, sub.run_id, timeout_s=5)]
    assert [e.content for e in events if isinstance(e, AssistantMessage)] == ["second try"]


async def test_an_inbox_made_without_the_group_still_runs(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    from agents.runs import signal_ready
    from bus.envelopes import RunRequest, encode_envelope

    function_model.policy = lambda request: say("found it")
    agent = await create_agent(runtime, AgentSpec(name="no-group"))
    # An inbox stream written by something other than RunStore.submit has no consumer group.
    envelope = RunRequest(
        run_id="run-manual", agent_id=agent.id, messages=(InboxMessage(content="hi"),)
    )
    await runtime.redis.xadd(bus_keys.inbox(agent.id), {"e": encode_envelope(envelope)})
    await signal_ready(runtime.redis, agent.id)
    await burst(runtime, concurrency=4)
    run = await RunStore(runtime.redis).get(agent.id, "run-manual")
    assert run.status == "completed" and run.replies == ["found it"]
    assert await runtime.redis.xlen(bus_keys.inbox(agent.id)) == 0


async def test_signals_left_in_the_unsharded_ready_stream_of_an_upgrade_still_run(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    """A deployment upgraded from before the ready shards has signals in ``mg:ready`` that no
    worker reads any more: a starting worker moves them onto their agents' shards."""
    function_model.policy = lambda request: say("upgraded")
    agents, runs = [], RunStore(runtime.redis)
    for name in ("old-a", "old-b"):
        agent, runs, submitted = await agent_with_message(runtime, name, "from before")
        agents.append((agent, submitted))
    # As the earlier version signalled: one stream for every agent, none on the shards.
    await runtime.redis.delete(*bus_keys.ready_shards())
    for agent, _ in agents:
        await runtime.redis.xadd(bus_keys.UNSHARDED_READY, {"a": agent.id})
    await burst(runtime, concurrency=4)
    for agent, submitted in agents:
        run = await runs.get(agent.id, submitted.run_id)
        assert run.status == "completed" and run.replies == ["upgraded"]
    assert await runtime.redis.xlen(bus_keys.UNSHARDED_READY) == 0


async def test_a_failed_lease_renewal_is_retried_not_fatal(
    runtime: Runtime, function_model: FunctionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.exceptions

    import agents._leases
    from agents.scripted import Slow

    real = agents._leases.renew_all
    failures = 0

    async def flaky(client: object, leases: object) -> list[bool]:
        nonlocal failures
        if failures == 0:  # Redis drops the keeper's first renewal
            failures += 1
            raise redis.exceptions.ConnectionError("connection reset")
        return await real(client, leases)  # type: ignore[arg-type]

    monkeypatch.setattr(agents._leases, "renew_all", flaky)
    function_model.policy = lambda request: Slow(seconds=1.0, then=say("made it"))
    agent, runs, sub = await agent_with_message(runtime, "flaky-renewal", "hi")
    await burst(runtime, lease_ms=900)
    run = await runs.get(agent.id, sub.run_id)
    assert failures == 1 and run.status == "completed" and run.replies == ["made it"]
    assert run.attempts == 1
