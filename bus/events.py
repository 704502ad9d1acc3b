"""Run event streams: every step appends its events; callers follow live or read later.

Each entry has ``e`` (the event, JSON) and, on the last entry of a run, ``end=1``. Finished
runs' streams expire after ``FINISHED_TTL_S``; the stream of a run that has not finished
expires ``OPEN_TTL_S`` after its last event, so a run that never finishes does not keep it
forever (callers pass the configured values, see ``storage.settings``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bus import keys
from bus._replies import entries, read_reply

__all__ = ("FINISHED_TTL_S", "OPEN_TTL_S", "follow", "read_all", "stage_events")

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


async def follow(
    redis: aioredis.Redis,
    agent_id: str,
    run_id: str,
    *,
    after: str = "0-0",
    block_ms: int = 1000,
    timeout_s: float | None = None,
) -> AsyncIterator[tuple[str, bytes]]:
    """Yield ``(entry_id, event)`` from ``after`` until the run's last event.

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
        for _stream, items in reply:
            for entry_id, fields in items:
                last = entry_id
                yield last, fields[b"e"]
                if fields.get(b"end") == b"1":
                    return


async def read_all(redis: aioredis.Redis, agent_id: str, run_id: str) -> tuple[list[bytes], bool]:
    """Every event stored for the run so far, and whether the run has ended."""
    items = entries(await redis.xrange(keys.run_events(agent_id, run_id)))
    events = [fields[b"e"] for _id, fields in items]
    ended = bool(items) and items[-1][1].get(b"end") == b"1"
    return events, ended
