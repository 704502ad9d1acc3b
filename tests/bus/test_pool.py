"""The connection pool of bus.connection.connect: connections reused, a full pool waits (up to
its timeout) instead of failing, and a restarted Redis is reached on a new connection.

A plain local redis-server of its own (the pool serves one Redis; a cluster client has its own
per-node connections), restarted by one test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from bus import connect, ensure_local_redis, stop_local_redis
from bus._pool import WaitingPool


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("pool-home")
    ensure_local_redis(folder)
    yield folder
    stop_local_redis(folder)


@pytest.fixture
async def client(home: Path) -> AsyncIterator[aioredis.Redis]:
    redis = connect(ensure_local_redis(home), max_connections=1)
    try:
        yield redis
    finally:
        await redis.aclose()


def _pool(redis: aioredis.Redis) -> WaitingPool:
    pool = redis.connection_pool
    assert isinstance(pool, WaitingPool)
    return pool


async def _until(condition: Callable[[], bool], what: str) -> None:
    with anyio.move_on_after(5):
        while not condition():  # noqa: ASYNC110 (the pool's state: no event to wait on)
            await anyio.sleep(0.005)
        return
    raise AssertionError(f"not within 5 s: {what}")


async def test_connections_are_reused(home: Path) -> None:
    redis = connect(ensure_local_redis(home), max_connections=8)
    try:
        for i in range(50):
            await redis.set(f"pool:{i}", i)
        pool = _pool(redis)
        assert len(pool._available_connections) == 1 and not pool._in_use_connections
        async with anyio.create_task_group() as tg:
            for _ in range(40):  # more at once than the pool holds: they queue, none fails
                tg.start_soon(redis.incr, "pool:count")
        assert await redis.get("pool:count") == b"40"
        assert len(pool._available_connections) == 8 and not pool._in_use_connections
    finally:
        await redis.aclose()


async def test_a_full_pool_waits_for_a_connection(client: aioredis.Redis, home: Path) -> None:
    pool = _pool(client)
    other = connect(ensure_local_redis(home))
    popped: list[object] = []
    try:
        async with anyio.create_task_group() as tg:

            async def hold() -> None:
                popped.append(await client.blpop(["pool:queue"], timeout=5))

            tg.start_soon(hold)
            await _until(lambda: len(pool._in_use_connections) == 1, "the one connection held")
            tg.start_soon(client.set, "pool:after", "1")
            await _until(lambda: pool._waiting == 1, "the second command waiting")
            assert await other.get("pool:after") is None  # it has not run: it waits its turn
            await other.rpush("pool:queue", "go")
        assert popped == [(b"pool:queue", b"go")]
        assert await other.get("pool:after") == b"1"
        assert pool._waiting == 0 and len(pool._available_connections) == 1
    finally:
        await other.aclose()


async def test_a_full_pool_gives_up_after_its_timeout(home: Path) -> None:
    url = ensure_local_redis(home)
    redis = aioredis.Redis.from_pool(WaitingPool.from_url(url, max_connections=1, timeout=0.2))
    other = connect(url)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(redis.blpop, ["pool:never"], 5)
            await _until(lambda: len(_pool(redis)._in_use_connections) == 1, "held")
            free = r"no Redis connection free within 0\.2 s"
            with pytest.raises(RedisConnectionError, match=free):
                await redis.get("pool:x")
            await other.rpush("pool:never", "done")  # lets the held command finish
        assert _pool(redis)._waiting == 0
    finally:
        await redis.aclose()
        await other.aclose()


async def test_a_restarted_redis_is_reached_on_a_new_connection(
    client: aioredis.Redis, home: Path
) -> None:
    url = ensure_local_redis(home)
    await client.set("pool:kept", "yes")
    idle = _pool(client)._available_connections[0]
    # The server closes every connection, the pooled one too (the loop runs meanwhile, as it
    # does while a real Redis is down, and sees the connection's end).
    assert await anyio.to_thread.run_sync(stop_local_redis, home)
    assert await anyio.to_thread.run_sync(ensure_local_redis, home) == url  # same socket, data
    assert await client.get("pool:kept") == b"yes"  # checked when taken: reconnected, no error
    assert idle.is_connected and _pool(client)._available_connections == [idle]
