"""The connection pool of :func:`bus.connection.connect`: waits for a free connection when all
are busy (as redis-py's ``BlockingConnectionPool`` does) at the cost of its plain pool's fast
path.

A worker's turn makes ~5 round trips to Redis, each taking and giving back a pool connection.
redis-py 8's pools spend ~15 us of CPU on that per command (an ``asyncio.Condition`` and a
timeout on every take, a lock, OpenTelemetry counters that memgrid does not export, an event
dispatch on every release): about a quarter of a round trip's client CPU, measured with 64
tasks sending ``EVALSHA`` on one Unix socket (57.6 us a call with ``BlockingConnectionPool``,
44.0 with ``ConnectionPool``). This pool takes a free connection (or makes one, up to
``max_connections``) with no lock or await in between, which asyncio's one thread makes safe,
and only when every connection is busy waits, under a condition, up to ``timeout`` seconds.

What it keeps of redis-py's pool: a connection is checked when taken (:meth:`ensure_connection`:
a connection that the server closed, as a restarted Redis does, is reconnected instead of
failing the command), one that must reconnect is disconnected when given back, and a command
whose connection fails is handled by the client as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ("WaitingPool",)


class WaitingPool(aioredis.ConnectionPool):
    """A pool that waits up to ``timeout`` seconds for a connection when all
    ``max_connections`` are in use, then raises ``ConnectionError``."""

    def __init__(self, *, timeout: float = 30.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self._freed = asyncio.Condition()
        self._waiting = 0

    def _full(self) -> bool:
        return not self._available_connections and (
            len(self._in_use_connections) >= self.max_connections
        )

    async def get_connection(self, *_args: Any, **_options: Any) -> AbstractConnection:
        """A connected connection: a free one, a new one, or, when all are busy, the first
        given back within ``timeout`` seconds."""
        if self._full():
            await self._wait()
        # No await since the check: one is still free. (redis-py leaves these unannotated.)
        connection: AbstractConnection = self.get_available_connection()  # type: ignore[no-untyped-call]
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def _wait(self) -> None:
        self._waiting += 1
        try:
            async with self._freed:
                async with asyncio.timeout(self.timeout):
                    await self._freed.wait_for(lambda: not self._full())
        except TimeoutError as exc:
            raise RedisConnectionError(
                f"no Redis connection free within {self.timeout:g} s "
                f"(all {self.max_connections} in use)"
            ) from exc
        finally:
            self._waiting -= 1

    async def release(self, connection: AbstractConnection) -> None:
        """Give ``connection`` back (disconnected first when it must reconnect) and wake one
        waiter, if any."""
        if connection.should_reconnect():  # type: ignore[no-untyped-call]
            await connection.disconnect()
        self._in_use_connections.remove(connection)  # KeyError: not taken from this pool
        self._available_connections.append(connection)
        if self._waiting:
            async with self._freed:
                self._freed.notify()
