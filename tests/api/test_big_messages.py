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
    agent = await make_agent(client, context_window=128000)
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
