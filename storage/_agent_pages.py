"""Pages of agents in creation order, read through the indexes: only the page's records are
fetched and decoded, so a page of 50 costs the same at 10 or 10,000 agents (issue 16).

The order is the sorted set ``agents_by_created`` (id scored by ``created_at``; ties by id, as
Redis orders equal scores). Without filters a page is a rank range of it; with filters (exact
name, tags through their sets, a substring of the name through the name hash) the matching ids
are ordered by their scores (``ZMSCORE``) and sliced, and still only the page is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import redis.asyncio as aioredis

from storage import keys
from storage._util import mget, text, texts
from storage.errors import NotFound
from storage.records import Agent, decode

__all__ = ("UnknownCursor", "backfill_created_index", "page_ids", "records")

_BACKFILL_BATCH = 500


class UnknownCursor(NotFound):
    """A page cursor (``after`` or ``before``) that names no record (``kind``: an agent, a
    run) of the listing."""

    def __init__(self, field: str, cursor: str, kind: str = "agent") -> None:
        super().__init__(f"no {kind} with id {cursor!r} to page from")
        self.field = field


async def backfill_created_index(redis: aioredis.Redis) -> None:
    """Index agents stored before the creation index existed (once: afterwards creating and
    deleting keep it the same size as the all-agents set, and this is two O(1) reads)."""
    async with redis.pipeline(transaction=False) as pipe:  # two hash slots on a cluster
        pipe.scard(keys.agents_all())
        pipe.zcard(keys.agents_by_created())
        every, indexed = await pipe.execute()
    if every == indexed:
        return
    ids = texts(await redis.smembers(keys.agents_all()))
    scores: dict[str, float] = {}
    for start in range(0, len(ids), _BACKFILL_BATCH):
        batch = ids[start : start + _BACKFILL_BATCH]
        for raw in await mget(redis, [keys.agent(i) for i in batch]):
            if raw is not None:
                agent = decode(Agent, raw)
                scores[agent.id] = agent.created_at
    indexed_ids = cast("list[bytes]", await redis.zrange(keys.agents_by_created(), 0, -1))
    stale = set(texts(indexed_ids)) - set(scores)
    async with redis.pipeline(transaction=True) as pipe:
        if scores:
            pipe.zadd(keys.agents_by_created(), scores)
        if stale:
            pipe.zrem(keys.agents_by_created(), *stale)
        await pipe.execute()


async def page_ids(
    redis: aioredis.Redis,
    *,
    name: str | None,
    tags: Sequence[str],
    match_all_tags: bool,
    query_text: str | None,
    after: str | None,
    before: str | None,
    limit: int | None,
    descending: bool,
) -> list[str]:
    """The ids of one page, in the order asked. ``after``/``before`` are ids of the listing
    (positions in that order); ``before`` alone gives the ``limit`` nearest to it.

    Raises:
        UnknownCursor: a cursor that is not in the (filtered) listing.
    """
    if name is None and not tags and not query_text:
        return await _ranked(redis, after, before, limit, descending)
    ordered = await _filtered(redis, name, tags, match_all_tags, query_text)
    if descending:
        ordered.reverse()
    start, end = 0, len(ordered)
    for field, cursor in (("after", after), ("before", before)):
        if cursor is None:
            continue
        try:
            at = ordered.index(cursor)
        except ValueError:
            raise UnknownCursor(field, cursor) from None
        start, end = (at + 1, end) if field == "after" else (start, at)
    start, end = _bounds(start, end, limit, before_only=before is not None and after is None)
    return ordered[start:end]


def _bounds(start: int, end: int, limit: int | None, *, before_only: bool) -> tuple[int, int]:
    if limit is not None:
        if before_only:
            start = max(start, end - limit)
        else:
            end = min(end, start + limit)
    return start, max(start, end)


async def _ranked(
    redis: aioredis.Redis,
    after: str | None,
    before: str | None,
    limit: int | None,
    descending: bool,
) -> list[str]:
    """A rank range of the creation index: O(log n + page) whatever the number of agents."""
    index = keys.agents_by_created()
    rank = redis.zrevrank if descending else redis.zrank
    start, end = 0, int(await redis.zcard(index))
    for field, cursor in (("after", after), ("before", before)):
        if cursor is None:
            continue
        at = await rank(index, cursor)
        if at is None:
            raise UnknownCursor(field, cursor)
        at = cast("int", at)
        start, end = (at + 1, end) if field == "after" else (start, at)
    start, end = _bounds(start, end, limit, before_only=before is not None and after is None)
    if end <= start:
        return []
    fetch = redis.zrevrange if descending else redis.zrange
    return texts(cast("list[bytes]", await fetch(index, start, end - 1)))


async def _filtered(
    redis: aioredis.Redis,
    name: str | None,
    tags: Sequence[str],
    match_all_tags: bool,
    query_text: str | None,
) -> list[str]:
    """The ids matching every filter given, oldest first (no record is read)."""
    chosen: set[str] | None = None

    def narrow(ids: set[str]) -> None:
        nonlocal chosen
        chosen = ids if chosen is None else chosen & ids

    if name is not None:
        found = await redis.hget(keys.agent_names(), name)
        narrow({text(found)} if found is not None else set())
    if tags:
        # One SMEMBERS per tag (each tag's set has its own hash slot), combined here.
        async with redis.pipeline(transaction=False) as pipe:
            for tag in tags:
                pipe.smembers(keys.agent_tags(tag))
            per_tag = [set(texts(members)) for members in await pipe.execute()]
        narrow(set.intersection(*per_tag) if match_all_tags else set.union(*per_tag))
    if query_text:
        needle = query_text.lower()
        names = await redis.hgetall(keys.agent_names())
        narrow({text(i) for n, i in names.items() if needle in text(n).lower()})
    ids = sorted(chosen or ())
    if not ids:
        return []
    scores = await redis.zmscore(keys.agents_by_created(), ids)
    scored = sorted((float(s), i) for i, s in zip(ids, scores, strict=True) if s is not None)
    return [i for _score, i in scored]


async def records(redis: aioredis.Redis, ids: list[str]) -> list[Agent]:
    """The agents with these ids, in that order (one ``MGET``, one per hash slot on a
    cluster; gone ones left out)."""
    raws = await mget(redis, [keys.agent(i) for i in ids]) if ids else []
    return [decode(Agent, raw) for raw in raws if raw is not None]
