"""Sending messages through the bus: wait, stream over SSE, async runs, retries, listing."""

from __future__ import annotations

import httpx

from agents.scripted import tool_call
from tests.api.conftest import Served, make_agent, say_to, sse_frames


async def test_create_waits_for_the_turn(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    result = await say_to(client, agent["id"], "hello there")
    kinds = [m["message_type"] for m in result["messages"]]
    assert kinds == ["assistant_message", "tool_return_message"]
    assert result["messages"][0]["content"] == "hello there"
    assert result["stop_reason"] == {
        "message_type": "stop_reason",
        "stop_reason": "end_turn",
        "detail": None,
    }
    usage = result["usage"]
    assert usage["message_type"] == "usage_statistics"
    assert usage["step_count"] == 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


async def test_content_parts_input_and_type_filter(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    parts = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    result = await say_to(client, agent["id"], "", messages=[{"role": "user", "content": parts}])
    assert result["messages"][0]["content"] == "one\ntwo"
    response = await client.post(
        f"/v1/agents/{agent['id']}/messages",
        json={"input": "via input", "include_return_message_types": ["assistant_message"]},
    )
    assert [m["message_type"] for m in response.json()["messages"]] == ["assistant_message"]
    image = [{"type": "image", "source": {"url": "x"}}]
    refused = await client.post(
        f"/v1/agents/{agent['id']}/messages",
        json={"messages": [{"role": "user", "content": image}]},
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "messages", "0", "content", "0"]
    empty = await client.post(f"/v1/agents/{agent['id']}/messages", json={"messages": []})
    assert empty.status_code == 422
    bad_role = await client.post(
        f"/v1/agents/{agent['id']}/messages",
        json={"messages": [{"role": "wizard", "content": "x"}]},
    )
    assert bad_role.status_code == 422
    assert bad_role.json()["detail"][0]["loc"] == ["body", "messages", 0, "role"]


async def test_stream_sends_frames_then_done(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    body = {"messages": [{"role": "user", "content": "stream me"}], "stream_tokens": True}
    frames = await sse_frames(client, f"/v1/agents/{agent['id']}/messages/stream", body)
    kinds = [f if f == "[DONE]" else f["message_type"] for f in frames]
    # the reply streams in pieces of one message (see test_token_streaming)
    assert list(dict.fromkeys(kinds)) == [
        "assistant_message",
        "tool_return_message",
        "stop_reason",
        "usage_statistics",
        "[DONE]",
    ]
    said = [f["content"] for f in frames if f != "[DONE]" and "content" in f]
    assert "".join(said) == "stream me"
    # 0.16 clients stream from POST /messages with streaming=true
    body = {"messages": [{"role": "user", "content": "again"}], "streaming": True}
    frames = await sse_frames(client, f"/v1/agents/{agent['id']}/messages", body)
    assert frames[-1] == "[DONE]"
    assert frames[0]["content"] == "again"


async def test_async_returns_a_run_to_follow(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    response = await client.post(
        f"/v1/agents/{agent['id']}/messages/async",
        json={"messages": [{"role": "user", "content": "later"}]},
    )
    run = response.json()
    assert run["agent_id"] == agent["id"]
    assert run["status"] in ("created", "running", "completed")
    frames = await sse_frames(client, f"/v1/runs/{run['id']}/stream")
    assert frames[-1] == "[DONE]"
    done = (await client.get(f"/v1/runs/{run['id']}")).json()
    assert done["status"] == "completed"
    assert done["stop_reason"] == "end_turn"
    assert (await client.get(f"/v1/jobs/{run['id']}")).json()["status"] == "completed"
    messages = (await client.get(f"/v1/runs/{run['id']}/messages")).json()
    assert messages[0]["content"] == "later"
    usage = (await client.get(f"/v1/runs/{run['id']}/usage")).json()
    assert usage["step_count"] == 1
    runs = (await client.get("/v1/runs/", params={"agent_id": agent["id"]})).json()
    assert [r["id"] for r in runs] == [run["id"]]


async def test_runs_list_filters_by_agent_status_and_activity(client: httpx.AsyncClient) -> None:
    """Letta 0.16's ``agent_id``, ``statuses`` and ``active`` filters of ``GET /v1/runs/``."""
    first, second = await make_agent(client, name="first"), await make_agent(client, name="second")
    done = {
        a["id"]: (await say_to(client, a["id"], "hi"))["messages"][0]["run_id"]
        for a in (first, second)
    }

    async def listed(**params: object) -> list[str]:
        response = await client.get("/v1/runs/", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()]

    assert await listed(agent_id=first["id"]) == [done[first["id"]]]
    assert await listed(agent_ids=[second["id"]]) == [done[second["id"]]]
    assert sorted(await listed(statuses=["completed"])) == sorted(done.values())
    assert await listed(statuses=["failed"]) == []
    assert await listed(active="true") == []
    assert sorted(await listed(active="false")) == sorted(done.values())
    refused = await client.get("/v1/runs/", params={"statuses": ["finished"]})
    assert refused.status_code == 422
    assert "statuses" in refused.text


async def test_a_retry_with_the_same_otid_gets_the_original_run(
    client: httpx.AsyncClient,
) -> None:
    agent = await make_agent(client)
    body = {"messages": [{"role": "user", "content": "once", "otid": "otid-1"}]}
    path = f"/v1/agents/{agent['id']}/messages"
    first = (await client.post(f"{path}/async", json=body)).json()
    second = (await client.post(f"{path}/async", json=body)).json()
    assert first["id"] == second["id"]
    waited = (await client.post(path, json=body)).json()
    assert waited["messages"][0]["run_id"] == first["id"]
    assert waited["messages"][0]["content"] == "once"
    listed = (await client.get(path, params={"order": "asc"})).json()
    assert [m["content"] for m in listed if m["message_type"] == "user_message"] == ["once"]


async def test_list_pages_with_cursors(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    for text in ("m1", "m2", "m3"):
        await say_to(client, agent["id"], text)
    path = f"/v1/agents/{agent['id']}/messages"

    def users(messages: list[dict[str, str]]) -> list[str]:
        return [m["content"] for m in messages if m["message_type"] == "user_message"]

    everything = (await client.get(path)).json()
    assert users(everything) == ["m1", "m2", "m3"]  # oldest first by default
    latest = (await client.get(path, params={"limit": 3})).json()  # the 3 newest stored
    assert users(latest) == ["m3"]
    first_user = next(m for m in everything if m["message_type"] == "user_message")
    after = (await client.get(path, params={"after": first_user["id"]})).json()
    assert users(after) == ["m2", "m3"]
    last_user = [m for m in everything if m["message_type"] == "user_message"][-1]
    before = (await client.get(path, params={"before": last_user["id"]})).json()
    assert users(before) == ["m1", "m2"]
    newest_first = (await client.get(path, params={"order": "desc", "limit": 100})).json()
    assert users(newest_first) == ["m3", "m2", "m1"]
    older = (
        await client.get(path, params={"order": "desc", "after": last_user["id"], "limit": 100})
    ).json()
    assert users(older) == ["m2", "m1"]
    assert (await client.get(path, params={"after": "message-nope"})).status_code == 404


async def test_max_steps_caps_the_turn_and_is_checked(
    client: httpx.AsyncClient, served: Served
) -> None:
    # A model that always asks for another step: the request's max_steps ends the turn.
    served.model.policy = lambda request: tool_call(
        "conversation_search", query="anything", request_heartbeat=True
    )
    agent = await make_agent(client)
    result = await say_to(client, agent["id"], "keep digging", max_steps=2)
    assert result["stop_reason"]["stop_reason"] == "max_steps"
    assert result["usage"]["step_count"] == 2
    assert len(served.model.requests) == 2
    response = await client.post(
        f"/v1/agents/{agent['id']}/messages",
        json={"messages": [{"role": "user", "content": "hi"}], "max_steps": 0},
    )
    assert response.status_code == 422 and "max_steps" in response.text
