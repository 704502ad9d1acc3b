"""Submitting runs: all or nothing, and a retried otid gets its original run, fully visible."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from agents.runs import RunStore
from bus import keys as bus_keys
from bus.envelopes import InboxMessage
from storage import keys
from storage.errors import NotFound


async def _count(redis: aioredis.Redis, pattern: str) -> int:
    return len([key async for key in redis.scan_iter(match=pattern)])  # every node of a cluster


async def _stored(redis: aioredis.Redis, agent_id: str) -> dict[str, int]:
    return {
        "runs": int(await redis.zcard(keys.agent_runs(agent_id))),
        "otids": await _count(redis, bus_keys.otid(agent_id, "*")),
        "run_keys": await _count(redis, keys.run(agent_id, "*")),
        "indexes": await _count(redis, keys.run_index("*")),
        "inbox": int(await redis.xlen(bus_keys.inbox(agent_id))),
    }


async def test_a_failed_submit_stores_nothing_and_its_retry_is_fully_visible(
    redis_client: aioredis.Redis,
) -> None:
    runs = RunStore(redis_client)
    # The ready stream is unusable (a real Redis error, WRONGTYPE): the submission fails...
    await redis_client.set(bus_keys.ready("agent-a"), "not a stream")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await runs.submit("agent-a", [InboxMessage(content="hi")], otid="o-1")
    # ...and, as a 5xx promises, nothing was stored: no run, no otid, no queued work.
    assert await _stored(redis_client, "agent-a") == dict.fromkeys(
        ("runs", "otids", "run_keys", "indexes", "inbox"), 0
    )
    await redis_client.delete(bus_keys.ready("agent-a"))
    sub = await runs.submit("agent-a", [InboxMessage(content="hi")], otid="o-1")
    assert sub.created
    assert (await runs.find(sub.run_id)).id == sub.run_id
    assert await redis_client.xlen(bus_keys.ready("agent-a")) == 1


async def test_a_caused_run_is_listed_under_its_root_and_a_failed_submit_is_not(
    redis_client: aioredis.Redis,
) -> None:
    runs = RunStore(redis_client)
    root = await runs.submit("agent-root", [InboxMessage(content="go")])
    # The caused run's signal cannot be written: on one Redis the script stops before the
    # caused-runs index; on a cluster the submission (index entry included) is withdrawn.
    await redis_client.set(bus_keys.ready("agent-b"), "not a stream")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await runs.submit("agent-b", [InboxMessage(content="hi")], root_run_id=root.run_id)
    assert await runs.caused(root.run_id) == []
    assert (await _stored(redis_client, "agent-b"))["run_keys"] == 0
    await redis_client.delete(bus_keys.ready("agent-b"))
    sub = await runs.submit("agent-b", [InboxMessage(content="hi")], root_run_id=root.run_id)
    assert [r.id for r in await runs.caused(root.run_id)] == [sub.run_id]


async def test_a_retry_after_a_cut_connection_finds_the_original_run(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = RunStore(redis_client)
    execute = Pipeline.execute
    cuts = [1]

    async def cut_once(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        if cuts:  # the connection drops on the next pipeline: a crash between two writes
            cuts.pop()
            raise RedisConnectionError("connection lost")
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", cut_once)
    try:
        first = await runs.submit("agent-b", [InboxMessage(content="hi")], otid="o-2")
    except RedisConnectionError:
        first = None
        # The client saw a failure: nothing of it may be visible or queued.
        assert (await _stored(redis_client, "agent-b"))["inbox"] == 0
    monkeypatch.setattr(Pipeline, "execute", execute)
    again = await runs.submit("agent-b", [InboxMessage(content="hi")], otid="o-2")
    if first is not None:
        assert again.run_id == first.run_id and not again.created
    # The run the client now holds is found by its id alone, and queued exactly once.
    assert (await runs.find(again.run_id)).id == again.run_id
    assert await _stored(redis_client, "agent-b") == {
        "runs": 1,
        "otids": 1,
        "run_keys": 1,
        "indexes": 1,
        "inbox": 1,
    }


async def test_an_unknown_run_id_is_not_found(redis_client: aioredis.Redis) -> None:
    with pytest.raises(NotFound, match="no run with id"):
        await RunStore(redis_client).find("run-missing")
