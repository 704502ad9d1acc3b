"""Pages of every agent's runs in creation order, read through one index: the time to list
the newest runs does not grow with the number of agents.

The index is the sorted set ``runs_by_created`` (``"<run id> <agent id>"`` scored by the run's
``created_at``, so ties order by run id), written by the run's submission
(:meth:`agents.runs.RunStore.submit`: in its script on one Redis, just before it on a Redis
Cluster) and trimmed there to the runs' retention. A page walks a rank range of it in batches
and reads only the records of what it walks: entries whose record is gone (expired, or never
stored because a process died between the index and the record) are skipped. Filters on the
run's status (``keep``) read the records walked until the page is full, so a filter that
matches few runs walks further; no write is added to the worker's commit for them.

Runs stored before the index existed are copied into it once (:func:`backfill`, from each
agent's own run list, which has the same scores), the first time runs are listed. During a
rolling upgrade, runs that processes of the older version submit after that copy are not in
the index (they are still listed by agent); deleting ``mg:runs-by-created-filled`` once no
such process is left makes the next listing copy again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import redis.asyncio as aioredis

from storage import keys
from storage._util import mget, text, texts
from storage.agents import UnknownCursor
from storage.records import Run, decode

__all__ = ("backfill", "page")

_BATCH = 500


async def backfill(redis: aioredis.Redis) -> None:
    """Copy into the index the runs listed by each agent's run list (once; afterwards this is
    one ``EXISTS``). Idempotent: two processes doing it at once add the same entries, and one
    that dies before the end leaves the mark unset, so the next listing does it again."""
    if await redis.exists(keys.runs_by_created_filled()):
        return
    agent_ids = texts(await redis.smembers(keys.agents_all()))
    for start in range(0, len(agent_ids), _BATCH):
        batch = agent_ids[start : start + _BATCH]
        async with redis.pipeline(transaction=False) as pipe:  # a slot per agent on a cluster
            for agent_id in batch:
                pipe.zrange(keys.agent_runs(agent_id), 0, -1, withscores=True)
            lists = await pipe.execute()
        scores = {
            f"{text(run_id)} {agent_id}": float(score)
            for agent_id, runs in zip(batch, lists, strict=True)
            for run_id, score in runs
        }
        if scores:
            await redis.zadd(keys.runs_by_created(), scores)
    await redis.set(keys.runs_by_created_filled(), "1")


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
    index = keys.runs_by_created()
    start, end = 0, int(await redis.zcard(index))
    for field, cursor in (("after", after), ("before", before)):
        if cursor is None:
            continue
        at = await _rank(redis, cursor, descending)
        if at is None:
            raise UnknownCursor(field, cursor, "run")
        start, end = (at + 1, end) if field == "after" else (start, at)
    backward = before is not None and after is None
    fetch = redis.zrevrange if descending else redis.zrange
    batch = _BATCH if limit is None else min(max(2 * limit, 50), _BATCH)
    found: list[Run] = []
    seen: set[str] = set()  # a run added meanwhile shifts the ranks: never list one twice
    while start < end and (limit is None or len(found) < limit):
        low, high = (max(start, end - batch), end) if backward else (start, min(end, start + batch))
        members = texts(cast("list[bytes]", await fetch(index, low, high - 1)))
        if backward:
            members.reverse()
            end = low
        else:
            start = high
        pairs = [m.split(" ", 1) for m in members]
        for raw in await mget(redis, [keys.run(a, r) for r, a in pairs]) if pairs else []:
            if raw is not None and (run := decode(Run, raw)).id not in seen and keep(run):
                seen.add(run.id)
                found.append(run)
    found = found if limit is None else found[:limit]
    return found[::-1] if backward else found


async def _rank(redis: aioredis.Redis, run_id: str, descending: bool) -> int | None:
    """The run's position in the index (in the order asked), None when it is not there."""
    agent_id = await redis.get(keys.run_index(run_id))
    if agent_id is None:
        return None
    member = f"{run_id} {text(agent_id)}"
    at = await (redis.zrevrank if descending else redis.zrank)(keys.runs_by_created(), member)
    return None if at is None else int(cast("int", at))
