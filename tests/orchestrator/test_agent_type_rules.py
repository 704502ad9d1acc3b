"""Tool rules and approvals for a letta_v1 agent (issue #12): the rules hold as for MemGPT
agents, and no heartbeat message (which speaks of request_heartbeat and send_message) is
shown to a model that has neither."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from agents.events import Event, StopReason, ToolReturnMessage
from agents.llm import LLMSettings
from agents.loop import TurnResult, run_turn
from agents.manage import AgentSpec, BlockSpec, create_agent
from agents.runtime import LLMPool, Runtime
from agents.scripted import ScriptedModel, call, echo, sequence, text, tool_calls
from bus.envelopes import InboxMessage
from orchestrator.rules import RuleGate
from storage.records import Agent, ExitLoop, RequiredBeforeExit, RequiresApproval, ToolRule


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    async with ScriptedModel.serve(echo) as served:
        yield served


@pytest.fixture
async def rt(redis_client: aioredis.Redis, model: ScriptedModel) -> AsyncIterator[Runtime]:
    settings = LLMSettings(base_url=model.base_url, api_key="x", timeout_s=10, max_retries=1)
    runtime = Runtime(redis=redis_client, llm=LLMPool(settings), gate=RuleGate())
    try:
        yield runtime
    finally:
        await runtime.aclose()


async def _agent(rt: Runtime, *rules: ToolRule) -> Agent:
    spec = AgentSpec(
        name="v1-rules",
        agent_type="letta_v1_agent",
        memory_blocks=[BlockSpec(label="human", value="")],
        tool_rules=list(rules),
    )
    return await create_agent(rt, spec)


async def _turn(
    rt: Runtime, agent: Agent, content: str, role: str = "user"
) -> tuple[list[Event], TurnResult]:
    result = TurnResult()
    inputs = [InboxMessage(content=content, role=role)]  # type: ignore[arg-type]
    events = [e async for e in run_turn(rt, agent.id, inputs, result=result)]
    return events, result


def _no_heartbeats(model: ScriptedModel) -> None:
    for request in model.requests:
        assert not any('"type": "heartbeat"' in m.text for m in request.messages), request


async def test_an_approved_call_runs_and_the_model_goes_on_from_its_result(
    rt: Runtime, model: ScriptedModel
) -> None:
    agent = await _agent(rt, RequiresApproval(tool_name="memory_insert"))
    model.policy = sequence(
        tool_calls(call("memory_insert", label="human", new_str="likes tea")),
        text("Saved."),
    )
    _events, held = await _turn(rt, agent, "remember tea")
    assert held.stop_reason == "requires_approval"
    events, result = await _turn(rt, agent, json.dumps({"approve": True}), role="approval")
    assert result.stop_reason == "end_turn" and result.replies == ["Saved."]
    assert [e.status for e in events if isinstance(e, ToolReturnMessage)] == ["success"]
    assert model.requests[-1].messages[-1].role == "tool"
    _no_heartbeats(model)


async def test_exit_loop_ends_a_letta_v1_turn_after_the_tool(
    rt: Runtime, model: ScriptedModel
) -> None:
    agent = await _agent(rt, ExitLoop(tool_name="conversation_search"))
    model.policy = sequence(tool_calls(call("conversation_search", query="tea")))
    events, result = await _turn(rt, agent, "look it up")
    assert result.stop_reason == "end_turn" and len(model.requests) == 1
    assert isinstance(events[-2], StopReason)


async def test_a_required_tool_is_asked_for_before_the_turn_may_end(
    rt: Runtime, model: ScriptedModel
) -> None:
    agent = await _agent(rt, RequiredBeforeExit(tool_name="conversation_search"))
    model.policy = sequence(
        text("Hi!"),
        tool_calls(call("conversation_search", query="hi")),
        text("Hi again."),
    )
    _events, result = await _turn(rt, agent, "hello")
    assert result.stop_reason == "end_turn"
    assert result.replies == ["Hi!", "Hi again."]
    told = model.requests[1].messages[-1].text
    assert "conversation_search" in told and "request_heartbeat" not in told
