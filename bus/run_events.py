"""Run event streams: every step appends its events; callers follow live or read later.

Each committed entry has ``e`` (the event, JSON) and, on the last entry of a run, ``end=1``.
A run that streams tokens also appends *delta* entries as the model produces them, outside any
commit: ``d`` (a piece of a message, JSON) and ``p`` (which part of the message it extends).
They are ephemeral hints for live readers (:func:`follow_live`); a step re-run after a crash
may append its deltas again, so :func:`follow` and :func:`read_all` skip them and the committed
events alone say what happened. Both kinds share one stream, so a live reader sees a step's
deltas before the step's committed events, in the order they were written. Finished
runs' streams expire after ``FINISHED_TTL_S``; the stream of a run that has not finished
expires ``OPEN_TTL_S`` after its last event, so a run that never finishes does not keep it
forever (callers pass the configured values, see ``storage.settings``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple, TypedDict, Unpack

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bus import keys
from bus._replies import entries, read_reply

__all__ = (
    "FINISHED_TTL_S",
    "OPEN_TTL_S",
    "Following",
    "LiveEntry",
    "follow",
    "follow_live",
    "publish_deltas",
    "read_all",
    "read_live",
    "stage_events",
)

FINISHED_TTL_S = 24 * 3600
OPEN_TTL_S = 7 * 24 * 3600


def stage_events(
    pipe: Pipeline,
    agent_id: str,
    run_id: str,
    events: Sequence[bytes],
    *,
    final: bool,
    finished_ttl_s: int = FINISHED_TTL_S,
    open_ttl_s: int = OPEN_TTL_S,
) -> None:
    """Add ``events`` to the run's stream inside the caller's transaction, and set how long
    it is kept: ``finished_ttl_s`` once the run is final, else ``open_ttl_s`` from now."""
    key = keys.run_events(agent_id, run_id)
    for index, event in enumerate(events):
        fields: dict[Any, Any] = {"e": event}
        if final and index == len(events) - 1:
            fields["end"] = "1"
        pipe.xadd(key, fields)
    if final:
        pipe.expire(key, finished_ttl_s)
    elif events:
        pipe.expire(key, open_ttl_s)


class LiveEntry(NamedTuple):
    """An entry of a run's stream: a committed event (``part`` is None) or a delta."""

    entry_id: str
    data: bytes
    part: str | None = None


def _live(entry_id: str, fields: dict[bytes, bytes]) -> LiveEntry | None:
    if b"e" in fields:
        return LiveEntry(entry_id, fields[b"e"])
    if b"d" in fields:
        return LiveEntry(entry_id, fields[b"d"], fields.get(b"p", b"").decode())
    return None


async def publish_deltas(
    redis: aioredis.Redis,
    agent_id: str,
    run_id: str,
    deltas: Sequence[tuple[str, bytes]],
    *,
    ttl_s: int | None = None,
) -> None:
    """Append ``(part, delta)`` pairs to the run's stream, outside any commit; ``ttl_s`` sets
    the stream's lifetime (the first deltas of a run come before any commit sets it)."""
    key = keys.run_events(agent_id, run_id)
    async with redis.pipeline(transaction=False) as pipe:
        for part, delta in deltas:
            pipe.xadd(key, {"d": delta, "p": part})
        if ttl_s is not None:
            pipe.expire(key, ttl_s)
        await pipe.execute()


async def follow_live(
    redis: aioredis.Redis,
    agent_id: str,
    run_id: str,
    *,
    after: str = "0-0",
    block_ms: int = 1000,
    timeout_s: float | None = None,
) -> AsyncIterator[LiveEntry | None]:
    """Yield the run's entries, deltas included, from ``after`` until its last event; ``None``
    after each ``block_ms`` that brought nothing (a reader may send a keep-alive then).

    Raises:
        TimeoutError: no end within ``timeout_s``.
    """
    import anyio

    key = keys.run_events(agent_id, run_id)
    last = after
    deadline = None if timeout_s is None else anyio.current_time() + timeout_s
    while True:
        if deadline is not None and anyio.current_time() > deadline:
            raise TimeoutError(f"run {run_id} did not finish within {timeout_s}s")
        reply = read_reply(await redis.xread({key: last}, count=100, block=block_ms))
        if not any(items for _stream, items in reply):
            yield None
        for _stream, items in reply:
            for entry_id, fields in items:
                last = entry_id
                entry = _live(entry_id, fields)
                if entry is not None:
                    yield entry
                if fields.get(b"end") == b"1":
                    return


class Following(TypedDict, total=False):
    """The options of :func:`follow_live` that :func:`follow` passes on."""

    after: str
    block_ms: int
    timeout_s: float | None


async def follow(
    redis: aioredis.Redis, agent_id: str, run_id: str, **options: Unpack[Following]
) -> AsyncIterator[tuple[str, bytes]]:
    """Yield ``(entry_id, event)`` of committed events from ``after`` until the run's last
    (the options are :func:`follow_live`'s).

    Raises:
        TimeoutError: no end within ``timeout_s``.
    """
    async for entry in follow_live(redis, agent_id, run_id, **options):
        if entry is not None and entry.part is None:
            yield entry.entry_id, entry.data


async def read_live(
    redis: aioredis.Redis, agent_id: str, run_id: str
) -> tuple[list[LiveEntry], bool]:
    """Every entry stored for the run so far, deltas included, and whether it has ended."""
    items = entries(await redis.xrange(keys.run_events(agent_id, run_id)))
    found = [entry for entry_id, fields in items if (entry := _live(entry_id, fields))]
    ended = bool(items) and items[-1][1].get(b"end") == b"1"
    return found, ended


async def read_all(redis: aioredis.Redis, agent_id: str, run_id: str) -> tuple[list[bytes], bool]:
    """Every committed event stored for the run so far, and whether the run has ended."""
    found, ended = await read_live(redis, agent_id, run_id)
    return [entry.data for entry in found if entry.part is None], ended
