"""requires_approval: the run stops before the call; an approval runs it, a denial answers it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from agents.letta_messages import ApprovalRequestMessage, StopReason
from agents.manage import AgentSpec, BlockSpec, create_agent
from agents.runtime import Runtime
from agents.scripted import ChatRequest, FunctionModel, Outcome
from storage.records import Agent, RequiresApproval
from tests._util import approval_policy, scripted_runtime, turn


@pytest.fixture
async def rt(redis_client: aioredis.Redis, function_model: FunctionModel) -> AsyncIterator[Runtime]:
    async with scripted_runtime(redis_client, function_model) as runtime:  # gate: RuleGate
        yield runtime


def policy(request: ChatRequest) -> Outcome:
    return approval_policy(request, moved_on=True)


@pytest.fixture
async def agent(rt: Runtime, function_model: FunctionModel) -> Agent:
    """An agent whose core_memory_append needs approval, on :func:`policy`."""
    function_model.policy = policy
    return await create_agent(
        rt,
        AgentSpec(
            name="careful",
            memory_blocks=[BlockSpec(label="human", value="")],
            tool_rules=[RequiresApproval(tool_name="core_memory_append")],
        ),
    )


@pytest.fixture
async def held(rt: Runtime, agent: Agent) -> None:
    """The agent has been asked to remember something: the call waits for approval."""
    await turn(rt, agent, "remember that I like tea")


async def _human(rt: Runtime, agent: Agent) -> str:
    [block] = await rt.blocks.get_many((await rt.agents.get(agent.id)).block_ids)
    return block.value


async def test_approve_runs_the_held_call(rt: Runtime, agent: Agent) -> None:
    events, result = await turn(rt, agent, "remember that I like tea")
    assert result.stop_reason == "requires_approval"
    [request] = [e for e in events if isinstance(e, ApprovalRequestMessage)]
    assert request.tool_call.name == "core_memory_append"
    assert await _human(rt, agent) == ""  # nothing ran yet
    events, result = await turn(rt, agent, json.dumps({"approve": True}), role="approval")
    assert result.stop_reason == "end_turn"
    assert await _human(rt, agent) == "likes tea"
    assert result.replies[0].startswith("after approval: Appended to block 'human'")
    assert (await rt.agents.get(agent.id)).pending_approval == []


@pytest.mark.usefixtures("held")
async def test_deny_answers_the_call_with_the_reason(rt: Runtime, agent: Agent) -> None:
    _events, result = await turn(
        rt, agent, json.dumps({"approve": False, "reason": "not now"}), role="approval"
    )
    assert result.replies == [
        "after approval: the user denied the call to core_memory_append: not now"
    ]
    assert await _human(rt, agent) == ""


@pytest.mark.usefixtures("held")
async def test_a_new_message_answers_a_pending_call_as_not_approved(
    rt: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    events, result = await turn(rt, agent, "never mind, how are you?")
    assert result.stop_reason == "end_turn"
    assert "was not approved: a new message came first" in result.replies[0]
    assert await _human(rt, agent) == ""
    # Every tool call of the assistant still has its result in the model's context.
    last = function_model.requests[-1]
    calls = {c.id for m in last.messages if m.tool_calls for c in m.tool_calls}
    results = {m.tool_call_id for m in last.messages if m.role == "tool"}
    assert calls <= results
    assert isinstance(events[-2], StopReason)
