"""Redis connections: the configured URL, else the local server of ``MEMGRID_HOME``."""

from __future__ import annotations

import redis.asyncio as aioredis

from bus.local_redis import ensure_local_redis
from bus.settings import BusSettings

__all__ = ("connect", "resolve_redis_url")


def resolve_redis_url(settings: BusSettings) -> str:
    """``MEMGRID_REDIS_URL`` when set, else the local server (started on first use)."""
    if settings.redis_url:
        return settings.redis_url
    return ensure_local_redis(settings.home, settings.redis_server)


def connect(url: str, *, max_connections: int = 256) -> aioredis.Redis:
    """An asyncio Redis client on ``url``; the caller closes it with ``aclose()``.

    The pool blocks (up to 30 s) when all ``max_connections`` are busy instead of failing, so
    a worker with many agents in flight waits its turn for a connection. There is no socket
    read timeout: blocking reads (XREAD BLOCK, BLPOP) bound themselves, and redis-py's default
    would cut any block longer than 5 s; keepalive and health checks catch dead peers.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=30,
        socket_connect_timeout=5.0,
        socket_timeout=None,
        health_check_interval=30,
        # TCP keepalive finds dead peers; unix-socket connections do not take the option.
        **({} if url.startswith("unix:") else {"socket_keepalive": True}),
        decode_responses=False,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
