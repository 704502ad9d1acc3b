"""Token streaming (``stream_tokens=true``): the reply and the reasoning arrive in pieces as the
model produces them, Letta's wire shape (frames of one message share its ``id``), and the
pieces put together are the committed message, even when the model's stream breaks mid-way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from agents.scripted import CutStream, Policy, ScriptedModel, Slow, faults_then, say
from tests.api.conftest import Served, api_client, make_agent, model_env, sse_frames

THOUGHT = "The user wants a long answer; I will give one in a single message."
REPLY = 'Here is a reply long enough to arrive in many pieces, commas, quotes "and" all.'
ANSWER = say(REPLY, thought=THOUGHT)


@pytest.fixture
def policy() -> Policy:
    return lambda request: ANSWER


def _pieces(frames: list[Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in frames if f != "[DONE]" and f["message_type"] == kind]


async def _stream(client: httpx.AsyncClient, agent_id: str, **fields: Any) -> list[Any]:
    body = {"messages": [{"role": "user", "content": "tell me"}], "stream_tokens": True, **fields}
    return await sse_frames(client, f"/v1/agents/{agent_id}/messages/stream", body)


async def _committed(client: httpx.AsyncClient, agent_id: str) -> list[dict[str, Any]]:
    listed = await client.get(f"/v1/agents/{agent_id}/messages", params={"order": "asc"})
    messages: list[dict[str, Any]] = listed.json()
    return messages


async def test_reply_and_reasoning_stream_in_pieces_of_one_message(
    client: httpx.AsyncClient, served: Served
) -> None:
    agent = await make_agent(client)
    frames = await _stream(client, agent["id"])
    said, thought = _pieces(frames, "assistant_message"), _pieces(frames, "reasoning_message")
    assert len(said) > 2 and len(thought) > 2, frames
    assert {f["id"] for f in said} == {f["id"] for f in thought}  # one message, one id
    assert "".join(f["content"] for f in said) == REPLY
    assert "".join(f["reasoning"] for f in thought) == THOUGHT
    assert frames[-3:] == [frames[-3], frames[-2], "[DONE]"]
    assert [frames[-3]["message_type"], frames[-2]["message_type"]] == [
        "stop_reason",
        "usage_statistics",
    ]
    # The whole message was committed once, under the id the pieces carried.
    stored = await _committed(client, agent["id"])
    replies = _pieces(stored, "assistant_message")
    assert [(m["id"], m["content"]) for m in replies] == [(said[0]["id"], REPLY)]
    assert served.model.requests[-1].stream
    # 0.16 clients stream from POST /messages with streaming=true
    body = {"messages": [{"role": "user", "content": "again"}], "streaming": True}
    frames = await sse_frames(client, f"/v1/agents/{agent['id']}/messages", body)
    assert len(_pieces(frames, "assistant_message")) == 1
    frames = await sse_frames(
        client, f"/v1/agents/{agent['id']}/messages", {**body, "stream_tokens": True}
    )
    said = _pieces(frames, "assistant_message")
    assert len(said) > 2 and "".join(f["content"] for f in said) == REPLY


async def test_a_request_without_stream_tokens_does_not_stream_the_model(
    client: httpx.AsyncClient, served: Served
) -> None:
    agent = await make_agent(client)
    body = {"messages": [{"role": "user", "content": "tell me"}]}
    frames = await sse_frames(client, f"/v1/agents/{agent['id']}/messages/stream", body)
    assert [f["content"] for f in _pieces(frames, "assistant_message")] == [REPLY]
    assert not served.model.requests[-1].stream


async def test_a_stream_broken_mid_way_is_retried_and_seen_once(
    client: httpx.AsyncClient, served: Served
) -> None:
    # The model's first stream stops after a few chunks (part of the reasoning and of the
    # reply already published); the retry's identical prefix is not shown again.
    served.model.policy = faults_then(CutStream(after_chunks=9, reply=ANSWER), then=ANSWER)
    agent = await make_agent(client)
    frames = await _stream(client, agent["id"])
    said, thought = _pieces(frames, "assistant_message"), _pieces(frames, "reasoning_message")
    assert len(served.model.requests) == 2
    assert len(said) > 2 and len(thought) > 2, frames
    assert len({f["id"] for f in said + thought}) == 1
    assert "".join(f["content"] for f in said) == REPLY
    assert "".join(f["reasoning"] for f in thought) == THOUGHT


async def test_a_retry_that_says_something_else_streams_under_a_new_id(
    client: httpx.AsyncClient, served: Served
) -> None:
    first = say("Something else entirely, cut before it ends.", thought="Another thought.")
    served.model.policy = faults_then(CutStream(after_chunks=9, reply=first), then=ANSWER)
    agent = await make_agent(client)
    frames = await _stream(client, agent["id"])
    stored = _pieces(await _committed(client, agent["id"]), "assistant_message")
    assert [m["content"] for m in stored] == [REPLY]
    final = stored[0]["id"]
    said = _pieces(frames, "assistant_message")
    assert "".join(f["content"] for f in said if f["id"] == final) == REPLY
    thought = _pieces(frames, "reasoning_message")
    assert "".join(f["reasoning"] for f in thought if f["id"] == final) == THOUGHT
    # What the broken stream had shown stays under its own id, never glued to the reply.
    abandoned = "".join(f["reasoning"] for f in thought if f["id"] != final)
    assert abandoned and "Another thought.".startswith(abandoned)


async def test_inner_thoughts_stream_as_reasoning(
    client: httpx.AsyncClient, served: Served
) -> None:
    # Real models often leave the text empty and think in the tool's inner_thoughts argument.
    served.model.policy = lambda request: say(REPLY, inner_thoughts=THOUGHT)
    agent = await make_agent(client)
    frames = await _stream(client, agent["id"])
    said, thought = _pieces(frames, "assistant_message"), _pieces(frames, "reasoning_message")
    assert len(said) > 2 and len(thought) > 2, frames
    assert len({f["id"] for f in said + thought}) == 1
    assert "".join(f["reasoning"] for f in thought) == THOUGHT
    assert "".join(f["content"] for f in said) == REPLY


@pytest.fixture
async def pinging(
    redis_client: aioredis.Redis,
    redis_url: str,
    memgrid_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[httpx.AsyncClient]:
    """An API that pings every 0.2 s, before a model that takes 1.5 s to start answering."""
    async with ScriptedModel.serve(lambda request: Slow(1.5, ANSWER)) as model:
        model_env(monkeypatch, model.base_url)
        async with api_client(redis_url, client_timeout_s=30, ping_interval_s=0.2) as http:
            yield http


async def test_include_pings_keeps_an_idle_stream_alive(pinging: httpx.AsyncClient) -> None:
    agent = await make_agent(pinging)
    frames = await _stream(pinging, agent["id"], include_pings=True)
    kinds = [f if f == "[DONE]" else f["message_type"] for f in frames]
    first_message = kinds.index("reasoning_message")
    assert kinds[:first_message].count("ping") >= 3, kinds
    ping = frames[0]
    assert ping["message_type"] == "ping" and ping["id"] and ping["date"]
    assert "".join(f["content"] for f in _pieces(frames, "assistant_message")) == REPLY
    quiet = await _stream(pinging, agent["id"])
    assert "ping" not in [f if f == "[DONE]" else f["message_type"] for f in quiet]
