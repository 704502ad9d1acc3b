"""Pages of every agent's runs in creation order, read through one index: the time to list
the newest runs does not grow with the number of agents.

The index is sharded as the ready signals are (:func:`bus.keys.runs_by_time`: one sorted set
per shard of ``"<run id> <agent id>"`` scored by the run's ``created_at``, an agent's runs in
the shard of its hash), so that on a Redis Cluster no slot takes every submission's write. It
is written by the run's submission (:meth:`agents.runs.RunStore.submit`: in its script on one
Redis, just before it on a Redis Cluster) and that shard is trimmed there to the runs'
retention. A page merges the shards in (``created_at``, member) order, the order one sorted set
of them all would have (ties order by run id): each shard is read from the cursor on in the
page's direction, a little over its share first and more each time it runs short (the reads of
every shard in one pipeline), and a run is taken only once every shard that still has runs
shows what comes next; a page without a filter is three round trips, whatever the agents.
Only the records of what is taken are read: entries whose record is gone (expired, or never
stored because a process died between the index and the record) are skipped. Filters on the
run's status (``keep``) read the records taken until the page is full, so a filter that matches
few runs walks further; no write is added to the worker's commit for them.

Runs stored before the index existed are copied into it once (:func:`backfill`, from each
agent's own run list, which has the same scores), the first time runs are listed. During a
rolling upgrade, runs that processes of the older version submit after that copy are not in
the index (they are still listed by agent); deleting ``mg:runs-by-time-filled`` once no such
process is left makes the next listing copy again.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis.asyncio as aioredis

from bus import keys as bus_keys
from storage import keys
from storage._util import mget, text, texts
from storage.agents import UnknownCursor
from storage.records import Run, decode

__all__ = ("backfill", "page")

_BATCH = 500
_FIRST = 10  # the fewest entries read of a shard at once

_Entry = tuple[float, bytes]  # (created_at, "<run id> <agent id>"): the index's order


async def backfill(redis: aioredis.Redis) -> None:
    """Copy into the index the runs listed by each agent's run list (once; afterwards this is
    one ``EXISTS``). Idempotent: two processes doing it at once add the same entries, and one
    that dies before the end leaves the mark unset, so the next listing does it again."""
    if await redis.exists(bus_keys.runs_by_time_filled()):
        return
    agent_ids = texts(await redis.smembers(keys.agents_all()))
    for start in range(0, len(agent_ids), _BATCH):
        batch = agent_ids[start : start + _BATCH]
        async with redis.pipeline(transaction=False) as pipe:  # a slot per agent on a cluster
            for agent_id in batch:
                pipe.zrange(keys.agent_runs(agent_id), 0, -1, withscores=True)
            lists = await pipe.execute()
        shards: dict[str, dict[str, float]] = {}
        for agent_id, runs in zip(batch, lists, strict=True):
            scores = shards.setdefault(bus_keys.runs_by_time(agent_id), {})
            scores.update({f"{text(run_id)} {agent_id}": float(score) for run_id, score in runs})
        async with redis.pipeline(transaction=False) as pipe:
            for shard, scores in shards.items():
                if scores:
                    pipe.zadd(shard, scores)
            await pipe.execute()
    await redis.set(bus_keys.runs_by_time_filled(), "1")


async def page(
    redis: aioredis.Redis,
    *,
    keep: Callable[[Run], bool],
    after: str | None,
    before: str | None,
    limit: int | None,
    descending: bool,
) -> list[Run]:
    """The runs of one page that ``keep`` accepts, in the order asked (newest first with
    ``descending``). ``after``/``before`` are run ids (positions in that order, whatever their
    status); ``before`` alone gives the ``limit`` nearest to it.

    Raises:
        UnknownCursor: a cursor that names no run of the index.
    """
    shards = bus_keys.runs_by_time_shards()
    backward = before is not None and after is None
    up = descending == backward  # whether the walk goes from older runs to newer ones
    cursors: list[tuple[str, str, bool]] = []  # (field, run id, whether the walk starts past it)
    if after is not None:
        cursors.append(("after", after, True))
    if before is not None:  # alone, the walk starts there and goes away: the nearest first
        cursors.append(("before", before, after is None))
    ranges = await _ranges(redis, shards, up, cursors)
    batch = _BATCH if limit is None else min(max(2 * limit, 50), _BATCH)
    read: list[deque[_Entry]] = [deque() for _ in shards]  # fetched, not yet taken
    # What a shard's next read asks for: runs spread evenly over the shards by the agents'
    # hashes, so a little over its share first; doubled each time it runs short.
    sizes = [max(_FIRST, 2 * batch // len(shards))] * len(shards)
    found: list[Run] = []
    seen: set[str] = set()  # a run added meanwhile shifts the ranks: never list one twice
    while limit is None or len(found) < limit:
        members: list[bytes] = []  # the next batch in the walk's order, its records read at once
        while len(members) < batch:
            await _fetch(redis, shards, ranges, read, sizes, up)
            more = [high is None or low < high for low, high in ranges]
            if not (taken := _take(read, more, batch - len(members), up)):
                break
            members += taken
        if not members:
            break
        pairs = [m.split(" ", 1) for m in texts(members)]
        for raw in await mget(redis, [keys.run(a, r) for r, a in pairs]):
            if raw is not None and (run := decode(Run, raw)).id not in seen and keep(run):
                seen.add(run.id)
                found.append(run)
    found = found if limit is None else found[:limit]
    return found[::-1] if backward else found


_Range = tuple[int, int | None]  # a shard's ranks still to walk, [low, high); None: its end


async def _ranges(
    redis: aioredis.Redis, shards: Sequence[str], up: bool, cursors: list[tuple[str, str, bool]]
) -> list[_Range]:
    """Each shard's ranks, in the walk's order (oldest first when ``up``), past the cursors
    ``(field, run id, True)`` and before those ``(field, run id, False)``.

    Raises:
        UnknownCursor: a cursor that names no run of the index.
    """
    at: list[_Entry] = []
    for field, cursor, _ in cursors:
        entry = await _entry(redis, cursor)
        if entry is None:
            raise UnknownCursor(field, cursor, "run")
        at.append(entry)
    ranges: list[_Range] = [(0, None)] * len(shards)
    if not at:
        return ranges
    async with redis.pipeline(transaction=False) as pipe:  # a slot per shard on a cluster
        for shard in shards:
            for score, _ in at:  # the runs ahead of the cursor's instant in the walk, then at it
                pipe.zcount(shard, *(("-inf", f"({score!r}") if up else (f"({score!r}", "+inf")))
                pipe.zrangebyscore(shard, score, score)
        replies = await pipe.execute()
    for n in range(len(shards)):
        low, high = 0, None
        counts = replies[n * 2 * len(at) : (n + 1) * 2 * len(at)]
        for (_, _, past), (_, member), earlier, ties in zip(
            cursors, at, counts[::2], counts[1::2], strict=True
        ):
            ahead = int(earlier) + sum((m < member) == up for m in ties if m != member)
            if past:
                low = ahead + (member in ties)  # past the cursor itself, in its own shard
            else:
                high = ahead
        ranges[n] = (low, high)
    return ranges


async def _entry(redis: aioredis.Redis, run_id: str) -> _Entry | None:
    """The run's entry in its shard of the index, None when it is not there."""
    agent_id = await redis.get(keys.run_index(run_id))
    if agent_id is None:
        return None
    member = f"{run_id} {text(agent_id)}"
    score = await redis.zscore(bus_keys.runs_by_time(text(agent_id)), member)
    return None if score is None else (float(score), member.encode())


