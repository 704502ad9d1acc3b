"""Leases and the fenced commit: one script that checks the fence and expected keys first."""

from __future__ import annotations

import anyio
import pytest
import redis.asyncio as aioredis

from bus.errors import LeaseLost
from bus.lease import WatchConflict, acquire, fenced


async def test_a_fenced_commit_writes_everything_staged(redis_client: aioredis.Redis) -> None:
    lease = await acquire(redis_client, "A", "w-1", 5000)
    assert lease is not None
    async with fenced(redis_client, lease, "A") as pipe:
        pipe.set("mg:{A}:k", b"v\x00binary")
        pipe.mset({"mg:{A}:m1": 1, "mg:{A}:m2": 2.5})
        pipe.zadd("mg:{A}:z", {"x": 1.25, "y": 2})
        pipe.hset("mg:{A}:h", mapping={"f": "g"})
        pipe.xadd("mg:{A}:s", {"e": b"{}", "end": "1"})
        pipe.expire("mg:{A}:s", 60)
        pipe.xgroup_create("mg:{A}:s", "g", id="0")  # a command name of two words
    assert await redis_client.get("mg:{A}:k") == b"v\x00binary"
    assert await redis_client.mget(["mg:{A}:m1", "mg:{A}:m2"]) == [b"1", b"2.5"]
    assert await redis_client.zrange("mg:{A}:z", 0, -1, withscores=True) == [
        (b"x", 1.25),
        (b"y", 2.0),
    ]
    assert await redis_client.hget("mg:{A}:h", "f") == b"g"
    [(_, fields)] = await redis_client.xrange("mg:{A}:s")
    assert fields == {b"e": b"{}", b"end": b"1"}
    assert 0 < await redis_client.ttl("mg:{A}:s") <= 60
    assert (await redis_client.xinfo_groups("mg:{A}:s"))[0]["name"] == b"g"


async def test_a_stale_token_writes_nothing(redis_client: aioredis.Redis) -> None:
    first = await acquire(redis_client, "A", "w-1", 50)
    assert first is not None
    await anyio.sleep(0.1)
    second = await acquire(redis_client, "A", "w-2", 5000)
    assert second is not None and second.counter == first.counter + 1
    with pytest.raises(LeaseLost, match=rf"fencing token {first.token} is stale"):
        async with fenced(redis_client, first, "A") as pipe:
            pipe.set("mg:{A}:k", "stale")
    assert await redis_client.get("mg:{A}:k") is None
    async with fenced(redis_client, second, "A") as pipe:  # the holder commits
        pipe.set("mg:{A}:k", "fresh")
    assert await redis_client.get("mg:{A}:k") == b"fresh"


async def _commit(
    redis: aioredis.Redis, expect: dict[str, bytes | None], writes: dict[str, bytes]
) -> None:
    async with fenced(redis, None, "A", expect=expect) as pipe:
        for key, value in writes.items():
            pipe.set(key, value)


async def test_expected_keys_are_compared_before_any_write(
    redis_client: aioredis.Redis,
) -> None:
    await redis_client.set("mg:{A}:agent", b"as read")
    await _commit(redis_client, {"mg:{A}:agent": b"as read"}, {"mg:{A}:agent": b"merged"})
    # Someone else wrote it since: nothing of this commit lands.
    stale = {"mg:{A}:other": b"1", "mg:{A}:agent": b"lost update"}
    with pytest.raises(WatchConflict, match=r"mg:\{A\}:agent changed"):
        await _commit(redis_client, {"mg:{A}:agent": b"as read"}, stale)
    assert await redis_client.get("mg:{A}:agent") == b"merged"
    assert await redis_client.get("mg:{A}:other") is None
    # None expects the key to be missing.
    with pytest.raises(WatchConflict):
        await _commit(redis_client, {"mg:{A}:agent": None}, {"mg:{A}:other": b"1"})
    await _commit(redis_client, {"mg:{A}:new": None}, {"mg:{A}:new": b"1"})
    assert await redis_client.get("mg:{A}:new") == b"1"
    # An empty value is a value: neither stands for the other.
    await redis_client.set("mg:{A}:empty", b"")
    with pytest.raises(WatchConflict):
        await _commit(redis_client, {"mg:{A}:empty": None}, {"mg:{A}:other": b"1"})
    with pytest.raises(WatchConflict):
        await _commit(redis_client, {"mg:{A}:gone": b""}, {"mg:{A}:other": b"1"})
    await _commit(redis_client, {"mg:{A}:empty": b"", "mg:{A}:gone": None}, {"mg:{A}:x": b"1"})
    assert await redis_client.get("mg:{A}:other") is None


async def test_scripts_survive_a_flushed_script_cache(redis_client: aioredis.Redis) -> None:
    lease = await acquire(redis_client, "A", "w-1", 5000)
    assert lease is not None
    await redis_client.script_flush()  # as after a server restart: EVALSHA gets NOSCRIPT
    async with fenced(redis_client, lease, "A") as pipe:
        pipe.set("mg:{A}:k", "v")
    assert await redis_client.get("mg:{A}:k") == b"v"
    assert await lease.renew()
    await lease.release()
    assert await redis_client.get("mg:{A}:lease") is None


