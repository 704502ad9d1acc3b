"""Consumer-group plumbing: the next inbox entry, claimed or new, in one round trip."""

from __future__ import annotations

import redis.asyncio as aioredis

from bus import streams


async def test_next_entry_claims_pending_work_first_then_reads_new(
    redis_client: aioredis.Redis,
) -> None:
    await streams.ensure_group(redis_client, "mg:{A}:inbox")
    first = await redis_client.xadd("mg:{A}:inbox", {"e": b"one"})
    second = await redis_client.xadd("mg:{A}:inbox", {"e": b"two"})
    # A worker read the first entry and died before acknowledging it.
    got = await streams.next_entry(redis_client, "mg:{A}:inbox", "dead", claim=False)
    assert got == (first.decode(), {b"e": b"one"})
    # The next holder, claiming, gets it again before anything new; without claiming, new.
    got = await streams.next_entry(redis_client, "mg:{A}:inbox", "next", claim=True)
    assert got == (first.decode(), {b"e": b"one"})
    got = await streams.next_entry(redis_client, "mg:{A}:inbox", "next", claim=False)
    assert got == (second.decode(), {b"e": b"two"})
    await streams.ack_and_delete(redis_client, "mg:{A}:inbox", first.decode(), second.decode())
    assert await streams.next_entry(redis_client, "mg:{A}:inbox", "next", claim=True) is None
    assert await redis_client.xlen("mg:{A}:inbox") == 0
    assert (await redis_client.xpending("mg:{A}:inbox", streams.GROUP))["pending"] == 0
