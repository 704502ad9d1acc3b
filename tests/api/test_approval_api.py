"""requires_approval over REST: the run stops with an approval request; Letta's approval
message (0.11's and 0.16's forms) runs the held call or denies it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from agents.scripted import Policy
from tests._util import approval_policy
from tests.api._letta import LETTA01, LETTA1X, bob, official_clients_test
from tests.api.conftest import make_agent, say_to, sse_frames


@pytest.fixture
def policy() -> Policy:
    return approval_policy


RULES = [{"type": "requires_approval", "tool_name": "core_memory_append"}]


async def _careful(client: httpx.AsyncClient) -> dict[str, Any]:
    return await make_agent(client, tool_rules=RULES)


async def _human(client: httpx.AsyncClient, agent_id: str) -> str:
    response = await client.get(f"/v1/agents/{agent_id}/core-memory/blocks/human")
    assert response.status_code == 200, response.text
    value: str = response.json()["value"]
    return value


async def _held(client: httpx.AsyncClient, agent_id: str) -> dict[str, Any]:
    result = await say_to(client, agent_id, "remember that I like tea")
    assert result["stop_reason"]["stop_reason"] == "requires_approval"
    [request] = [m for m in result["messages"] if m["message_type"] == "approval_request_message"]
    assert request["tool_call"]["name"] == "core_memory_append"
    assert json.loads(request["tool_call"]["arguments"])["content"] == "likes tea"
    assert request["id"] and request["date"] and request["tool_call"]["tool_call_id"]
    held: dict[str, Any] = request
    return held


async def test_the_0_11_approval_runs_the_held_call(client: httpx.AsyncClient) -> None:
    agent = await _careful(client)
    request = await _held(client, agent["id"])
    assert await _human(client, agent["id"]) == "Name: Bob"  # nothing ran yet
    approval = {"type": "approval", "approve": True, "approval_request_id": request["id"]}
    result = await say_to(client, agent["id"], "", messages=[approval])
    assert result["stop_reason"]["stop_reason"] == "end_turn"
    replies = [m["content"] for m in result["messages"] if m["message_type"] == "assistant_message"]
    assert replies[0].startswith("after approval: Appended to block 'human'")
    assert await _human(client, agent["id"]) == "Name: Bob\nlikes tea"


async def test_the_0_16_approval_over_sse(client: httpx.AsyncClient) -> None:
    agent = await _careful(client)
    path = f"/v1/agents/{agent['id']}/messages/stream"
    body = {"messages": [{"role": "user", "content": "remember that I like tea"}]}
    frames = await sse_frames(client, path, body)
    [request] = [f for f in frames[:-1] if f["message_type"] == "approval_request_message"]
    assert [f["stop_reason"] for f in frames[:-1] if f["message_type"] == "stop_reason"] == [
        "requires_approval"
    ]
    call_id = request["tool_call"]["tool_call_id"]
    approvals = [{"type": "approval", "tool_call_id": call_id, "approve": True, "reason": None}]
    frames = await sse_frames(
        client, path, {"messages": [{"type": "approval", "approvals": approvals}]}
    )
    returns = [f for f in frames[:-1] if f["message_type"] == "tool_return_message"]
    assert returns[0]["status"] == "success" and returns[0]["tool_call_id"] == call_id
    assert await _human(client, agent["id"]) == "Name: Bob\nlikes tea"


async def test_deny_answers_the_call_with_an_error(client: httpx.AsyncClient) -> None:
    agent = await _careful(client)
    request = await _held(client, agent["id"])
    call_id = request["tool_call"]["tool_call_id"]
    denial = {
        "type": "approval",
        "approvals": [{"tool_call_id": call_id, "approve": False, "reason": "not now"}],
    }
    result = await say_to(client, agent["id"], "", messages=[denial])
    assert result["stop_reason"]["stop_reason"] == "end_turn"
    replies = [m["content"] for m in result["messages"] if m["message_type"] == "assistant_message"]
    assert replies == ["after approval: the user denied the call to core_memory_append: not now"]
    assert await _human(client, agent["id"]) == "Name: Bob"
    listed = (await client.get(f"/v1/agents/{agent['id']}/messages")).json()
    [denied] = [m for m in listed if m.get("tool_call_id") == call_id]
    assert denied["status"] == "error"


async def test_async_takes_an_approval(client: httpx.AsyncClient) -> None:
    agent = await _careful(client)
    request = await _held(client, agent["id"])
    approval = {"type": "approval", "approve": True, "approval_request_id": request["id"]}
    response = await client.post(
        f"/v1/agents/{agent['id']}/messages/async", json={"messages": [approval]}
    )
    assert response.status_code == 200, response.text
    run_id = response.json()["id"]
    frames = await sse_frames(client, f"/v1/runs/{run_id}/stream")
    assert any(f != "[DONE]" and f["message_type"] == "tool_return_message" for f in frames)
    assert await _human(client, agent["id"]) == "Name: Bob\nlikes tea"


async def test_bad_approvals_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    agent = await _careful(client)
    request = await _held(client, agent["id"])
    call_id = request["tool_call"]["tool_call_id"]
    url = f"/v1/agents/{agent['id']}/messages"

    async def refused(message: dict[str, Any]) -> list[Any]:
        response = await client.post(url, json={"messages": [message]})
        assert response.status_code == 422, response.text
        loc: list[Any] = response.json()["detail"][0]["loc"]
        return loc

    assert await refused({"type": "approval", "approval_request_id": "x"}) == [
        "body",
        "messages",
        "0",
        "approve",
    ]
    loc = await refused({"type": "approval", "approve": "yes please"})
    assert loc[-1] == "approve"
    loc = await refused({"type": "approval", "approvals": [{"approve": True}]})
    assert loc[-1] == "tool_call_id"
    assert await refused(
        {"type": "approval", "approvals": [{"tool_call_id": "call-nope", "approve": True}]}
    ) == ["body", "messages", "0", "approvals", "0", "tool_call_id"]
    twice = [
        {"tool_call_id": call_id, "approve": True},
        {"tool_call_id": call_id, "approve": False},
    ]
    assert await refused({"type": "approval", "approvals": twice}) == [
        "body",
        "messages",
        "0",
        "approvals",
        "1",
        "tool_call_id",
    ]
    assert await refused({"role": "user"}) == ["body", "messages", "0", "content"]
    assert await _human(client, agent["id"]) == "Name: Bob"  # still held


async def _held_two(client: httpx.AsyncClient, agent_id: str) -> list[dict[str, Any]]:
    result = await say_to(client, agent_id, "remember two things")
    assert result["stop_reason"]["stop_reason"] == "requires_approval"
    requests = [m for m in result["messages"] if m["message_type"] == "approval_request_message"]
    assert [json.loads(r["tool_call"]["arguments"])["content"] for r in requests] == [
        "likes tea",
        "hates coffee",
    ]
    # A held call is shown once, as the request, not also as a tool_call_message.
    assert not [m for m in result["messages"] if m["message_type"] == "tool_call_message"]
    return requests


async def test_approve_some_deny_others_in_one_request(client: httpx.AsyncClient) -> None:
    agent = await _careful(client)
    tea, coffee = (r["tool_call"]["tool_call_id"] for r in await _held_two(client, agent["id"]))
    approvals = [
        {"type": "approval", "tool_call_id": tea, "approve": True},
        {"type": "approval", "tool_call_id": coffee, "approve": False, "reason": "not true"},
    ]
    result = await say_to(
        client, agent["id"], "", messages=[{"type": "approval", "approvals": approvals}]
    )
    assert result["stop_reason"]["stop_reason"] == "end_turn"
    messages = result["messages"]
    returns = {m["tool_call_id"]: m for m in messages if m["message_type"] == "tool_return_message"}
    assert returns[tea]["status"] == "success"
    assert returns[coffee]["status"] == "error"
    assert "denied the call to core_memory_append: not true" in returns[coffee]["tool_return"]
    assert await _human(client, agent["id"]) == "Name: Bob\nlikes tea"
    # The model saw both results: the approved one's and the denial.
    seen = [m for m in result["messages"] if m["message_type"] == "assistant_message"]
    assert seen and seen[0]["content"].startswith("after approval:")


async def test_history_shows_the_request_and_the_response(client: httpx.AsyncClient) -> None:
    agent = await _careful(client)
    tea, coffee = (r["tool_call"]["tool_call_id"] for r in await _held_two(client, agent["id"]))
    url = f"/v1/agents/{agent['id']}/messages"
    listed = (await client.get(url)).json()
    requests = [m for m in listed if m["message_type"] == "approval_request_message"]
    assert [r["tool_call"]["tool_call_id"] for r in requests] == [tea, coffee]
    assert requests[0]["tool_calls"][0]["tool_call_id"] == tea
    approvals = [
        {"tool_call_id": tea, "approve": True},
        {"tool_call_id": coffee, "approve": False, "reason": "not true"},
    ]
    await say_to(
        client,
        agent["id"],
        "",
        messages=[{"type": "approval", "approvals": approvals, "otid": "otid-approval-1"}],
    )
    listed = (await client.get(url)).json()
    kinds = [m["message_type"] for m in listed]
    assert kinds.index("approval_request_message") < kinds.index("approval_response_message")
    assert kinds.index("approval_response_message") < kinds.index("tool_return_message")
    [response] = [m for m in listed if m["message_type"] == "approval_response_message"]
    assert response["approve"] is False  # not everything was approved
    assert response["approval_request_id"] == requests[0]["id"]
    assert response["otid"] == "otid-approval-1"
    assert response["approvals"] == [
        {"type": "approval", "tool_call_id": tea, "approve": True, "reason": None},
        {"type": "approval", "tool_call_id": coffee, "approve": False, "reason": "not true"},
    ]
    # With use_assistant_message=false too, each appears once.
    plain = (await client.get(url, params={"use_assistant_message": "false"})).json()
    assert [m["message_type"] for m in plain].count("approval_request_message") == 2


async def test_the_0_11_form_is_listed_with_its_request_id(client: httpx.AsyncClient) -> None:
    agent = await _careful(client)
    request = await _held(client, agent["id"])
    approval = {"type": "approval", "approve": True, "approval_request_id": request["id"]}
    await say_to(client, agent["id"], "", messages=[approval])
    listed = (await client.get(f"/v1/agents/{agent['id']}/messages")).json()
    [response] = [m for m in listed if m["message_type"] == "approval_response_message"]
    assert response["approve"] is True and response["approval_request_id"] == request["id"]
    assert response["approvals"][0]["tool_call_id"] == request["tool_call"]["tool_call_id"]


CLIENT_01 = (
    bob(LETTA01, f"tool_rules={RULES!r}")
    + """
