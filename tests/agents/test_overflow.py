"""Context overflow never bricks an agent: eviction, recursive summary, recall keeps all."""

from __future__ import annotations

import json

from agents.letta_messages import AssistantMessage
from agents.manage import AgentSpec, BlockSpec, create_agent
from agents.runtime import Runtime
from agents.scripted import (
    ChatRequest,
    ContextTooLong,
    FunctionModel,
    Outcome,
    say,
    text,
    tool_call,
)
from agents.tokens import estimate_tokens
from storage.records import Agent
from tests._util import turn_result

SECRET = "PURPLE-ELEPHANT-42"


def _is_heartbeat(request: ChatRequest) -> bool:
    last = request.last_message
    return last is not None and last.role == "user" and '"type": "heartbeat"' in last.text


def recall_policy(request: ChatRequest) -> Outcome:
    if not request.tools:  # the summarizer's request
        return text(f"The user said their secret code early on. {len(request.messages)} parts.")
    if _is_heartbeat(request):
        result = request.last_tool_result
        return say(f"Your code was in my recall: {result.content if result else ''}")
    last = request.last_message
    said = last.text if last is not None else ""
    if "what was my secret code" in said:
        return tool_call("conversation_search", query="secret code", request_heartbeat=True)
    return say(f"Noted: {said[:40]}")


async def test_300_turns_in_a_2k_window(runtime: Runtime, function_model: FunctionModel) -> None:
    window = 2048
    agent = await create_agent(
        runtime,
        AgentSpec(
            name="small",
            system="You are a terse assistant with memory. Reply with send_message.",
            memory_blocks=[BlockSpec(label="human", value="", limit=200)],
            include_base_tools=False,
            tools=["send_message", "conversation_search"],
            context_window=window,
        ),
    )
    function_model.policy = recall_policy
    first = await turn_result(runtime, agent.id, f"My secret code is {SECRET}, keep it safe.")
    assert first.stop_reason == "end_turn"
    for turn in range(298):
        result = await turn_result(
            runtime, agent.id, f"Filler message number {turn}: " + "blah " * 20
        )
        assert result.stop_reason == "end_turn", (turn, result.stop_reason)
    final = await turn_result(runtime, agent.id, "what was my secret code?")
    assert final.stop_reason == "end_turn"
    assert SECRET in final.replies[0]

    chat_requests = [r for r in function_model.requests if r.tools]
    summaries = [r for r in function_model.requests if not r.tools]
    assert summaries, "the window should have forced at least one summary"
    for request in function_model.requests:
        raw = request.raw
        assert estimate_tokens(raw["messages"], raw.get("tools", [])) <= window
    # No request ever splits a tool call from its result.
    for request in chat_requests:
        first_kept = request.messages[1]
        assert first_kept.role != "tool"
    stored = await runtime.agents.get(agent.id)
    assert stored.summary.startswith("The user said their secret code")
    assert stored.evicted_count > 0
    # Every message is still in recall memory: 300 turns of (user, call, result) + heartbeat
    # and the second call/result of the last turn.
    assert await runtime.messages.count(agent.id) == 300 * 3 + 3
    assert len(stored.message_ids) < 100


async def test_provider_context_error_compacts_and_retries(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    agent = await create_agent(runtime, AgentSpec(name="retry", context_window=100_000))
    for i in range(6):
        function_model.policy = lambda request, i=i: say(f"reply {i}")
        await turn_result(runtime, agent.id, f"message {i}")
    refused = {"done": False}

    def policy(request: ChatRequest) -> Outcome:
        if not request.tools:
            return text("Summary of the early chat.")
        if not refused["done"]:
            refused["done"] = True
            return ContextTooLong()
        return say("still here")

    function_model.policy = policy
    result = await turn_result(runtime, agent.id, "are you still there?")
    assert result.stop_reason == "end_turn" and result.replies == ["still here"]
    stored = await runtime.agents.get(agent.id)
    assert stored.evicted_count > 0 and stored.summary == "Summary of the early chat."


async def _tiny_agent(runtime: Runtime, name: str) -> Agent:
    """An agent with a 1,024-token window, a one-line system prompt, no blocks and only
    send_message: a few turns fill its window."""
    spec = AgentSpec(
        name=name,
        system="Short.",
        memory_blocks=[],
        include_base_tools=False,
        tools=["send_message"],
        context_window=1024,
    )
    return await create_agent(runtime, spec)


async def test_failed_summary_still_completes_the_turn(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    from agents.scripted import ServerError

    agent = await _tiny_agent(runtime, "nosum")

    def policy(request: ChatRequest) -> Outcome:
        if not request.tools:
            return ServerError(status=500)
        return say("ok " + "x" * 200)

    function_model.policy = policy
    for i in range(15):
        result = await turn_result(runtime, agent.id, f"turn {i} " + "words " * 40)
        assert result.stop_reason == "end_turn"
    stored = await runtime.agents.get(agent.id)
    assert "without a summary" in stored.summary
    assert await runtime.messages.count(agent.id) == 15 * 3
    replies = [
        json.loads(m.tool_calls[0].arguments)["message"]
        for m in await runtime.messages.list(agent.id, limit=100)
        if m.tool_calls
    ]
    assert len(replies) == 15
    assert AssistantMessage  # imported for readers of the event types


async def test_a_runaway_summary_cannot_overflow_the_window(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    agent = await _tiny_agent(runtime, "longsum")

    def policy(request: ChatRequest) -> Outcome:
        if not request.tools:  # the summarizer: echoes far more than fits
            return text("summary " * 2000)
        return say("ok " + "y" * 200)

    function_model.policy = policy
    for i in range(20):
        result = await turn_result(runtime, agent.id, f"turn {i} " + "words " * 40)
        assert result.stop_reason == "end_turn", (i, result.stop_reason)
    stored = await runtime.agents.get(agent.id)
    assert stored.evicted_count > 0 and len(stored.summary) <= 1024 * 0.1 * 3
