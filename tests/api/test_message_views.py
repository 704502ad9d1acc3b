"""How messages are presented: ``use_assistant_message`` and the assistant message's tool.

Letta shows a ``send_message`` call as an ``assistant_message`` by default; with
``use_assistant_message=false`` it is a ``tool_call_message`` (and its ``tool_return_message``)
like any other call. ``assistant_message_tool_name``/``_kwarg`` pick which tool and argument
stand for the assistant message. The same options hold on send, stream and list.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from agents.scripted import ChatRequest, Outcome, Policy, say, tool_call
from tests.api._letta import LETTA01, LETTA1X, bob, official_clients_test
from tests.api.conftest import make_agent, say_to, sse_frames


def remembering(request: ChatRequest) -> Outcome:
    said = request.last_message.text if request.last_message is not None else ""
    if '"type": "heartbeat"' in said:
        return say("noted", thought="stored it")
    if "remember" in said:
        return tool_call(
            "core_memory_append", label="human", content="likes tea", request_heartbeat=True
        )
    return say("hello there", thought="a greeting")


@pytest.fixture
def policy() -> Policy:
    return remembering


def _types(messages: list[dict[str, Any]]) -> list[str]:
    return [m["message_type"] for m in messages]


def _calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["tool_call"] for m in messages if m["message_type"] == "tool_call_message"]


async def test_without_assistant_messages_send_message_is_a_tool_call(
    client: httpx.AsyncClient,
) -> None:
    agent = await make_agent(client)
    result = await say_to(client, agent["id"], "hi", use_assistant_message=False)
    messages = result["messages"]
    assert "assistant_message" not in _types(messages)
    [call] = _calls(messages)
    assert call["name"] == "send_message"
    assert json.loads(call["arguments"])["message"] == "hello there"
    [returned] = [m for m in messages if m["message_type"] == "tool_return_message"]
    assert returned["tool_call_id"] == call["tool_call_id"]
    assert _types(messages) == ["reasoning_message", "tool_call_message", "tool_return_message"]
    # The default is unchanged.
    again = await say_to(client, agent["id"], "hi")
    said = [m["content"] for m in again["messages"] if m["message_type"] == "assistant_message"]
    assert said == ["hello there"]


async def test_streams_and_lists_follow_the_option(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    path = f"/v1/agents/{agent['id']}/messages/stream"
    body = {"messages": [{"role": "user", "content": "hi"}], "use_assistant_message": False}
    frames = [f for f in await sse_frames(client, path, body) if f != "[DONE]"]
    assert _types(frames) == [
        "reasoning_message",
        "tool_call_message",
        "tool_return_message",
        "stop_reason",
        "usage_statistics",
    ]
    frames = await sse_frames(client, path, {**body, "stream_tokens": True})
    assert "assistant_message" not in _types([f for f in frames if f != "[DONE]"])
    url = f"/v1/agents/{agent['id']}/messages"
    listed = (await client.get(url, params={"use_assistant_message": "false"})).json()
    assert "assistant_message" not in _types(listed)
    assert [c["name"] for c in _calls(listed)] == ["send_message", "send_message"]
    listed = (await client.get(url)).json()
    assert _calls(listed) == []
    assert _types(listed).count("assistant_message") == 2


async def test_another_tool_can_be_the_assistant_message(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    options = {
        "assistant_message_tool_name": "core_memory_append",
        "assistant_message_tool_kwarg": "content",
    }
    result = await say_to(client, agent["id"], "remember that I like tea", **options)
    messages = result["messages"]
    said = [m["content"] for m in messages if m["message_type"] == "assistant_message"]
    assert said == ["likes tea"]
    assert [c["name"] for c in _calls(messages)] == ["send_message"]
    listed = (await client.get(f"/v1/agents/{agent['id']}/messages", params=options)).json()
    assert [m["content"] for m in listed if m["message_type"] == "assistant_message"] == [
        "likes tea"
    ]
    # A kwarg the call does not have: the call stays a tool call.
    odd = {**options, "assistant_message_tool_kwarg": "nope"}
    listed = (await client.get(f"/v1/agents/{agent['id']}/messages", params=odd)).json()
    assert "assistant_message" not in _types(listed)


async def test_empty_tool_names_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    url = f"/v1/agents/{agent['id']}/messages"
    body = {"messages": [{"role": "user", "content": "hi"}], "assistant_message_tool_name": ""}
    response = await client.post(url, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "assistant_message_tool_name"]
    response = await client.get(url, params={"assistant_message_tool_kwarg": " "})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "assistant_message_tool_kwarg"]


# The script for both clients; they differ in their streaming method and their message type.
_CLIENT = """
reply = client.agents.messages.create(agent_id=agent.id, messages=hi, use_assistant_message=False)
kinds = [m.message_type for m in reply.messages]
assert kinds == ["reasoning_message", "tool_call_message", "tool_return_message"], kinds
assert json.loads(reply.messages[1].tool_call.arguments)["message"] == "hello there"
chunks = list(
    client.agents.messages.{stream}(agent_id=agent.id, messages=hi, use_assistant_message=False)
)
assert "assistant_message" not in [c.message_type for c in chunks], chunks
tea = [{tea}]
reply = client.agents.messages.create(
    agent_id=agent.id,
    messages=tea,
    assistant_message_tool_name="core_memory_append",
    assistant_message_tool_kwarg="content",
)
said = [m.content for m in reply.messages if m.message_type == "assistant_message"]
assert said == ["likes tea"], reply.messages
listed = client.agents.messages.list(agent_id=agent.id, use_assistant_message=False)
assert "assistant_message" not in [m.message_type for m in listed]
print("OK")
"""
CLIENT_01 = bob(LETTA01) + _CLIENT.format(
    stream="create_stream", tea='MessageCreate(role="user", content="remember that I like tea")'
)
CLIENT_1X = bob(LETTA1X) + _CLIENT.format(
    stream="stream", tea='{"role": "user", "content": "remember that I like tea"}'
)


test_the_official_clients_choose_the_view = official_clients_test(CLIENT_01, CLIENT_1X, slow=False)
