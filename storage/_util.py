"""Small helpers shared by storage modules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster


def text(value: bytes | str) -> str:
    """A Redis reply as str (clients run with ``decode_responses=False``)."""
    return value.decode() if isinstance(value, bytes) else value


def texts(values: Iterable[bytes | str]) -> list[str]:
    return [text(v) for v in values]


def text_or_none(value: bytes | str | None) -> str | None:
    """:func:`text`, passing None (a missing key) through."""
    return None if value is None else text(value)


async def mget(redis: aioredis.Redis, keys: Sequence[str]) -> list[Any]:
    """MGET of keys that may have different hash slots: one command on one Redis, one per
    slot on a cluster (where MGET must stay in one slot)."""
    if isinstance(redis, RedisCluster):
        return list(await redis.mget_nonatomic(list(keys)))
    return list(await redis.mget(keys))
