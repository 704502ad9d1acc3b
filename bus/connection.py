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


def connect(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """An asyncio Redis client on ``url``; the caller closes it with ``aclose()``."""
    return aioredis.Redis.from_url(
        url,
        max_connections=max_connections,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        decode_responses=False,
    )
