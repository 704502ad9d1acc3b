"""Recent errors, for the dashboard's operations view: a capped stream (``XADD MAXLEN ~``) of
what went wrong in the workers: a model call that failed after its retries (``model_<kind>``),
a tool that raised or refused (``tool``), a tool stopped by a sandbox limit
(``sandbox_limit``), a dead letter (``dead_letter``); each with its agent, run, time and a
short message.

An entry is an observation, not a record of truth: it is written next to the handling of the
error (a step that is re-run may write its tool error twice), and a failure to write it (Redis
away) never changes how the error itself is handled. The counters operators alert on stay in
``GET /metrics``.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bus import keys
from bus._replies import entries

__all__ = ("MAX_ERRORS", "MESSAGE_CHARS", "RecentError", "read_errors", "record_error", "stage")

MAX_ERRORS = 1000
"""About how many entries the stream keeps (approximate trimming: a little more)."""
MESSAGE_CHARS = 500


class RecentError(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    agent_id: str
    run_id: str
    message: str
    at: float


def _fields(kind: str, agent_id: str, run_id: str, message: str) -> dict[Any, Any]:
    short = message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 1] + "…"
    return {
        "kind": kind,
        "agent_id": agent_id,
        "run_id": run_id,
        "message": short,
        "at": repr(time.time()),
    }


def stage(pipe: Any, *, kind: str, agent_id: str, run_id: str, message: str) -> None:
    """Add the entry to the caller's pipeline or transaction."""
    pipe.xadd(
        keys.recent_errors(),
        _fields(kind, agent_id, run_id, message),
        maxlen=MAX_ERRORS,
        approximate=True,
    )


async def record_error(
    redis: aioredis.Redis, *, kind: str, agent_id: str, run_id: str, message: str
) -> bool:
    """Write one entry; False (nothing else) when Redis cannot take it now."""
    try:
        await redis.xadd(
            keys.recent_errors(),
            _fields(kind, agent_id, run_id, message),
            maxlen=MAX_ERRORS,
            approximate=True,
        )
    except (RedisError, OSError):
        return False
    return True


def _text(value: bytes) -> str:
    return value.decode(errors="replace")


async def read_errors(redis: aioredis.Redis, *, count: int = 20) -> list[RecentError]:
    """The newest ``count`` entries, newest first."""
    found = []
    for entry_id, fields in entries(await redis.xrevrange(keys.recent_errors(), count=count)):
        row = {_text(k): _text(v) for k, v in fields.items()}
        try:
            at = float(row.get("at", ""))
        except ValueError:
            at = 0.0
        found.append(
            RecentError(
                id=str(entry_id),
                kind=row.get("kind", ""),
                agent_id=row.get("agent_id", ""),
                run_id=row.get("run_id", ""),
                message=row.get("message", ""),
                at=at,
            )
        )
    return found
