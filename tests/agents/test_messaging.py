"""Agent-to-agent messaging through the bus: waits suspend runs, replies resume them."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

import anyio
import pytest

from agents.manage import AgentSpec, BlockSpec, create_agent
from agents.messaging import Router
from agents.runs import RunStore
from agents.runtime import Runtime
from agents.scripted import ChatRequest, FunctionModel, Outcome, Policy, Slow, say, tool_call
from agents.worker import Worker, WorkerSettings
from bus.envelopes import InboxMessage
from storage.records import Agent, Run

MULTI = [
    "send_message",
    "send_message_to_agent_and_wait_for_reply",
    "send_message_to_agent_async",
    "send_message_to_agents_matching_tags",
]


def _role(request: ChatRequest) -> str:
    return (
        request.system_prompt.split("ROLE:", 1)[1].split()[0]
        if "ROLE:" in request.system_prompt
        else ""
    )


def _after_tool(request: ChatRequest) -> bool:
    last = request.last_message
    return last is not None and last.role == "user" and '"type": "heartbeat"' in last.text


def _tool_message(request: ChatRequest) -> dict[str, object]:
    result = request.last_tool_result
    assert result is not None
    return json.loads(result.content)


def _gather_team(request: ChatRequest) -> Outcome:
    """A boss: asks every agent tagged "team" for a report, then says their sorted replies."""
    if _after_tool(request):
        rows = json.loads(str(_tool_message(request)["message"]))
        return say(json.dumps(sorted(str(r["reply"]) for r in rows)))
    return tool_call(
        "send_message_to_agents_matching_tags", message="report", match_all=["team"], match_some=[]
    )


def _send_to(other_agent_id: str, message: str = "hi", *, wait: bool = False) -> Policy:
    """A sender: sends ``message`` to ``other_agent_id`` (and waits for its reply with
    ``wait``), then says "result: <the tool's message>"."""
    tool = "send_message_to_agent_and_wait_for_reply" if wait else "send_message_to_agent_async"

    def policy(request: ChatRequest) -> Outcome:
        if _after_tool(request):
            return say(f"result: {_tool_message(request)['message']}")
        return tool_call(tool, message=message, other_agent_id=other_agent_id)

    return policy


def _pong_or(pong: str, sender: Policy) -> Policy:
    """Agents whose role is ponger answer ``pong``; the others play ``sender``."""

    def policy(request: ChatRequest) -> Outcome | Awaitable[Outcome]:
        return say(pong) if _role(request) == "ponger" else sender(request)

    return policy


async def _agent(rt: Runtime, name: str, role: str, tags: list[str] | None = None) -> Agent:
    return await _messenger(rt, name, f"ROLE:{role}", tags=tags or [])


async def _messenger(rt: Runtime, name: str, persona: str, **spec: Any) -> Agent:
    """An agent with the messaging tools alone (no base tools) and ``persona``."""
    return await create_agent(
        rt,
        AgentSpec(
            name=name,
            include_base_tools=False,
            tools=MULTI,
            memory_blocks=[BlockSpec(label="persona", value=persona)],
            **spec,
        ),
    )


async def _burst_until_done(
    rt: Runtime, runs: list[tuple[str, str]], *, limit_s: float = 20, **settings: Any
) -> list[Run]:
    """Run a burst worker (kept alive by the runs' events) until every run has finished."""
    store = RunStore(rt.redis)
    options: dict[str, Any] = {"burst": True, "concurrency": 8, "lease_ms": 5000, **settings}
    worker = Worker(rt, WorkerSettings(**options))
    with anyio.fail_after(limit_s):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            for agent_id, run_id in runs:
                assert [e async for e in store.follow(agent_id, run_id)]
    return [await store.get(agent_id, run_id) for agent_id, run_id in runs]


async def _run(rt: Runtime, agent: Agent, text: str, *, limit_s: float = 20) -> list[str]:
    submitted = await RunStore(rt.redis).submit(agent.id, [InboxMessage(content=text)])
    [run] = await _burst_until_done(rt, [(agent.id, submitted.run_id)], limit_s=limit_s)
    assert run.status == "completed", run
    return run.replies


async def test_wait_for_reply_suspends_and_resumes(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    function_model.policy = _pong_or("pong from bob", _send_to("bob", "ping", wait=True))
    alice = await _agent(runtime, "alice", "pinger")
    bob = await _agent(runtime, "bob", "ponger")
    replies = await _run(runtime, alice, "go")
    assert replies == ["result: pong from bob"]
    # Bob saw who sent it.
    [incoming] = await runtime.messages.list(bob.id, roles=["user"])
    assert incoming.sender_id == alice.id and "alice" in incoming.content


async def test_a_wait_cycle_is_refused_at_once(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    a_to_b, b_to_a = _send_to("b", wait=True), _send_to("a", "back", wait=True)
    function_model.policy = lambda request: (a_to_b if _role(request) == "a" else b_to_a)(request)
    a = await _agent(runtime, "a", "a")
    await _agent(runtime, "b", "b")
    replies = await _run(runtime, a, "start")
    # b's attempt to wait on a was refused with a clear error, b replied with it, a got that.
    assert "deadlock" in replies[0]


async def test_a_wait_times_out_with_a_tool_error(
    runtime: Runtime, function_model: FunctionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMGRID_AGENT_REPLY_TIMEOUT", "1")

    to_sloth = _send_to("sloth", wait=True)

    def policy(request: ChatRequest) -> Outcome:
        if _role(request) == "slow":
            return Slow(seconds=4, then=say("too late"))
        return to_sloth(request)

    function_model.policy = policy
    caller = await _agent(runtime, "caller", "caller")
    await _agent(runtime, "sloth", "slow")
    replies = await _run(runtime, caller, "start")
    assert "did not reply within the timeout" in replies[0]


async def test_routes_are_checked(runtime: Runtime, function_model: FunctionModel) -> None:
    class NoRoute:
        async def refuse(self, sender: Agent, target: Agent) -> str | None:
            return f"the workflow has no route from {sender.name} to {target.name}"

    router: Router = NoRoute()
    runtime.router = router

    function_model.policy = _send_to("target")
    sender = await _agent(runtime, "sender", "x")
    await _agent(runtime, "target", "y")
    replies = await _run(runtime, sender, "go")
    assert replies == ["result: the workflow has no route from sender to target"]
    unknown = await _agent(runtime, "lonely", "x")
    function_model.policy = _send_to("nobody")
    replies = await _run(runtime, unknown, "go")
    assert "no agent named or with id 'nobody'" in replies[0]


async def test_tag_fan_out_gathers_ten_replies(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    def policy(request: ChatRequest) -> Outcome:
        role = _role(request)
        if role.startswith("worker"):
            return say(f"{role} done")
        return _gather_team(request)

    function_model.policy = policy
    boss = await _agent(runtime, "boss", "boss")
    for i in range(10):
        await _agent(runtime, f"w{i}", f"worker{i}", tags=["team"])
    replies = await _run(runtime, boss, "collect", limit_s=60)
    assert json.loads(replies[0]) == sorted(f"worker{i} done" for i in range(10))


async def test_async_send_does_not_wait(runtime: Runtime, function_model: FunctionModel) -> None:
    def policy(request: ChatRequest) -> Outcome:
        if _role(request) == "listener":
            return say("heard you")
        if _after_tool(request):
            return say("sent")
        return tool_call("send_message_to_agent_async", message="fyi", other_agent_id="listener")

    function_model.policy = policy
    talker = await _agent(runtime, "talker", "talker")
    listener = await _agent(runtime, "listener", "listener")
    assert await _run(runtime, talker, "tell them") == ["sent"]
    runs = await RunStore(runtime.redis).recent(listener.id)
    assert len(runs) == 1 and runs[0].hops == 1


async def test_exit_loop_on_a_waiting_tool_ends_the_turn_at_the_reply(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    from storage.records import ExitLoop

    function_model.policy = _pong_or("pong", _send_to("pong2", "ping", wait=True))
    asker = await create_agent(
        runtime,
        AgentSpec(
            name="asker",
            include_base_tools=False,
            tools=MULTI,
            memory_blocks=[BlockSpec(label="persona", value="ROLE:asker")],
            tool_rules=[ExitLoop(tool_name="send_message_to_agent_and_wait_for_reply")],
        ),
    )
    await _agent(runtime, "pong2", "ponger")
    await _run(runtime, asker, "go")
    asker_requests = [r for r in function_model.requests if "ROLE:asker" in r.system_prompt]
    assert len(asker_requests) == 1  # no step after the reply: the rule ended the turn
    [tool_result] = [m for m in await runtime.messages.list(asker.id) if m.role == "tool"]
    assert "pong" in tool_result.content


async def test_runs_caused_carry_the_root_run_through_every_hop(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    """alice waits on bob, who tells carol: both runs name alice's run (the outside input) as
    their root, so that what one input caused can be told from what others did."""

    def policy(request: ChatRequest) -> Outcome:
        role = _role(request)
        if role == "carol":
            return say("noted")
        if _after_tool(request):
            return say("done")
        if role == "bob":
            return tool_call("send_message_to_agent_async", message="fyi", other_agent_id="carol")
        return tool_call(
            "send_message_to_agent_and_wait_for_reply", message="ask", other_agent_id="bob"
        )

    function_model.policy = policy
    alice = await _agent(runtime, "alice", "alice")
    bob = await _agent(runtime, "bob", "bob")
    carol = await _agent(runtime, "carol", "carol")
    runs = RunStore(runtime.redis)
    submitted = await runs.submit(alice.id, [InboxMessage(content="go")])
    [root] = await _burst_until_done(runtime, [(alice.id, submitted.run_id)], limit_s=30)
    assert root.root_run_id is None  # an outside input is its own root
    [bobs] = await runs.recent(bob.id)
    [carols] = await runs.recent(carol.id)
    assert (bobs.hops, carols.hops) == (1, 2)
    assert bobs.root_run_id == carols.root_run_id == root.id
