"""Consumer-group plumbing shared by the worker: groups, reads, claims, acks, dead letters."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bus import keys, recent_errors
from bus._replies import Entry, autoclaim_entries, entries, read_reply
from bus.lease import WatchConflict, sha1
from bus.scripts import LuaScript

__all__ = (
    "GROUP",
    "ack_and_delete",
    "claim_stale",
    "claim_stale_from",
    "dead_letter",
    "ensure_group",
    "get_dead_letter",
    "list_dead_letters",
    "next_entry",
    "read_group",
    "release_and_ack",
    "stage_ack",
    "stage_dead_letter",
    "take_dead_letter",
    "touch",
    "trim_dead_letters",
)

GROUP = "workers"
DLQ_MAXLEN = 100_000  # the default cap of the dead-letter stream (WorkerSettings.dead_letter_cap)


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
    """Pending entries idle longer than ``min_idle_ms`` (their consumer died), now ours.

    Looks at the front of the pending list only (XAUTOCLAIM scans about ``10 x count``
    entries): to reach entries behind live ones, follow the cursor with
    :func:`claim_stale_from`.
    """
    found = await claim_stale_from(
        redis, stream, consumer, "0-0", min_idle_ms=min_idle_ms, count=count
    )
    return found[1]


async def claim_stale_from(
    redis: aioredis.Redis,
    stream: str,
    consumer: str,
    start: str,
    *,
    min_idle_ms: int,
    count: int,
) -> tuple[str, list[Entry]]:
    """Like :func:`claim_stale` from the pending entry ``start`` on; returns the cursor to
    pass next time (``"0-0"`` once the end was reached) and the entries claimed.

    One call looks at about ``10 x count`` pending entries: a caller asking for few entries
    at a time (a worker with one free slot) reaches the back of a long pending list only by
    carrying the cursor from call to call.
    """
    raw = await redis.xautoclaim(stream, GROUP, consumer, min_idle_ms, start, count=count)
    return autoclaim_entries(raw)


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
# group, an entry id of the stream, the consumer releasing. Returns {1 when the entry was
# acknowledged (0: pending on another consumer, left alone), how many entries the inbox holds}.
_RELEASE_ACK = LuaScript("""
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local acked = 0
if redis.call('XPENDING', KEYS[2], ARGV[2], ARGV[3], ARGV[3], 1, ARGV[4])[1] then
  redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
  redis.call('XDEL', KEYS[2], ARGV[3])
  acked = 1
end
return {acked, redis.call('XLEN', KEYS[3])}
""")


async def release_and_ack(
    redis: aioredis.Redis,
    lease_key: str,
    lease_value: str | None,
    stream: str,
    entry_id: str,
    inbox: str,
    *,
    consumer: str,
) -> tuple[bool, int]:
    """Done with an agent, in one round trip: release its lease if it still holds
    ``lease_value`` (None: lost, leave it), acknowledge and delete the signal ``entry_id`` of
    ``stream`` if it is still pending on ``consumer``, and return whether it was, and how many
    entries ``inbox`` still holds.

    A signal pending on another consumer was reclaimed from this one (its lease lapsed): the
    new owner acknowledges it when done; acknowledged here, it could never be reclaimed again
    if that owner died.
    """
    acked, left = await _RELEASE_ACK(
        redis, [lease_key, stream, inbox], [lease_value or "", GROUP, entry_id, consumer]
    )
    return bool(acked), int(left)


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
    run failed): a dead letter exists exactly when its run failed. Trim afterwards. It also
    goes to the recent errors (:mod:`bus.recent_errors`)."""
    pipe.xadd(keys.dead_letters(), _dead_letter_fields(agent_id, run_id, envelope, error, attempts))
    recent_errors.stage(pipe, kind="dead_letter", agent_id=agent_id, run_id=run_id, message=error)


async def dead_letter(
    redis: aioredis.Redis, *, agent_id: str, run_id: str, envelope: bytes, error: str, attempts: int
) -> str:
    """Park a message that has no run to fail (an undecodable envelope); returns its id."""
    async with redis.pipeline(transaction=True) as pipe:
        stage_dead_letter(
            pipe,
            agent_id=agent_id,
            run_id=run_id,
            envelope=envelope,
            error=error,
            attempts=attempts,
        )
        entry_id, _recent = await pipe.execute()
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


# KEYS: the dead letters, then the expected keys. ARGV: the entry id, how many expected keys,
# each one's SHA1 ('' = must not exist), then one JSON array of commands. Checks first, then
# the commands, then the entry goes: all or nothing. Returns {1}, {0} (no such entry: taken
# already) or {-1, key} (an expected key changed).
_TAKE = LuaScript("""
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return {0} end
local expected = tonumber(ARGV[2])
for k = 1, expected do
  local value = redis.call('GET', KEYS[k + 1])
  local seen = value and redis.sha1hex(value) or ''
  if seen ~= ARGV[k + 2] then return {-1, KEYS[k + 1]} end
end
for _, command in ipairs(cjson.decode(ARGV[expected + 3])) do
  redis.call(unpack(command))
end
redis.call('XDEL', KEYS[1], ARGV[1])
return {1}
""")

_commands = msgspec.json.Encoder()


async def take_dead_letter(
    redis: aioredis.Redis,
    entry_id: str,
    *,
    commands: Sequence[Sequence[str | bytes | int]],
    expect: Mapping[str, bytes | None],
) -> bool:
    """Remove one dead letter together with ``commands`` (the writes that re-queue it), in one
    script: a retry can neither lose the message (deleted, not re-queued) nor queue it twice.

    ``expect`` maps keys to the value the caller read (None: missing), as in
    :func:`bus.lease.fenced`. Values in ``commands`` must be UTF-8 text. Returns False when the
    entry is gone (another retry took it).

    Raises:
        WatchConflict: an expected key changed since it was read: re-read and retry.
    """
    payload = _commands.encode(
        [[a.decode() if isinstance(a, bytes) else str(a) for a in command] for command in commands]
    )
    outcome = await _TAKE(
        redis,
        [keys.dead_letters(), *expect],
        [entry_id, len(expect), *(sha1(v) for v in expect.values()), payload],
    )
    if outcome[0] == -1:
        changed = outcome[1].decode() if isinstance(outcome[1], bytes) else outcome[1]
        raise WatchConflict(f"{changed} changed while dead letter {entry_id} was retried; retry")
    return bool(outcome[0])