async def test_values_that_are_not_text_commit_too(redis_client: aioredis.Redis) -> None:
    # Commands travel to the script as one MessagePack array: text and bytes alike land byte
    # for byte, and numbers as redis-py would send them.
    lease = await acquire(redis_client, "A", "w-1", 5000)
    assert lease is not None
    async with fenced(redis_client, lease, "A") as pipe:
        pipe.set("mg:{A}:text", "naïve ☕ \\" + '"quoted"\n')
        pipe.set("mg:{A}:binary", b"\xff\xfe\x00raw")
        pipe.zadd("mg:{A}:z", {"t": 1_700_000_000.123456})
    assert await redis_client.get("mg:{A}:text") == ("naïve ☕ \\" + '"quoted"\n').encode()
    assert await redis_client.get("mg:{A}:binary") == b"\xff\xfe\x00raw"
    assert await redis_client.zscore("mg:{A}:z", "t") == 1_700_000_000.123456
    async with fenced(redis_client, lease, "A") as pipe:
        pipe.set("mg:{A}:text", "plain")
        pipe.zadd("mg:{A}:z", {"t": 1_700_000_000.123456})
    assert await redis_client.get("mg:{A}:text") == b"plain"
    # Every length class of the packed form (bytes go as MessagePack strings of 5/8/16/32-bit
    # lengths) lands byte for byte, zero bytes and invalid UTF-8 included.
    sizes = (0, 31, 32, 255, 256, 65_535, 65_536)
    async with fenced(redis_client, lease, "A") as pipe:
        for n in sizes:
            pipe.set(f"mg:{{A}}:b{n}", bytes(i % 256 for i in range(n)))
    for n in sizes:
        assert await redis_client.get(f"mg:{{A}}:b{n}") == bytes(i % 256 for i in range(n))


async def test_the_step_journal_keeps_the_first_answer_and_refuses_a_stale_writer(
    redis_client: aioredis.Redis,
) -> None:
    from bus.lease import journal

    first = await acquire(redis_client, "A", "w-1", 50)
    assert first is not None
    assert await journal(redis_client, first, "mg:{A}:journal:0", b"answer 1", 60) == b"answer 1"
    # Written already: the earlier answer stands (a re-run replays it).
    assert await journal(redis_client, first, "mg:{A}:journal:0", b"answer 2", 60) == b"answer 1"
    await anyio.sleep(0.1)
    second = await acquire(redis_client, "A", "w-2", 5000)
    assert second is not None
    await redis_client.delete("mg:{A}:journal:0")  # the run finished: its journal is gone
    with pytest.raises(LeaseLost):
        await journal(redis_client, first, "mg:{A}:journal:0", b"stale", 60)
    assert await redis_client.get("mg:{A}:journal:0") is None


async def test_a_token_is_never_issued_twice_when_redis_loses_its_last_writes(
    redis_client: aioredis.Redis,
) -> None:
    # An earlier holder came and went: the fence has a history.
    earlier = await acquire(redis_client, "A", "w-0", 5000)
    assert earlier is not None
    await earlier.release()
    snapshot = await redis_client.dump("mg:{A}:fence")
    assert snapshot is not None
    first = await acquire(redis_client, "A", "w-1", 5000)
    assert first is not None
    # Redis restarts and loses its last second of writes: the first acquisition among them.
    await redis_client.restore("mg:{A}:fence", 0, snapshot, replace=True)
    await redis_client.delete("mg:{A}:lease")
    second = await acquire(redis_client, "A", "w-2", 5000)
    assert second is not None
    assert second.token != first.token  # same counter, but each acquirer's own nonce
    with pytest.raises(LeaseLost, match="is stale"):
        async with fenced(redis_client, first, "A") as pipe:
            pipe.set("mg:{A}:k", "from the forgotten holder")
    assert await redis_client.get("mg:{A}:k") is None
    async with fenced(redis_client, second, "A") as pipe:
        pipe.set("mg:{A}:k", "from the holder")
    assert await redis_client.get("mg:{A}:k") == b"from the holder"


async def test_a_fenced_commit_hands_back_the_last_commands_reply(
    redis_client: aioredis.Redis,
) -> None:
    # A run's last commit releases the lease and counts the inbox after its own writes.
    lease = await acquire(redis_client, "A", "w-1", 5000)
    assert lease is not None
    await redis_client.xadd("mg:{A}:inbox", {"e": b"next"})
    reply: list[object] = []
    async with fenced(redis_client, lease, "A", reply=reply) as pipe:
        pipe.xadd("mg:{A}:inbox", {"e": b"later"})
        pipe.delete("mg:{A}:lease")
        pipe.xlen("mg:{A}:inbox")
    assert reply == [2]
    assert await redis_client.exists("mg:{A}:lease") == 0
