"""Commits of any size: variadic commands are split below Lua's unpack limit, and a commit
whose command would fail inside the script is refused before anything is written."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bus.errors import CommitRefused
from bus.lease import Lease, acquire, fenced


async def _commit(
    redis: aioredis.Redis, lease: Lease, *writes: Callable[[Pipeline], object]
) -> None:
    async with fenced(redis, lease, "A") as pipe:
        for write in writes:
            write(pipe)


@pytest.mark.parametrize("value", ["text", b"\xffbinary"], ids=["text", "bytes"])
async def test_a_commit_with_ten_thousand_members_per_command_lands_whole(
    redis_client: aioredis.Redis, value: str | bytes
) -> None:
    lease = await acquire(redis_client, "A", "w-1", 5000)
    assert lease is not None
    n = 10_000
    await redis_client.mset({f"mg:{{A}}:old:{i}": 1 for i in range(n)})
    async with fenced(redis_client, lease, "A") as pipe:
        pipe.set("mg:{A}:v", value)
        pipe.sadd("mg:{A}:s", *(f"m{i}" for i in range(n)))
        pipe.zadd("mg:{A}:z", {f"m{i}": i for i in range(n)})
        pipe.hset("mg:{A}:h", mapping={f"f{i}": i for i in range(n)})
        pipe.rpush("mg:{A}:l", *range(n))
        pipe.mset({f"mg:{{A}}:k:{i}": i for i in range(n)})
        pipe.delete(*(f"mg:{{A}}:old:{i}" for i in range(n)))
    assert await redis_client.scard("mg:{A}:s") == n
    assert await redis_client.zcard("mg:{A}:z") == n
    assert await redis_client.hlen("mg:{A}:h") == n
    assert await redis_client.lrange("mg:{A}:l", 0, -1) == [str(i).encode() for i in range(n)]
    assert await redis_client.get(f"mg:{{A}}:k:{n - 1}") == str(n - 1).encode()
    assert await redis_client.exists(*(f"mg:{{A}}:old:{i}" for i in range(0, n, 97))) == 0
    assert await redis_client.get("mg:{A}:v") == (value if isinstance(value, bytes) else b"text")


async def test_a_command_that_would_fail_midway_leaves_no_partial_writes(
    redis_client: aioredis.Redis,
) -> None:
    lease = await acquire(redis_client, "A", "w-1", 5000)
    assert lease is not None
    await redis_client.set("mg:{A}:not-a-zset", "a string")
    with pytest.raises(CommitRefused, match=r"mg:\{A\}:not-a-zset holds a string"):
        await _commit(
            redis_client,
            lease,
            lambda pipe: pipe.set("mg:{A}:before", "1"),
            lambda pipe: pipe.sadd("mg:{A}:set", "x"),
            lambda pipe: pipe.zadd("mg:{A}:not-a-zset", {"m": 1}),  # WRONGTYPE in the script
            lambda pipe: pipe.set("mg:{A}:after", "1"),
        )
    assert await redis_client.exists("mg:{A}:before", "mg:{A}:set", "mg:{A}:after") == 0
    assert await redis_client.get("mg:{A}:not-a-zset") == b"a string"
    # A key that the same commit deletes or overwrites first may change its type.
    async with fenced(redis_client, lease, "A") as pipe:
        pipe.delete("mg:{A}:not-a-zset")
        pipe.zadd("mg:{A}:not-a-zset", {"m": 1})
    assert await redis_client.zscore("mg:{A}:not-a-zset", "m") == 1


async def test_a_command_that_cannot_be_split_is_refused_before_sending(
    redis_client: aioredis.Redis,
) -> None:
    lease = await acquire(redis_client, "A", "w-1", 5000)
    assert lease is not None
    with pytest.raises(CommitRefused, match="XADD has 20002 arguments"):
        await _commit(
            redis_client,
            lease,
            lambda pipe: pipe.set("mg:{A}:before", "1"),
            lambda pipe: pipe.xadd("mg:{A}:stream", {f"f{i}": i for i in range(10_000)}),
        )
    assert await redis_client.exists("mg:{A}:before", "mg:{A}:stream") == 0
