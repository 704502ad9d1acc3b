"""Small helpers shared by storage modules: reply decoding, multi-slot reads, and the reads
every record store makes (one record by key, many by id, a set of ids)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from storage.errors import NotFound
from storage.records import decode

_T = TypeVar("_T")


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


async def fetch(redis: aioredis.Redis, key: str, kind: type[_T], missing: str) -> _T:
    """The record of type ``kind`` stored at ``key``.

    Raises:
        NotFound: nothing is stored there (``missing`` says what was looked for).
    """
    raw = await redis.get(key)
    if raw is None:
        raise NotFound(missing)
    return decode(kind, raw)


async def fetch_many(redis: aioredis.Redis, keys: Sequence[str], kind: type[_T]) -> list[_T]:
    """The records of type ``kind`` stored at ``keys`` (any slots), in order; missing ones
    (deleted meanwhile) are skipped."""
    if not keys:
        return []
    return [decode(kind, raw) for raw in await mget(redis, keys) if raw is not None]


async def by_id_or_name(
    name_or_id: str,
    by_id: Callable[[str], Awaitable[_T]],
    by_name: Callable[[str], Awaitable[_T | None]],
    missing: str,
) -> _T:
    """The record with this id (``by_id`` raises :class:`NotFound` when there is none), else
    the one with this name.

    Raises:
        NotFound: neither exists (``missing`` says so).
    """
    try:
        return await by_id(name_or_id)
    except NotFound:
        found = await by_name(name_or_id)
    if found is None:
        raise NotFound(missing)
    return found


async def members(redis: aioredis.Redis, key: str) -> list[str]:
    """The members of a set of ids, sorted."""
    return sorted(texts(await redis.smembers(key)))