tea = [MessageCreate(role="user", content="remember that I like tea")]
reply = client.agents.messages.create(agent_id=agent.id, messages=tea)
assert reply.stop_reason.stop_reason == "requires_approval", reply
[request] = [m for m in reply.messages if m.message_type == "approval_request_message"]
approve = ApprovalCreate(approve=True, approval_request_id=request.id)
reply = client.agents.messages.create(agent_id=agent.id, messages=[approve])
assert reply.stop_reason.stop_reason == "end_turn", reply
listed = client.agents.messages.list(agent_id=agent.id)
kinds = [m.message_type for m in listed]
assert "approval_request_message" in kinds and "approval_response_message" in kinds, kinds
[response] = [m for m in listed if m.message_type == "approval_response_message"]
assert response.approve and response.approval_request_id == request.id, response
print("OK")
"""
)

CLIENT_1X = (
    bob(LETTA1X, f"tool_rules={RULES!r}")
    + """
two = [{"role": "user", "content": "remember two things"}]
reply = client.agents.messages.create(agent_id=agent.id, messages=two)
assert reply.stop_reason.stop_reason == "requires_approval", reply
tea, coffee = [
    m.tool_call.tool_call_id for m in reply.messages if m.message_type == "approval_request_message"
]
approvals = [
    {"type": "approval", "tool_call_id": tea, "approve": True},
    {"type": "approval", "tool_call_id": coffee, "approve": False, "reason": "not true"},
]
reply = client.agents.messages.create(
    agent_id=agent.id, messages=[{"type": "approval", "approvals": approvals}]
)
returns = {m.tool_call_id: m.status for m in reply.messages if hasattr(m, "tool_return")}
assert returns[tea] == "success" and returns[coffee] == "error", reply
human = client.agents.blocks.retrieve("human", agent_id=agent.id).value
assert human == "Name: Bob\\nlikes tea", human
listed = list(client.agents.messages.list(agent_id=agent.id, order="asc"))
[response] = [m for m in listed if m.message_type == "approval_response_message"]
assert [(a.tool_call_id, a.approve) for a in response.approvals] == [(tea, True), (coffee, False)]
print("OK")
"""
)


test_the_official_clients_approve_and_list = official_clients_test(CLIENT_01, CLIENT_1X, slow=False)
