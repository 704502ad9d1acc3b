"""Blocking reads of the ready shards (bus.shard_reads): what they bring beyond the caller's
free slots, or hold when they stop, goes back to the shards for any worker, never lost or
left pending on a consumer that will not serve it. (On one Redis here, on the cluster in the
cluster pass: the reads are the same commands.)"""

from __future__ import annotations

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bus import keys, streams
from bus.connection import is_transient
from bus.shard_reads import shard_reads
from tests._cluster import server_clients


async def _groups(redis: aioredis.Redis) -> list[str]:
    shards = keys.ready_shards()
    for shard in shards:
        await streams.ensure_group(redis, shard)
    return shards


async def _pending(redis: aioredis.Redis, consumer: str) -> set[str]:
    found = set()
    for shard in keys.ready_shards():
        for p in await redis.xpending_range(shard, streams.GROUP, "-", "+", 100, consumer):
            found.add(p["message_id"].decode())
    return found


def _agents_on_two_shards() -> tuple[str, str]:
    first = "agent-0"
    second = next(
        f"agent-{i}" for i in range(1, 100) if keys.ready(f"agent-{i}") != keys.ready(first)
    )
    return first, second


async def test_entries_beyond_the_free_slots_go_back_to_their_shard(
    redis_client: aioredis.Redis,
) -> None:
    shards = await _groups(redis_client)
    a, b = _agents_on_two_shards()
    first: list[tuple[str, streams.Entry]] = []
    async with (
        server_clients(redis_client) as servers,
        shard_reads(redis_client, shards, "w", block_ms=5000) as reads,
        anyio.create_task_group() as tg,
    ):

        async def one_slot() -> None:
            first.extend(await reads.read(1))

        tg.start_soon(one_slot)  # every shard empty: a blocked read on each, till one answers

        async def blocked() -> int:
            return sum([(await s.info("clients"))["blocked_clients"] for s in servers])

        with anyio.fail_after(5):
            while await blocked() < len(shards):  # noqa: ASYNC110 (no event)
                await anyio.sleep(0.005)
        # Two signals for one free slot, on two shards whose reads both wait: both are read.
        added = {await redis_client.xadd(keys.ready(x), {"a": x}) for x in (a, b)}
    assert len(first) == 1
    [(_s, (first_id, _f))] = first
    with anyio.fail_after(5):  # the other one goes back, a new entry for any consumer
        while await _pending(redis_client, "w") != {first_id}:  # noqa: ASYNC110 (no event)
            await anyio.sleep(0.005)
    async with shard_reads(redis_client, shards, "w", block_ms=50) as reads:
        with anyio.fail_after(5):
            second: list[tuple[str, streams.Entry]] = []
            while not second:
                second = await reads.read(1)
    got = first + second
    assert sorted(f[b"a"].decode() for _s, (_i, f) in got) == sorted([a, b])
    # The one that came with no slot for it went back as a new entry (the old one removed);
    # only what was handed over is pending on the reader.
    ids = {entry_id for _s, (entry_id, _f) in got}
    assert len(ids & {i.decode() for i in added}) == 1
    assert await _pending(redis_client, "w") == ids
    assert sum([await redis_client.xlen(s) for s in shards]) == 2


async def test_what_the_reads_hold_when_they_stop_goes_back(redis_client: aioredis.Redis) -> None:
    shards = await _groups(redis_client)
    a, _b = _agents_on_two_shards()
    async with shard_reads(redis_client, shards, "w", block_ms=50) as reads:
        assert await reads.read(2) == []
        await redis_client.xadd(keys.ready(a), {"a": a})
        with anyio.fail_after(5):  # taken in by a blocked read, not handed over yet
            while not await _pending(redis_client, "w"):  # noqa: ASYNC110 (no event)
                await anyio.sleep(0.005)
    assert await _pending(redis_client, "w") == set()
    [(_id, fields)] = await redis_client.xrange(keys.ready(a))
    assert fields == {b"a": a.encode()}  # still there, for any worker


async def test_reads_cut_by_a_server_are_an_outage_ridden_out(redis_client: aioredis.Redis) -> None:
    shards = await _groups(redis_client)
    a, _b = _agents_on_two_shards()
    async with (
        server_clients(redis_client) as servers,
        shard_reads(redis_client, shards, "w", block_ms=100) as reads,
    ):
        assert await reads.read(1) == []  # each shard has a blocked read
        for server in servers:  # connections reset under the blocked reads
            for client in await server.client_list():
                if "b" in client["flags"]:
                    await server.client_kill_filter(_id=client["id"])
        [added] = [await redis_client.xadd(keys.ready(a), {"a": a})]
        got: list[tuple[str, streams.Entry]] = []
        errors: list[RedisError] = []
        with anyio.fail_after(5):
            while not got:
                try:
                    got = await reads.read(1)
                except RedisError as exc:  # as the worker does: an outage, read again
                    errors.append(exc)
    assert all(is_transient(e) for e in errors), errors
    assert [(s, i) for s, (i, _f) in got] == [(keys.ready(a), added.decode())]
    assert await _pending(redis_client, "w") == {added.decode()}


async def test_a_cut_reads_entries_go_back_and_no_others(redis_client: aioredis.Redis) -> None:
    """What a read cut with its connection took (delivered once, past what this consumer read
    there) goes back; entries this consumer holds for slots, or reclaimed, stay pending."""
    shards = await _groups(redis_client)
    a, _b = _agents_on_two_shards()
    shard = keys.ready(a)
    async with shard_reads(redis_client, shards, "w", block_ms=50) as reads:
        await redis_client.xadd(shard, {"a": "served"})
        [(_s, (served, _f))] = await reads.read(1)  # handed to a slot: stays pending
        await redis_client.xadd(shard, {"a": "reclaimed"})
        [(reclaimed, _f)] = await streams.read_group(
            redis_client, shard, "dead", count=1, block_ms=None
        )
        await redis_client.xclaim(shard, streams.GROUP, "w", 0, [reclaimed])
        await redis_client.xadd(shard, {"a": "cut"})
        [(cut, _f)] = await streams.read_group(redis_client, shard, "w", count=1, block_ms=None)
        await reads._give_back_cut(shard)  # as after a read cut while the server answered it
        assert await _pending(redis_client, "w") == {served, reclaimed}
        assert [f for _i, f in await redis_client.xrange(shard, f"({cut}")] == [{b"a": b"cut"}]
