"""Agent types (issue #12): memgpt_agent, memgpt_v2_agent and letta_v1_agent through the step
loop, with the scripted model's policies run in-process (function_model) on a real Redis."""

from __future__ import annotations

import json

import pytest

from agents.letta_messages import (
    AssistantMessage,
    ReasoningMessage,
    StopReason,
    ToolCallMessage,
    ToolReturnMessage,
)
from agents.manage import AgentSpec, BlockSpec, create_agent
from agents.runtime import Runtime
from agents.scripted import ChatRequest, FunctionModel, Reply, call, sequence, text, tool_calls
from storage.records import Agent
from tests._util import turn

V1_TOOLS = [
    "memory_insert",
    "memory_replace",
    "memory_rethink",
    "memory",
    "archival_memory_insert",
    "archival_memory_search",
    "conversation_search",
]


async def _agent(rt: Runtime, agent_type: str | None) -> Agent:
    spec = AgentSpec(
        name=f"typed-{agent_type}",
        agent_type=agent_type,
        memory_blocks=[BlockSpec(label="human", value="")],
    )
    return await create_agent(rt, spec)


@pytest.fixture
async def agent(runtime: Runtime) -> Agent:
    """A letta_v1 agent (tests of other types make theirs with :func:`_agent`)."""
    return await _agent(runtime, "letta_v1_agent")


def _parameters(request: ChatRequest) -> dict[str, set[str]]:
    return {
        t.function.name: set((t.function.parameters or {}).get("properties", {}))
        for t in request.tools or []
    }


async def test_an_agent_is_memgpt_unless_told_otherwise(runtime: Runtime) -> None:
    agent = await _agent(runtime, None)
    assert agent.agent_type == "memgpt_agent"
    assert "send_message" in agent.tools and "core_memory_append" in agent.tools
    stored = await runtime.agents.get(agent.id)
    assert stored.agent_type == "memgpt_agent"


