"""Consumer-group plumbing shared by the worker: groups, reads, claims, acks, dead letters."""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bus import keys
from bus._replies import Entry, autoclaim_entries, entries, read_reply
from bus.scripts import LuaScript

__all__ = (
    "GROUP",
    "ack_and_delete",
    "claim_stale",
    "dead_letter",
    "ensure_group",
    "list_dead_letters",
    "next_entry",
    "read_group",
    "release_and_ack",
    "stage_ack",
    "take_dead_letter",
    "touch",
)

GROUP = "workers"
DLQ_MAXLEN = 100_000


async def ensure_group(redis: aioredis.Redis, stream: str) -> None:
    """Create the workers' consumer group on ``stream`` (from its start) if it is missing."""
    try:
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def read_group(
    redis: aioredis.Redis, stream: str, consumer: str, *, count: int, block_ms: int | None
) -> list[Entry]:
    """New entries for ``consumer`` (``>``), blocking up to ``block_ms``."""
    raw = await redis.xreadgroup(GROUP, consumer, {stream: ">"}, count=count, block=block_ms)
    return [entry for _stream, items in read_reply(raw) for entry in items]


async def claim_stale(
    redis: aioredis.Redis, stream: str, consumer: str, *, min_idle_ms: int, count: int
) -> list[Entry]:
    """Pending entries idle longer than ``min_idle_ms`` (their consumer died), now ours."""
    raw = await redis.xautoclaim(stream, GROUP, consumer, min_idle_ms, "0-0", count=count)
    return autoclaim_entries(raw)[1]


# KEYS: the stream. ARGV: group, consumer, '1' to claim others' pending entries first.
# Returns one entry ({id, {field, value, ...}}) or nil.
_NEXT = LuaScript("""
if ARGV[3] == '1' then
  local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, '0-0', 'COUNT', 1)
  for _, entry in ipairs(claimed[2]) do
    if entry then return entry end
  end
end
local read = redis.call(
  'XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
if read then return read[1][2][1] end
return false
""")


async def next_entry(
    redis: aioredis.Redis, stream: str, consumer: str, *, claim: bool
) -> Entry | None:
    """The stream's next entry for ``consumer``, in one round trip: with ``claim``, a pending
    entry of any consumer first (the stream's owner holds a lease that says its previous
    reader is gone), else a new one. None when there is none."""
    raw = await _NEXT(redis, [stream], [GROUP, consumer, "1" if claim else "0"])
    if not raw:
        return None
    entry_id, flat = raw[0], raw[1]
    fields = {bytes(flat[i]): bytes(flat[i + 1]) for i in range(0, len(flat), 2)}
    return (entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)), fields


# KEYS: a lease, a stream, an inbox. ARGV: the lease's value ('' = leave the lease alone), the
# group, an entry id of the stream. Returns how many entries the inbox holds.
_RELEASE_ACK = LuaScript("""
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
return redis.call('XLEN', KEYS[3])
""")


async def release_and_ack(
    redis: aioredis.Redis,
    lease_key: str,
    lease_value: str | None,
    stream: str,
    entry_id: str,
    inbox: str,
) -> int:
    """Done with an agent, in one round trip: release its lease if it still holds
    ``lease_value`` (None: lost, leave it), acknowledge and delete the signal ``entry_id`` of
    ``stream``, and return how many entries ``inbox`` still holds."""
    left = await _RELEASE_ACK(
        redis, [lease_key, stream, inbox], [lease_value or "", GROUP, entry_id]
    )
    return int(left)


def stage_ack(pipe: Any, stream: str, *entry_ids: str) -> None:
    """Acknowledge and delete entries inside the caller's commit."""
    pipe.xack(stream, GROUP, *entry_ids)
    pipe.xdel(stream, *entry_ids)


async def touch(redis: aioredis.Redis, stream: str, consumer: str, *entry_ids: str) -> None:
    """Reset entries' idle time so that no one reclaims work that is still in progress."""
    if entry_ids:
        await redis.xclaim(stream, GROUP, consumer, 0, list[Any](entry_ids), justid=True)


# KEYS: the stream. ARGV: the group, then entry ids.
_ACK_DELETE = LuaScript("""
local ids = {unpack(ARGV, 2)}
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
return redis.call('XDEL', KEYS[1], unpack(ids))
""")


async def ack_and_delete(redis: aioredis.Redis, stream: str, *entry_ids: str) -> None:
    """Acknowledge and remove entries: processed work leaves the stream (bounded memory)."""
    if entry_ids:
        await _ACK_DELETE(redis, [stream], [GROUP, *entry_ids])


async def dead_letter(
    redis: aioredis.Redis, *, agent_id: str, run_id: str, envelope: bytes, error: str, attempts: int
) -> str:
    """Park a message that keeps failing, with its error; returns the dead-letter id."""
    entry_id = await redis.xadd(
        keys.dead_letters(),
        {
            "agent_id": agent_id,
            "run_id": run_id,
            "envelope": envelope,
            "error": error,
            "attempts": str(attempts),
            "at": str(time.time()),
        },
        maxlen=DLQ_MAXLEN,
        approximate=True,
    )
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


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


async def take_dead_letter(redis: aioredis.Redis, entry_id: str) -> dict[str, Any] | None:
    """Remove and return one dead letter (for a retry)."""
    found = entries(await redis.xrange(keys.dead_letters(), entry_id, entry_id))
    if not found:
        return None
    await redis.xdel(keys.dead_letters(), entry_id)
    return _row(found[0])
