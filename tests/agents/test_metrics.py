"""Inbox lag as sampled from the ready stream: only signals no worker has read count."""

from __future__ import annotations

import redis.asyncio as aioredis

from agents import metrics
from bus import keys as bus_keys
from bus import streams


async def test_inbox_lag_counts_only_unread_signals(redis_client: aioredis.Redis) -> None:
    empty = await metrics.sample_ready(redis_client)  # no stream, no group yet
    assert empty == {
        "ready_signals": 0.0,
        "ready_oldest_unread_age_seconds": 0.0,
        "dead_letters": 0.0,
    }
    ready = bus_keys.ready("agent-a")
    await streams.ensure_group(redis_client, ready)
    # An old signal (its id says 60 s ago), then read by a worker: it no longer counts as lag.
    old_ms = int((await redis_client.time())[0]) * 1000 - 60_000
    await redis_client.xadd(ready, {"a": "read"}, id=f"{old_ms}-0")
    assert (await metrics.sample_ready(redis_client))["ready_oldest_unread_age_seconds"] >= 59
    await streams.read_group(redis_client, ready, "w1", count=1, block_ms=10)
    read = await metrics.sample_ready(redis_client)
    assert read["ready_signals"] == 1
    assert read["ready_oldest_unread_age_seconds"] == 0
    await redis_client.xadd(ready, {"a": "waiting"})
    waiting = await metrics.sample_ready(redis_client)
    assert waiting["ready_signals"] == 2
    assert 0 <= waiting["ready_oldest_unread_age_seconds"] < 5


async def test_a_failed_sample_keeps_the_last_and_raises_nothing(
    redis_client: aioredis.Redis,
) -> None:
    metrics.enable()
    assert await metrics.try_sample_ready(redis_client)
    await redis_client.set(
        bus_keys.ready("agent-a"), b"not a stream"
    )  # WRONGTYPE for stream commands
    assert not await metrics.try_sample_ready(redis_client)  # logged, not raised
    text = metrics.render().decode()
    assert "memgrid_ready_signals 0.0" in text