async def test_letta_v1_plain_text_is_the_reply(
    runtime: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    assert agent.agent_type == "letta_v1_agent" and agent.tools == V1_TOOLS
    function_model.policy = sequence(text("Hello, Bob."))
    events, result = await turn(runtime, agent, "hi, I am Bob")
    said = [e for e in events if isinstance(e, AssistantMessage)]
    assert [e.content for e in said] == ["Hello, Bob."]
    assert not [e for e in events if isinstance(e, ReasoningMessage)]
    assert result.stop_reason == "end_turn" and result.replies == ["Hello, Bob."]
    request = function_model.requests[0]
    # No send_message, no heartbeats, no inner thoughts: the model's text is its answer.
    parameters = _parameters(request)
    assert sorted(parameters) == sorted(V1_TOOLS)
    assert all(not {"request_heartbeat", "inner_thoughts"} & p for p in parameters.values())
    assert "send_message" not in (request.system_prompt or "")
    listed = await runtime.messages.list(agent.id, limit=10)
    assert [m.role for m in listed] == ["user", "assistant"] and listed[1].reply


async def test_letta_v1_tools_chain_steps_without_heartbeats(
    runtime: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    function_model.policy = sequence(
        tool_calls(call("memory_insert", label="human", new_str="Name: Bob")),
        tool_calls(call("conversation_search", query="Bob")),
        text("Noted, Bob."),
    )
    events, result = await turn(runtime, agent, "I am Bob")
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "ToolCallMessage",
        "ToolReturnMessage",
        "ToolCallMessage",
        "ToolReturnMessage",
        "AssistantMessage",
        "StopReason",
        "UsageStatistics",
    ]
    assert all(e.status == "success" for e in events if isinstance(e, ToolReturnMessage))
    assert result.replies == ["Noted, Bob."] and result.usage.step_count == 3
    # The model reads the tool's result next: no heartbeat message in between.
    assert [m.role for m in function_model.requests[1].messages][-2:] == ["assistant", "tool"]
    listed = await runtime.messages.list(agent.id, limit=20)
    assert [m.role for m in listed] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    blocks = await runtime.blocks.get_many(agent.block_ids)
    assert [b.value for b in blocks] == ["Name: Bob"]


async def test_letta_v1_reasoning_and_text_beside_tool_calls(
    runtime: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    function_model.policy = sequence(
        Reply(
            content="Let me look that up.",
            reasoning="The user wants an old fact; search first.",
            tool_calls=(call("conversation_search", query="tea"),),
        ),
        Reply(content="Nothing about tea yet.", reasoning="No hits."),
    )
    events, result = await turn(runtime, agent, "what did I say about tea?")
    shown = [
        (type(e).__name__, getattr(e, "reasoning", None) or getattr(e, "content", None))
        for e in events
        if isinstance(e, ReasoningMessage | AssistantMessage)
    ]
    assert shown == [
        ("ReasoningMessage", "The user wants an old fact; search first."),
        ("AssistantMessage", "Let me look that up."),
        ("ReasoningMessage", "No hits."),
        ("AssistantMessage", "Nothing about tea yet."),
    ]
    first = [
        e for e in events if isinstance(e, ReasoningMessage | AssistantMessage | ToolCallMessage)
    ]
    assert len({e.id for e in first[:3]}) == 1  # one model answer, one message id
    assert result.replies == ["Let me look that up.", "Nothing about tea yet."]
    assert isinstance(events[-2], StopReason) and events[-2].stop_reason == "end_turn"
    stored = await runtime.messages.list(agent.id, limit=10)
    assert stored[1].reasoning == "The user wants an old fact; search first."


async def test_letta_v1_calls_past_the_step_limit_stop_as_max_steps(
    runtime: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    await runtime.agents.update(agent.id, max_steps=2)
    function_model.policy = sequence(
        tool_calls(call("conversation_search", query="a")),
        tool_calls(call("conversation_search", query="b")),
    )
    events, result = await turn(runtime, agent, "search forever")
    assert result.stop_reason == "max_steps"
    stop = events[-2]
    assert isinstance(stop, StopReason) and "request_heartbeat" not in (stop.detail or "")


@pytest.mark.parametrize("agent_type", ["memgpt_agent", "memgpt_v2_agent"])
async def test_memgpt_types_reply_through_send_message(
    runtime: Runtime, function_model: FunctionModel, agent_type: str
) -> None:
    agent = await _agent(runtime, agent_type)
    function_model.policy = sequence(
        tool_calls(call("send_message", message="Hi!"), reasoning="Greet them."),
    )
    events, result = await turn(runtime, agent, "hello")
    assert result.replies == ["Hi!"]
    reasoning = [e.reasoning for e in events if isinstance(e, ReasoningMessage)]
    assert reasoning == ["Greet them."]  # native reasoning when the text is empty
    parameters = _parameters(function_model.requests[0])
    assert "request_heartbeat" in parameters["conversation_search"]
    if agent_type == "memgpt_v2_agent":
        assert "core_memory_append" not in parameters and "memory_rethink" in parameters
    else:
        assert "core_memory_append" in parameters


async def test_memgpt_v2_edits_memory_with_the_v2_tools(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    agent = await _agent(runtime, "memgpt_v2_agent")
    function_model.policy = sequence(
        tool_calls(
            call("memory_insert", label="human", new_str="Likes tea", request_heartbeat=True)
        ),
        tool_calls(
            call("memory_replace", label="human", old_str="tea", new_str="green tea"),
            call("send_message", message="Noted."),
        ),
    )
    events, result = await turn(runtime, agent, "I like tea")
    assert result.replies == ["Noted."]
    blocks = await runtime.blocks.get_many(agent.block_ids)
    assert [b.value for b in blocks] == ["Likes green tea"]
    returns = [
        json.loads(e.tool_return)["status"] for e in events if isinstance(e, ToolReturnMessage)
    ]
    assert returns == ["OK", "OK", "OK"]


async def test_the_memory_tool_edits_blocks_as_files(
    runtime: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    function_model.policy = sequence(
        tool_calls(call("memory", command="create", path="/memories/human", file_text="Tea")),
        tool_calls(call("memory", command="insert", path="/memories/human", insert_text="Bob")),
        tool_calls(
            call("memory", command="str_replace", path="human", old_str="Tea", new_str="Green tea")
        ),
        tool_calls(call("memory", command="delete", path="/memories/human")),
        tool_calls(call("memory", command="insert", path="/memories/nope", insert_text="x")),
        text("Done."),
    )
    events, result = await turn(runtime, agent, "remember")
    returns = [e for e in events if isinstance(e, ToolReturnMessage)]
    assert [e.status for e in returns] == ["success", "success", "success", "error", "error"]
    assert "not available" in returns[3].tool_return
    assert "no memory block labelled 'nope'" in returns[4].tool_return
    blocks = await runtime.blocks.get_many(agent.block_ids)
    assert [b.value for b in blocks] == ["Green tea\nBob"]
    assert result.replies == ["Done."]