async def _fetch(
    redis: aioredis.Redis,
    shards: Sequence[str],
    ranges: list[_Range],
    read: list[deque[_Entry]],
    sizes: list[int],
    up: bool,
) -> None:
    """Read the next entries of the shards (``sizes[n]`` of shard ``n``, then twice as many
    next time, up to :data:`_BATCH`) when one's fetched entries were all taken: of every shard
    with fewer than half its last read left, so that they run short together, not in turns. A
    shard that gives fewer than asked is read to its end."""
    left = [high is None or low < high for low, high in ranges]
    if all(read[n] or not left[n] for n in range(len(shards))):
        return
    asked = {  # shard -> the ranks read, [low, end)
        n: (low, low + sizes[n] if high is None else min(high, low + sizes[n]))
        for n, (low, high) in enumerate(ranges)
        if left[n] and len(read[n]) < sizes[n] // 4
    }
    async with redis.pipeline(transaction=False) as pipe:
        for n, (low, end) in asked.items():
            pipe.zrange(shards[n], low, end - 1, desc=not up, withscores=True)
        replies = await pipe.execute()
    for (n, (low, end)), entries in zip(asked.items(), replies, strict=True):
        pairs = cast("list[tuple[bytes, float]]", entries)
        ranges[n] = (end, end if len(pairs) < end - low else ranges[n][1])  # fewer: its end
        sizes[n] = min(2 * sizes[n], _BATCH)
        read[n].extend((score, member) for member, score in pairs)


def _take(read: list[deque[_Entry]], more: list[bool], count: int, up: bool) -> list[bytes]:
    """Up to ``count`` members in the walk's order, merged from the shards' fetched entries;
    stops early when a shard with more to fetch has none fetched left (its next is unknown)."""
    order: Callable[[_Entry], Any] = _identity if up else _Newest
    heads = [(order(entries[0]), n) for n, entries in enumerate(read) if entries]
    heapq.heapify(heads)
    taken: list[bytes] = []
    while heads and len(taken) < count:
        _, n = heapq.heappop(heads)
        taken.append(read[n].popleft()[1])
        if read[n]:
            heapq.heappush(heads, (order(read[n][0]), n))
        elif more[n]:
            break
    return taken


def _identity(entry: _Entry) -> _Entry:
    return entry


class _Newest:
    """An entry in the heap of a walk from newer runs to older ones: the newest first."""

    __slots__ = ("entry",)

    def __init__(self, entry: _Entry) -> None:
        self.entry = entry

    def __lt__(self, other: _Newest) -> bool:
        return other.entry < self.entry
