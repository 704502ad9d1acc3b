"""The MemGPT step loop against the scripted model over real HTTP and a real Redis."""

from __future__ import annotations

import json

import pytest

from agents.letta_messages import AssistantMessage, StopReason, UsageStatistics
from agents.loop import TurnOptions, TurnResult, run_turn
from agents.manage import AgentSpec, BlockSpec, create_agent
from agents.runtime import Runtime
from agents.scripted import (
    ChatRequest,
    FunctionModel,
    Outcome,
    malformed_tool_call,
    say,
    sequence,
    text,
    tool_call,
)
from bus import connect
from bus.envelopes import InboxMessage
from storage.records import Agent
from tests._util import tool_returns, turn


@pytest.fixture
async def agent(runtime: Runtime) -> Agent:
    """A memgpt agent with the base tools, as create_agent makes it by default."""
    return await create_agent(runtime, AgentSpec(name="sam"))


async def test_learns_and_corrects_a_name(
    runtime: Runtime, function_model: FunctionModel, redis_url: str
) -> None:
    agent = await create_agent(runtime, AgentSpec(name="mem", model="openai/scripted"))
    function_model.policy = sequence(
        tool_call(
            "core_memory_append",
            label="human",
            content="Name: Bob",
            request_heartbeat=True,
            thought="The user told me their name.",
        ),
        say("Nice to meet you, Bob!"),
        tool_call(
            "core_memory_replace",
            label="human",
            old_content="Bob",
            new_content="Charles",
            request_heartbeat=True,
        ),
        say("Sorry, Charles! Noted."),
    )
    events, result = await turn(runtime, agent, "My name is Bob")
    assert result.stop_reason == "end_turn"
    assert result.replies == ["Nice to meet you, Bob!"]
    assert [e.content for e in events if isinstance(e, AssistantMessage)] == [
        "Nice to meet you, Bob!"
    ]
    assert isinstance(events[-2], StopReason) and isinstance(events[-1], UsageStatistics)
    assert events[-1].step_count == 2
    # The second step's request showed the edited block to the model.
    assert "Name: Bob" in function_model.requests[1].system_prompt

    await turn(runtime, agent, "my name is actually Charles")
    # A fresh connection (as a new process would open) sees the same memory.
    fresh = connect(redis_url)
    try:
        other = Runtime(redis=fresh, llm=runtime.llm)
        stored = await other.agents.get(agent.id)
        blocks = {b.label: b.value for b in await other.blocks.get_many(stored.block_ids)}
        assert blocks["human"] == "Name: Charles"
        history = await other.blocks.history(stored.block_ids[1])
        assert [h.value for h in history] == ["", "Name: Bob", "Name: Charles"]
        assert all(h.editor == agent.id for h in history)
    finally:
        await fresh.aclose()


