"""Dead letters: work that kept failing, parked in ``mg:dlq`` for an operator to look at and
retry (``memgrid dead-letters``). A run's letter is staged in the agent's slot by the commit
that fails the run, then moved (see :func:`move_dead_letters`). Re-exported by
:mod:`bus.streams`, where they were."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from bus import keys, recent_errors
from bus._replies import Entry, entries

__all__ = (
    "dead_letter",
    "get_dead_letter",
    "list_dead_letters",
    "move_dead_letters",
    "stage_dead_letter",
    "take_dead_letter",
    "trim_dead_letters",
)


def _dead_letter_fields(
    agent_id: str, run_id: str, envelope: bytes, error: str, attempts: int
) -> dict[Any, Any]:
    return {
        "agent_id": agent_id,
        "run_id": run_id,
        "envelope": envelope,
        "error": error,
        "attempts": str(attempts),
        "at": str(time.time()),
    }


def stage_dead_letter(
    pipe: Any, *, agent_id: str, run_id: str, envelope: bytes, error: str, attempts: int
) -> None:
    """Park a message that keeps failing, inside the caller's commit (the one that marks its
    run failed): a dead letter exists exactly when its run failed. The commit writes it in the
    agent's slot (:func:`bus.keys.dead_letter_staging`); :func:`move_dead_letters` moves it to
    the dead-letter stream afterwards, and puts it in the recent errors
    (:mod:`bus.recent_errors`). Trim after that."""
    pipe.xadd(
        keys.dead_letter_staging(agent_id),
        _dead_letter_fields(agent_id, run_id, envelope, error, attempts),
    )


async def move_dead_letters(redis: aioredis.Redis, agent_id: str) -> int:
    """Move the agent's staged dead letters to the dead-letter stream; how many moved.

    Each is added there, recorded in the recent errors, then deleted from the staging stream
    (three keys of different slots, three steps): a crash between them makes the next move add
    (and record) it again, so a dead letter may be listed twice, never lost. Retrying both
    copies re-queues the run once (see ``agents.runs.retry_dead_letter``). The recent-errors
    entry is an observation: one that Redis cannot take is skipped. Called right after the
    commit that staged them, and by the next worker that recovers the agent from a dead one.
    """
    staging = keys.dead_letter_staging(agent_id)
    moved = 0
    while staged := entries(await redis.xrange(staging, count=100)):
        for entry_id, fields in staged:
            await redis.xadd(keys.dead_letters(), dict[Any, Any](fields))
            await _record_dead_letter(redis, fields)
            await redis.xdel(staging, entry_id)
            moved += 1
    return moved


async def _record_dead_letter(redis: aioredis.Redis, fields: Mapping[bytes, bytes]) -> None:
    def field(name: bytes) -> str:
        return fields.get(name, b"").decode(errors="replace")

    await recent_errors.record_error(
        redis,
        kind="dead_letter",
        agent_id=field(b"agent_id"),
        run_id=field(b"run_id"),
        message=field(b"error"),
    )


async def dead_letter(
    redis: aioredis.Redis, *, agent_id: str, run_id: str, envelope: bytes, error: str, attempts: int
) -> str:
    """Park a message that has no run to fail (an undecodable envelope); returns its id."""
    # The letter, then its recent-errors entry (two slots on a cluster; the entry is an
    # observation, skipped when Redis cannot take it).
    entry_id = await redis.xadd(
        keys.dead_letters(), _dead_letter_fields(agent_id, run_id, envelope, error, attempts)
    )
    await recent_errors.record_error(
        redis, kind="dead_letter", agent_id=agent_id, run_id=run_id, message=error
    )
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def trim_dead_letters(redis: aioredis.Redis, cap: int) -> int:
    """Drop the oldest dead letters beyond ``cap``; returns how many were dropped (exact
    trimming: dead letters are rare, and the count must be true, for the log that says so)."""
    return int(await redis.xtrim(keys.dead_letters(), maxlen=cap, approximate=False))


def _row(entry: Entry) -> dict[str, Any]:
    entry_id, fields = entry
    row: dict[str, Any] = {"id": entry_id}
    for key, value in fields.items():
        row[key.decode()] = value.decode(errors="replace")
    if "envelope" in row:
        try:
            row["envelope"] = json.loads(row["envelope"])
        except ValueError:
            pass
    return row


async def list_dead_letters(redis: aioredis.Redis, *, count: int = 100) -> list[dict[str, Any]]:
    return [_row(e) for e in entries(await redis.xrange(keys.dead_letters(), count=count))]


async def get_dead_letter(redis: aioredis.Redis, entry_id: str) -> dict[str, Any] | None:
    """One dead letter, or None."""
    found = entries(await redis.xrange(keys.dead_letters(), entry_id, entry_id))
    return _row(found[0]) if found else None


async def take_dead_letter(redis: aioredis.Redis, entry_id: str) -> bool:
    """Delete one dead letter; False when it was gone (another retry took it)."""
    return bool(await redis.xdel(keys.dead_letters(), entry_id))
