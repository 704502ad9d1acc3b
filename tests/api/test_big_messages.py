"""A message of any size commits all or nothing; one too large is refused with a 4xx."""

from __future__ import annotations

import time

import httpx
import redis.asyncio as aioredis

from storage.messages import MessageLog
from tests.api.conftest import make_agent, say_to


def _pasted_log(words: int) -> str:
    """~60 KB of distinct words, like a pasted log: every word is a new index term."""
    return " ".join(f"w{n:05d}x" for n in range(words))


async def test_a_60kb_message_of_9000_distinct_words_commits_and_is_searchable(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    agent = await make_agent(client, context_window_limit=128000)
    text = _pasted_log(9000)
    assert len(text.encode()) > 60_000
    started = time.monotonic()
    result = await say_to(client, agent["id"], text)
    elapsed = time.monotonic() - started
    assert result["stop_reason"]["stop_reason"] == "end_turn", result
    assert elapsed < 20, f"the turn took {elapsed:.1f}s"
    found = await MessageLog(redis_client).search(agent["id"], "w08999x")
    assert {m.role for m in found.messages} == {"user", "assistant"}  # input and echoed reply
    assert any(m.role == "user" and m.content == text for m in found.messages)


async def test_a_message_over_the_size_limit_gets_413_naming_the_setting(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    agent = await make_agent(client)
    huge = "x" * (1024 * 1024 + 1)  # one byte over the default MEMGRID_MAX_MESSAGE_BYTES
    response = await client.post(
        f"/v1/agents/{agent['id']}/messages",
        json={"messages": [{"role": "user", "content": huge}]},
    )
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "1048576 bytes" in detail and "MEMGRID_MAX_MESSAGE_BYTES" in detail
    assert await redis_client.zcard(f"mg:{{{agent['id']}}}:runs") == 0  # nothing queued


async def test_a_message_that_can_never_fit_the_context_window_gets_422(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    agent = await make_agent(client, context_window_limit=2000)
    response = await client.post(
        f"/v1/agents/{agent['id']}/messages/async",
        json={"input": _pasted_log(1000)},  # ~9 KB: about 3,000 tokens
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "input"]
    assert "context window of 2000 tokens" in error["msg"] and "context_window" in error["msg"]
    assert await redis_client.zcard(f"mg:{{{agent['id']}}}:runs") == 0


async def test_a_body_over_the_request_limit_gets_413_naming_the_setting(
    client: httpx.AsyncClient,
) -> None:
    agent = await make_agent(client)
    response = await client.post(
        f"/v1/agents/{agent['id']}/messages", json={"input": "x" * (4 * 1024 * 1024 + 1)}
    )
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "4194304 bytes" in detail and "MEMGRID_API_MAX_BODY_BYTES" in detail
