"""Waits between agents that can neither lose a reply nor drop a wake-up (issue #11).

Each test drives real workers on real Redis with the scripted model over HTTP; where a race
must happen at one precise point, a test holds the worker there (on a condition with a
deadline) until the other side has done its part.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from agents import _turn
from agents._waits import claim_wait, end_wait
from agents.manage import delete_agent
from agents.runs import RunStore, signal_ready
from agents.runtime import Runtime
from agents.scripted import ChatRequest, FunctionModel, Outcome, say, tool_call
from agents.worker import Worker, WorkerSettings
from bus import keys as bus_keys
from bus.envelopes import InboxMessage
from bus.streams import list_dead_letters
from storage import keys
from storage.records import Run, decode
from tests._util import burst
from tests.agents.test_messaging import (
    _after_tool,
    _agent,
    _burst_until_done,
    _gather_team,
    _role,
    _tool_message,
)

WAIT = "send_message_to_agent_and_wait_for_reply"


def _asks(
    target: str, role: str, answer: Callable[[ChatRequest], Outcome | Awaitable[Outcome]]
) -> Callable[[ChatRequest], Outcome | Awaitable[Outcome]]:
    """Agents playing ``role`` answer with ``answer``; any other asks the agent named
    ``target`` "hi", waits for the reply, then says "result: <the reply>"."""

    def policy(request: ChatRequest) -> Outcome | Awaitable[Outcome]:
        if _role(request) == role:
            return answer(request)
        if _after_tool(request):
            return say(f"result: {_tool_message(request)['message']}")
        return tool_call(WAIT, message="hi", other_agent_id=target)

    return policy


async def _until(check: Callable[[], Awaitable[Any]], what: str, within: float = 10) -> Any:
    deadline = time.monotonic() + within
    while not (value := await check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        await anyio.sleep(0.02)
    return value


async def _run(rt: Runtime, run: tuple[str, str]) -> Run:
    raw = await rt.redis.get(keys.run(*run))
    assert raw is not None
    return decode(Run, raw)


def _ready_only(worker: Worker, agent_id: str) -> Callable[[], Awaitable[bool]]:
    """True once the ready stream holds nothing but the signal ``worker`` holds for
    ``agent_id``: every other signal (a wake-up among them) was taken and dropped."""

    async def check() -> bool:
        held = worker._held.get(agent_id)
        ids = [
            e[0].decode() if isinstance(e[0], bytes) else e[0]
            for shard in bus_keys.ready_shards()
            for e in await worker.rt.redis.xrange(shard)
        ]
        return held is not None and ids == [held.entry_id]

    return check


async def test_a_reply_that_lands_before_the_waiting_step_commits_still_wakes_it(
    runtime: Runtime, function_model: FunctionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    function_model.policy = lambda r: (
        say("pong")
        if _role(r) == "ponger"
        else say(f"got {_tool_message(r)['message']}")
        if _after_tool(r)
        else tool_call(WAIT, message="ping", other_agent_id="bob")
    )
    alice = await _agent(runtime, "alice", "pinger")
    await _agent(runtime, "bob", "ponger")
    worker_box: list[Worker] = []
    original = _turn.Turn.commit

    async def late_commit(self: _turn.Turn, outcome: Any, *, final: bool) -> Any:
        if outcome.wait is not None:  # hold the waiting step until bob answered and its
            wait = outcome.wait  # wake-up was taken (and dropped: alice's lease is held)
            replies = bus_keys.wait_replies(self.agent.id, self.run.id, wait.call_id)
            await _until(lambda: runtime.redis.hlen(replies), "bob's reply")
            await _until(_ready_only(worker_box[0], self.agent.id), "the wake-up to be taken")
        return await original(self, outcome, final=final)

    monkeypatch.setattr(_turn.Turn, "commit", late_commit)
    sub = await RunStore(runtime.redis).submit(alice.id, [InboxMessage(content="go")])
    store = RunStore(runtime.redis)
    worker = Worker(runtime, WorkerSettings(burst=True, concurrency=8, lease_ms=5000))
    worker_box.append(worker)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            [e async for e in store.follow(alice.id, sub.run_id)]
    run = await _run(runtime, (alice.id, sub.run_id))
    assert run.status == "completed" and run.replies == ["got pong"]


async def test_the_last_fan_out_reply_during_an_earlier_wake_is_not_dropped(
    runtime: Runtime, function_model: FunctionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    second_wake = anyio.Event()

    async def late(request: ChatRequest) -> Outcome:
        await second_wake.wait()  # answer only while the boss holds its lease for a wake-up
        return say("late done")

    def policy(request: ChatRequest) -> Outcome | Awaitable[Outcome]:
        if _role(request) == "early":
            return say("early done")
        if _role(request) == "late":
            return late(request)
        return _gather_team(request)

    function_model.policy = policy
    boss = await _agent(runtime, "boss", "boss")
    await _agent(runtime, "early", "early", tags=["team"])
    await _agent(runtime, "late", "late", tags=["team"])
    # One attempt allowed: the early wake is none (though its take raised the entry's
    # delivery count), nor are the deliveries before the wait.
    settings = WorkerSettings(burst=True, concurrency=8, lease_ms=5000, max_attempts=1)
    worker = Worker(runtime, settings)
    original = Worker._process
    suspensions = 0

    async def process(self: Worker, lease: Any, entry_id: str, raw: bytes, **kw: Any) -> Any:
        nonlocal suspensions
        outcome = await original(self, lease, entry_id, raw, **kw)
        if lease.agent_id == boss.id and outcome not in ("done", "acked", "retry"):
            suspensions += 1
            if suspensions == 2:  # woken by the early reply, one still due: let it land now
                second_wake.set()
                run = await _run(runtime, (boss.id, sub.run_id))
                assert run.wait is not None
                replies = bus_keys.wait_replies(boss.id, run.id, run.wait.call_id)
                await _until(lambda: _eq(runtime.redis.hlen(replies), 2), "the late reply")
                await _until(_ready_only(self, boss.id), "its wake-up to be taken")
        return outcome

    monkeypatch.setattr(Worker, "_process", process)
    store = RunStore(runtime.redis)
    sub = await store.submit(boss.id, [InboxMessage(content="collect")])
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            [e async for e in store.follow(boss.id, sub.run_id)]
    run = await _run(runtime, (boss.id, sub.run_id))
    assert run.status == "completed"
    assert json.loads(run.replies[0]) == ["early done", "late done"]


async def _eq(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_a_resuming_worker_whose_clock_is_behind_still_times_out(
    runtime: Runtime, function_model: FunctionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMGRID_AGENT_REPLY_TIMEOUT", "1")
    runtime.clock = lambda: time.time() - 3600  # this worker's clock is an hour behind
    caller_done = anyio.Event()

    async def sloth(request: ChatRequest) -> Outcome:
        await caller_done.wait()
        return say("too late")

    function_model.policy = _asks("sloth", "slow", sloth)
    caller = await _agent(runtime, "caller", "caller")
    await _agent(runtime, "sloth", "slow")
    store = RunStore(runtime.redis)
    sub = await store.submit(caller.id, [InboxMessage(content="start")])
    worker = Worker(runtime, WorkerSettings(burst=True, concurrency=8, lease_ms=5000))
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            [e async for e in store.follow(caller.id, sub.run_id)]
            caller_done.set()
    run = await _run(runtime, (caller.id, sub.run_id))
    assert "did not reply within the timeout" in run.replies[0]


async def test_a_wait_cycle_across_two_runs_is_refused(
    runtime: Runtime, function_model: FunctionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMGRID_AGENT_REPLY_TIMEOUT", "120")

    def policy(request: ChatRequest) -> Outcome:
        role = _role(request)
        if _after_tool(request):
            return say(f"{role} result: {_tool_message(request)['message']}")
        last = request.last_message
        if last is not None and last.text.startswith("[message from agent"):
            return say(f"{role} answers")
        other = "bee" if role == "ay" else "ay"
        return tool_call(WAIT, message="help", other_agent_id=other)

    function_model.policy = policy
    ay = await _agent(runtime, "ay", "ay")
    bee = await _agent(runtime, "bee", "bee")
    store = RunStore(runtime.redis)
    # Each is asked by a user, so each waits on the other from a run of its own: the second
    # wait's request would queue behind the first wait, which waits on it.
    to_bee = await store.submit(bee.id, [InboxMessage(content="ask ay")])
    to_ay = await store.submit(ay.id, [InboxMessage(content="ask bee")])
    runs = await _burst_until_done(runtime, [(ay.id, to_ay.run_id), (bee.id, to_bee.run_id)])
    assert [r.status for r in runs] == ["completed", "completed"]
    replies = [r.replies[0] for r in runs]
    refused = [text for text in replies if "deadlock" in text]
    assert len(refused) == 1, replies
    # The refusal names the cycle: the other agent waits on the one that asked.
    assert "'ay'" in refused[0] and "'bee'" in refused[0]
    assert any(text.endswith("answers") for text in replies), replies


async def test_a_resumed_run_that_keeps_failing_is_dead_lettered(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    release = anyio.Event()

    async def never(request: ChatRequest) -> Outcome:
        await release.wait()
        return say("late")

    function_model.policy = lambda r: (
        never(r) if _role(r) == "mute" else tool_call(WAIT, message="hi", other_agent_id="mute")
    )
    asker = await _agent(runtime, "asker", "asker")
    await _agent(runtime, "mute", "mute")
    store = RunStore(runtime.redis)
    sub = await store.submit(asker.id, [InboxMessage(content="go")])
    worker = Worker(runtime, WorkerSettings(concurrency=8, lease_ms=2000, max_attempts=2))
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        run = await _until(
            lambda: _waiting(runtime, asker.id, sub.run_id), "the asker to wait", within=10
        )
        assert run.wait is not None
        # A reply that cannot be read: every resume fails.
        replies = bus_keys.wait_replies(asker.id, run.id, run.wait.call_id)
        await runtime.redis.hset(replies, "junk", "not json")
        await signal_ready(runtime.redis, asker.id)
        dead = await _until(
            lambda: list_dead_letters(runtime.redis), "the run to be dead-lettered", within=15
        )
        release.set()
        worker.stop()
        tg.cancel_scope.cancel()
    assert [d["run_id"] for d in dead] == [sub.run_id]
    assert "gave up after 2 attempts" in dead[0]["error"]
    assert (await _run(runtime, (asker.id, sub.run_id))).status == "failed"


async def _waiting(rt: Runtime, agent_id: str, run_id: str) -> Run | None:
    run = await _run(rt, (agent_id, run_id))
    return run if run.status == "waiting" else None


async def test_a_dead_lettered_run_answers_its_waiter(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    async def break_myself(request: ChatRequest) -> Outcome:
        # The agent's record turns unreadable under its run: every attempt fails.
        broken = await runtime.agents.resolve("fragile")
        await runtime.redis.set(keys.agent(broken.id), b"not json")
        return say("never committed")

    function_model.policy = _asks("fragile", "fragile", break_myself)
    asker = await _agent(runtime, "asker", "asker")
    await _agent(runtime, "fragile", "fragile")
    sub = await RunStore(runtime.redis).submit(asker.id, [InboxMessage(content="go")])
    [run] = await _burst_until_done(runtime, [(asker.id, sub.run_id)], max_attempts=2)
    assert run.status == "completed"
    assert "failed" in run.replies[0] and "gave up after 2 attempts" in run.replies[0]


async def test_a_deleted_agents_run_answers_its_waiter(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    async def delete_myself(request: ChatRequest) -> Outcome:
        doomed = await runtime.agents.resolve("doomed")
        # The asker's request is queued behind this run; then the agent is deleted.
        inbox = bus_keys.inbox(doomed.id)
        await _until(lambda: _eq(runtime.redis.xlen(inbox), 2), "the asker's request")
        await delete_agent(runtime, doomed.id)
        return say("gone")

    function_model.policy = _asks("doomed", "doomed", delete_myself)
    asker = await _agent(runtime, "asker", "asker")
    doomed = await _agent(runtime, "doomed", "doomed")
    store = RunStore(runtime.redis)
    await store.submit(doomed.id, [InboxMessage(content="first")])
    sub = await store.submit(asker.id, [InboxMessage(content="go")])
    [run] = await _burst_until_done(runtime, [(asker.id, sub.run_id)])
    assert run.status == "completed"
    assert "deleted" in run.replies[0]


async def test_a_run_record_that_cannot_be_read_is_dead_lettered_not_spun_on(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    agent = await _agent(runtime, "spinner", "x")
    sub = await RunStore(runtime.redis).submit(agent.id, [InboxMessage(content="hi")])
    await runtime.redis.set(keys.run(agent.id, sub.run_id), b"{broken")
    # A burst worker ends once the bad entry is out of the way.
    worker = await burst(runtime, concurrency=4, timeout_s=15)
    dead = await list_dead_letters(runtime.redis)
    assert [d["run_id"] for d in dead] == [sub.run_id]
    assert "run record" in dead[0]["error"]
    assert worker.counters["failed"] <= 1
    assert not function_model.requests


async def test_wait_for_graph_edges_end_with_their_wait_or_deadline(
    redis_client: aioredis.Redis,
) -> None:
    a, b, c = (Run(id=f"run-{x}", agent_id=x) for x in "abc")
    now = 1000.0
    assert await claim_wait(redis_client, a, ["b"], now + 10, now) is None
    assert await claim_wait(redis_client, b, ["c"], now + 10, now) is None
    # c -> a would close a -> b -> c -> a: refused, with the chain from the target on.
    assert await claim_wait(redis_client, c, ["x", "a"], now + 10, now) == ["a", "b", "c"]
    assert not await redis_client.hexists(bus_keys.waits(), "c")  # nothing recorded
    await end_wait(redis_client, b)  # b's wait ended: the chain is broken
    assert await claim_wait(redis_client, c, ["a"], now + 10, now) is None
    # An edge past its deadline (its removal lost to a crash) neither refuses nor stays.
    assert await claim_wait(redis_client, b, ["c"], now + 30, now + 20) is None
    assert not await redis_client.hexists(bus_keys.waits(), "c")
    await end_wait(redis_client, Run(id="run-other", agent_id="b"))  # another run's: kept
    assert await redis_client.hexists(bus_keys.waits(), "b")
