"""Tool rules and approvals for a letta_v1 agent (issue #12): the rules hold as for MemGPT
agents, and no heartbeat message (which speaks of request_heartbeat and send_message) is
shown to a model that has neither."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from agents.letta_messages import ApprovalRequestMessage, StopReason, ToolReturnMessage
from agents.manage import AgentSpec, BlockSpec, create_agent
from agents.rules import RuleGate
from agents.runtime import Runtime
from agents.scripted import FunctionModel, call, sequence, text, tool_calls
from storage.records import Agent, ExitLoop, RequiredBeforeExit, RequiresApproval, ToolRule
from tests._util import scripted_runtime, turn


@pytest.fixture
async def rt(redis_client: aioredis.Redis, function_model: FunctionModel) -> AsyncIterator[Runtime]:
    async with scripted_runtime(redis_client, function_model, gate=RuleGate()) as runtime:
        yield runtime


async def _agent(rt: Runtime, *rules: ToolRule) -> Agent:
    spec = AgentSpec(
        name="v1-rules",
        agent_type="letta_v1_agent",
        memory_blocks=[BlockSpec(label="human", value="")],
        tool_rules=list(rules),
    )
    return await create_agent(rt, spec)


def _no_heartbeats(function_model: FunctionModel) -> None:
    for request in function_model.requests:
        assert not any('"type": "heartbeat"' in m.text for m in request.messages), request


async def test_an_approved_call_runs_and_the_model_goes_on_from_its_result(
    rt: Runtime, function_model: FunctionModel
) -> None:
    agent = await _agent(rt, RequiresApproval(tool_name="memory_insert"))
    function_model.policy = sequence(
        tool_calls(call("memory_insert", label="human", new_str="likes tea")),
        text("Saved."),
    )
    asked, held = await turn(rt, agent, "remember tea")
    assert held.stop_reason == "requires_approval"
    # The held call shows as a request, from the stored assistant message (no send_message).
    requests = [e for e in asked if isinstance(e, ApprovalRequestMessage)]
    assert [r.tool_call.name for r in requests] == ["memory_insert"]
    events, result = await turn(rt, agent, json.dumps({"approve": True}), role="approval")
    assert result.stop_reason == "end_turn" and result.replies == ["Saved."]
    assert [e.status for e in events if isinstance(e, ToolReturnMessage)] == ["success"]
    assert function_model.requests[-1].messages[-1].role == "tool"
    _no_heartbeats(function_model)


async def test_exit_loop_ends_a_letta_v1_turn_after_the_tool(
    rt: Runtime, function_model: FunctionModel
) -> None:
    agent = await _agent(rt, ExitLoop(tool_name="conversation_search"))
    function_model.policy = sequence(tool_calls(call("conversation_search", query="tea")))
    events, result = await turn(rt, agent, "look it up")
    assert result.stop_reason == "end_turn" and len(function_model.requests) == 1
    assert isinstance(events[-2], StopReason)


async def test_a_required_tool_is_asked_for_before_the_turn_may_end(
    rt: Runtime, function_model: FunctionModel
) -> None:
    agent = await _agent(rt, RequiredBeforeExit(tool_name="conversation_search"))
    function_model.policy = sequence(
        text("Hi!"),
        tool_calls(call("conversation_search", query="hi")),
        text("Hi again."),
    )
    _events, result = await turn(rt, agent, "hello")
    assert result.stop_reason == "end_turn"
    assert result.replies == ["Hi!", "Hi again."]
    told = function_model.requests[1].messages[-1].text
    assert "conversation_search" in told and "request_heartbeat" not in told