async def test_memory_errors_reach_the_model_and_the_turn_recovers(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    agent = await create_agent(
        runtime,
        AgentSpec(
            name="errs",
            memory_blocks=[
                BlockSpec(label="human", value="", limit=20),
                BlockSpec(label="persona", value="I am fixed.", read_only=True),
            ],
        ),
    )
    function_model.policy = sequence(
        tool_call("core_memory_append", label="human", content="x" * 50, request_heartbeat=True),
        tool_call("core_memory_replace", label="persona", old_content="fixed", new_content="free"),
        tool_call("core_memory_replace", label="human", old_content="nope", new_content="y"),
        tool_call("memory_insert", label="nowhere", new_str="z"),
        tool_call("core_memory_append", label="human", content="short", request_heartbeat=True),
        say("All set."),
    )
    events, result = await turn(runtime, agent, "remember a lot")
    returns = tool_returns(events)
    assert [r.status for r in returns] == ["error", "error", "error", "error", "success", "success"]
    assert "over its limit of 20" in returns[0].tool_return
    assert "read-only" in returns[1].tool_return
    assert "is not in block 'human'" in returns[2].tool_return
    assert "no memory block labelled 'nowhere'" in returns[3].tool_return
    assert "'human'" in returns[3].tool_return  # it names the labels that exist
    assert result.stop_reason == "end_turn" and result.replies == ["All set."]
    blocks = {b.label: b for b in await runtime.blocks.get_many(agent.block_ids)}
    assert blocks["human"].value == "short"
    assert blocks["persona"].value == "I am fixed."


async def test_malformed_arguments_and_unknown_tools_are_tool_errors(
    runtime: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    function_model.policy = sequence(
        malformed_tool_call("send_message"),
        tool_call("launch_rockets", count=3),
        tool_call("core_memory_append", label="human"),  # content missing
        say("Recovered."),
    )
    events, result = await turn(runtime, agent, "hi")
    returns = tool_returns(events)
    assert "not valid JSON" in returns[0].tool_return
    assert "no tool named 'launch_rockets'" in returns[1].tool_return
    assert "send_message" in returns[1].tool_return
    assert "content" in returns[2].tool_return
    assert result.replies == ["Recovered."]
    # The model saw every error as a tool result following its call.
    last = function_model.requests[-1]
    tool_msgs = [m for m in last.messages if m.role == "tool"]
    assert len(tool_msgs) == 3
    assert json.loads(tool_msgs[0].text)["status"] == "Failed"


async def test_step_limit_ends_the_turn(runtime: Runtime, function_model: FunctionModel) -> None:
    agent = await create_agent(runtime, AgentSpec(name="loopy", max_steps=3))
    function_model.policy = lambda request: tool_call(
        "conversation_search", query="anything", request_heartbeat=True
    )
    _events, result = await turn(runtime, agent, "go")
    assert result.stop_reason == "max_steps"
    assert result.usage.step_count == 3
    assert len(function_model.requests) == 3


async def test_plain_text_is_delivered_when_nothing_was_sent(
    runtime: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    function_model.policy = sequence(text("Hello there, I ignore tools."))
    events, result = await turn(runtime, agent, "hi")
    assert result.stop_reason == "end_turn"
    assert [e.content for e in events if isinstance(e, AssistantMessage)] == [
        "Hello there, I ignore tools."
    ]


async def test_every_message_is_persisted_with_ids(
    runtime: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    function_model.policy = sequence(
        tool_call("conversation_search", query="hello", request_heartbeat=True), say("done")
    )
    result = TurnResult()
    events = [
        e
        async for e in run_turn(
            runtime,
            agent.id,
            [InboxMessage(content="hello", otid="o-1")],
            TurnOptions(run_id="run-x"),
            result=result,
        )
    ]
    assert events
    stored = await runtime.messages.list(agent.id, limit=100)
    roles = [m.role for m in stored]
    # input, call, result, heartbeat, reply call, reply result
    assert roles == ["user", "assistant", "tool", "user", "assistant", "tool"]
    assert all(m.run_id == "run-x" and m.step_id and m.id for m in stored)
    assert stored[0].otid == "o-1"
    assert [m.seq for m in stored] == sorted(m.seq for m in stored)
    agent_now = await runtime.agents.get(agent.id)
    assert agent_now.message_ids == [m.id for m in stored]
    assert result.usage.step_count == 2
    assert (
        result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens > 0
    )


async def test_llm_outage_stops_with_llm_api_error_and_keeps_the_input(
    runtime: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    from agents.scripted import ServerError

    function_model.policy = lambda request: ServerError(status=503)
    _events, result = await turn(runtime, agent, "are you there?")
    assert result.stop_reason == "llm_api_error"
    stored = await runtime.messages.list(agent.id)
    assert [m.content for m in stored] == ["are you there?"]


def _unused(request: ChatRequest) -> None:  # keeps the import used for typing policies
    del request


async def test_settings_changed_during_a_step_survive_its_commit(
    runtime: Runtime, function_model: FunctionModel, agent: Agent
) -> None:

    async def policy(request: ChatRequest) -> Outcome:
        # The API edits the agent while the model is thinking.
        await runtime.agents.update(agent.id, description="edited mid-step", tags=["new"])
        return say("hi")

    function_model.policy = policy
    _events, result = await turn(runtime, agent, "hello")
    assert result.stop_reason == "end_turn"
    stored = await runtime.agents.get(agent.id)
    assert stored.description == "edited mid-step" and stored.tags == ["new"]
    assert len(stored.message_ids) == 3  # and the turn's own messages were committed
