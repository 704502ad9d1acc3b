"""Consumer-group plumbing: the next inbox entry, claimed or new, in one round trip (with the
lease taken, or released when there is none)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bus import streams
from bus.lease import take


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


async def test_claim_stale_follows_the_cursor_past_live_entries(
    redis_client: aioredis.Redis,
) -> None:
    stream = "mg:ready"
    await streams.ensure_group(redis_client, stream)
    for i in range(35):
        await redis_client.xadd(stream, {"a": f"x{i}"})
    await streams.read_group(redis_client, stream, "live", count=30, block_ms=None)
    dead = [
        i for i, _ in await streams.read_group(redis_client, stream, "dead", count=5, block_ms=None)
    ]
    await redis_client.xclaim(stream, streams.GROUP, "dead", 0, dead, idle=60_000, justid=True)
    # Asking for one entry looks at ~10: from the start every time, the dead ones at the back
    # are never reached; following the cursor, they are.
    cursor, found, calls = "0-0", [], 0
    while len(found) < len(dead):
        calls += 1
        assert calls <= 20, "the cursor never reached the stale entries"
        cursor, got = await streams.claim_stale_from(
            redis_client, stream, "me", cursor, min_idle_ms=30_000, count=1
        )
        found += [i for i, _ in got]
    assert found == dead
    # Past the end it wraps to the start, with nothing more to claim.
    for _ in range(10):
        cursor, got = await streams.claim_stale_from(
            redis_client, stream, "me", cursor, min_idle_ms=30_000, count=1
        )
        assert got == []
        if cursor == "0-0":
            break
    assert cursor == "0-0"
    owners = await redis_client.xpending_range(stream, streams.GROUP, "-", "+", 100)
    assert sum(p["consumer"] == b"me" for p in owners) == 5


def test_ready_signals_spread_over_shards_of_distinct_slots() -> None:
    from redis.cluster import key_slot

    from bus import keys

    shards = keys.ready_shards()
    assert len(shards) == keys.READY_SHARDS == len({key_slot(s.encode()) for s in shards})
    seen = {keys.ready(f"agent-{i}") for i in range(1000)}
    assert seen == set(shards)  # every shard carries some agents, none carries all
    assert keys.ready("agent-7") == keys.ready("agent-7")


async def test_read_ready_takes_at_most_count_across_the_shards(
    redis_client: aioredis.Redis,
) -> None:
    from bus import keys

    for shard in keys.ready_shards():
        await streams.ensure_group(redis_client, shard)
    agents = [f"agent-{i}" for i in range(15)]
    assert len({keys.ready(a) for a in agents}) > 3  # several shards
    for agent in agents:
        await redis_client.xadd(keys.ready(agent), {"a": agent})
    first = await streams.read_ready(
        redis_client, keys.ready_shards(), "w", count=4, block_ms=None, start=5
    )
    assert len(first) == 4
    rest = await streams.read_ready(
        redis_client, keys.ready_shards(), "w", count=100, block_ms=10, start=9
    )
    got = first + rest
    assert sorted(f[b"a"].decode() for _stream, (_id, f) in got) == sorted(agents)
    assert all(stream == keys.ready(f[b"a"].decode()) for stream, (_id, f) in got)
    # Nothing left: a blocked read with nothing to read ends empty after its block.
    assert (
        await streams.read_ready(redis_client, keys.ready_shards(), "w", count=1, block_ms=20) == []
    )


async def test_take_gets_the_lease_a_pending_entry_first_and_the_record_in_one_step(
    redis_client: aioredis.Redis,
) -> None:
    inbox = "mg:{A}:inbox"
    with pytest.raises(ResponseError, match="NOGROUP"):  # no group: nothing written
        await take(redis_client, "A", "w-1", 5000, record_key="mg:{A}:agent")
    assert await redis_client.exists("mg:{A}:lease", "mg:{A}:fence") == 0
    await streams.ensure_group(redis_client, inbox)
    await redis_client.set("mg:{A}:agent", b"record")
    first = (await redis_client.xadd(inbox, {"e": b"one"})).decode()
    await redis_client.xadd(inbox, {"e": b"two"})
    await streams.next_entry(redis_client, inbox, "dead", claim=False)  # left pending
    taken = await take(redis_client, "A", "w-1", 5000, record_key="mg:{A}:agent")
    assert taken is not None
    assert taken.entry == (first, {b"e": b"one"})
    assert taken.record == b"record"
    assert taken.deliveries == 2  # the dead worker's read, then this claim
    assert await redis_client.get("mg:{A}:lease") == taken.lease.value.encode()
    assert await redis_client.get("mg:{A}:fence") == taken.lease.token.encode()
    # Held: another worker gets nothing, and reads nothing off the inbox.
    assert await take(redis_client, "A", "w-2", 5000, record_key="mg:{A}:agent") is None
    assert (await redis_client.xpending(inbox, streams.GROUP))["pending"] == 1


async def test_next_or_release_releases_only_when_nothing_is_left_for_the_worker(
    redis_client: aioredis.Redis,
) -> None:
    inbox, lease_key = "mg:{A}:inbox", "mg:{A}:lease"
    await streams.ensure_group(redis_client, inbox)
    await redis_client.set("mg:{A}:agent", b"record")
    taken = await take(redis_client, "A", "w-1", 5000, record_key="mg:{A}:agent")
    assert taken is not None and taken.entry is None
    value = taken.lease.value
    second = (await redis_client.xadd(inbox, {"e": b"two"})).decode()
    found = await streams.next_or_release(
        redis_client, inbox, "mg:{A}:agent", lease_key, value, consumer="w-1", claim=False
    )
    assert found == ((second, {b"e": b"two"}), b"record", 0, 1)  # a new entry: 1st delivery
    assert await redis_client.get(lease_key) == value.encode()  # still held
    found = await streams.next_or_release(
        redis_client, inbox, "mg:{A}:agent", lease_key, value, consumer="w-1", claim=False
    )
    assert found == (None, None, 1, 1)  # the entry read is still in the inbox (not acked)
    assert await redis_client.exists(lease_key) == 0
    found = await streams.next_or_release(
        redis_client, inbox, "mg:{A}:agent", lease_key, value, consumer="w-1", claim=True
    )
    assert found.entry == (second, {b"e": b"two"}) and found.deliveries == 2  # claimed: its 2nd
    # A lease that moved on to another worker is left alone.
    await redis_client.set(lease_key, b"w-2:7.x")
    await streams.next_or_release(
        redis_client, inbox, "mg:{A}:agent", lease_key, value, consumer="w-1", claim=False
    )
    assert await redis_client.get(lease_key) == b"w-2:7.x"


async def test_a_read_of_the_ready_shards_acknowledges_only_its_own_signals_first(
    redis_client: aioredis.Redis,
) -> None:
    from bus import keys

    for shard in keys.ready_shards():
        await streams.ensure_group(redis_client, shard)
    mine, theirs = keys.ready("agent-1"), keys.ready("agent-2")
    await redis_client.xadd(mine, {"a": "agent-1"})
    await redis_client.xadd(theirs, {"a": "agent-2"})
    [(my_id, _f)] = await streams.read_group(redis_client, mine, "w", count=1, block_ms=None)
    [(their_id, _f)] = await streams.read_group(
        redis_client, theirs, "other", count=1, block_ms=None
    )
    await redis_client.xadd(keys.ready("agent-3"), {"a": "agent-3"})
    acks = [(mine, my_id), (theirs, their_id)]  # the second was reclaimed by another worker
    got = await streams.read_ready(
        redis_client, keys.ready_shards(), "w", count=5, block_ms=None, acks=acks
    )
    assert [f[b"a"] for _stream, (_id, f) in got] == [b"agent-3"]
    assert await redis_client.xrange(mine, my_id, my_id) == []  # acknowledged and deleted
    assert len(await redis_client.xrange(theirs, their_id, their_id)) == 1  # left to its owner
