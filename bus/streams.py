"""Consumer-group plumbing shared by the worker: groups, reads, claims, acks (and the dead
letters of :mod:`bus.dead_letters`, re-exported)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from bus._replies import Entry, autoclaim_entries, read_reply
from bus.dead_letters import (
    dead_letter,
    get_dead_letter,
    list_dead_letters,
    move_dead_letters,
    stage_dead_letter,
    take_dead_letter,
    trim_dead_letters,
)
from bus.scripts import LuaScript

__all__ = (
    "GROUP",
    "NEXT_ENTRY_LUA",
    "NextOrReleased",
    "ack_and_delete",
    "ack_signal",
    "claim_stale",
    "claim_stale_from",
    "dead_letter",
    "deliveries_of",
    "ensure_group",
    "entry_of",
    "get_dead_letter",
    "give_back",
    "list_dead_letters",
    "move_dead_letters",
    "next_entry",
    "next_or_release",
    "read_group",
    "read_ready",
    "release_and_ack",
    "stage_ack",
    "stage_dead_letter",
    "take_dead_letter",
    "touch",
    "touch_many",
    "trim_dead_letters",
    "undeliver",
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


# A Lua function: acknowledge and delete an entry if it is pending on that consumer (1 if so).
_ACK_IF_OWNED_LUA = """
local function ack_if_owned(stream, group, id, consumer)
  if redis.call('XPENDING', stream, group, id, id, 1, consumer)[1] then
    redis.call('XACK', stream, group, id)
    redis.call('XDEL', stream, id)
    return 1
  end
  return 0
end
"""

# KEYS: streams (one Redis, not a cluster: any slots). ARGV: the group, the consumer, how many
# entries at most, how many entries to acknowledge first (if still pending on the consumer),
# then each one's stream (its index in KEYS) and id. Reads new entries from the streams in
# order until that many; returns {stream, id, {field, value, ...}} triples, flattened.
_SWEEP = LuaScript(
    _ACK_IF_OWNED_LUA
    + """
for a = 0, tonumber(ARGV[4]) - 1 do
  ack_if_owned(KEYS[tonumber(ARGV[5 + 2 * a])], ARGV[1], ARGV[6 + 2 * a], ARGV[2])
end
local out, left = {}, tonumber(ARGV[3])
for _, stream in ipairs(KEYS) do
  if left <= 0 then break end
  local read = redis.call(
    'XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', left, 'STREAMS', stream, '>')
  if read then
    for _, entry in ipairs(read[1][2]) do
      out[#out + 1] = stream
      out[#out + 1] = entry[1]
      out[#out + 1] = entry[2]
      left = left - 1
    end
  end
end
return out
"""
)

# How long a worker on a cluster blocks on one ready shard before it sweeps them all again.
CLUSTER_BLOCK_MS = 50


async def read_ready(
    redis: aioredis.Redis,
    streams: Sequence[str],
    consumer: str,
    *,
    count: int,
    block_ms: int | None,
    start: int = 0,
    acks: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, Entry]]:
    """Up to ``count`` new entries (with the stream of each) from ``streams`` (the ready
    shards), looked at from ``streams[start]`` on so that no shard is always served last;
    when all are empty, blocks up to ``block_ms`` for the next one. ``acks``: entries
    (stream, id) to acknowledge first, as :func:`ack_signal` does (on one Redis in the same
    round trip).

    One Redis: one script sweeps them all, then one XREADGROUP blocks on them all (it wakes
    with the one stream that got an entry). A cluster cannot read streams of several slots in
    one command: one read per shard, then a block of at most :data:`CLUSTER_BLOCK_MS` on one
    shard (the next call sweeps all again), so an entry waits that long at most when idle.
    That polls: a long-running worker on a cluster blocks on every shard at once with
    :mod:`bus.shard_reads` instead (a burst worker, soon gone when idle, reads here).
    """
    order = [*streams[start % len(streams) :], *streams[: start % len(streams)]]
    taken: list[tuple[str, Entry]] = []
    position = {stream: i + 1 for i, stream in enumerate(order)}
    alone = [a for a in acks if isinstance(redis, RedisCluster) or a[0] not in position]
    for stream, entry_id in alone:
        await ack_signal(redis, stream, entry_id, consumer=consumer)
    if isinstance(redis, RedisCluster):
        for stream in order:
            want = count - len(taken)
            found = await read_group(redis, stream, consumer, count=want, block_ms=None)
            taken += [(stream, entry) for entry in found]
            if len(taken) >= count:
                return taken
    else:
        swept = [(position[s], i) for s, i in acks if s in position]
        flat = await _SWEEP(
            redis, order, [GROUP, consumer, count, len(swept), *(x for a in swept for x in a)]
        )
        for i in range(0, len(flat), 3):
            raw = flat[i + 2]
            fields = {bytes(raw[j]): bytes(raw[j + 1]) for j in range(0, len(raw), 2)}
            taken.append((_str(flat[i]), (_str(flat[i + 1]), fields)))
    if taken or block_ms is None:
        return taken
    if isinstance(redis, RedisCluster):
        wait_ms = min(block_ms, CLUSTER_BLOCK_MS)
        found = await read_group(redis, order[0], consumer, count=1, block_ms=wait_ms)
        return [(order[0], entry) for entry in found]
    raw = await redis.xreadgroup(
        GROUP, consumer, dict.fromkeys(order, ">"), count=1, block=block_ms
    )
    taken = [(_str(stream), entry) for stream, items in read_reply(raw) for entry in items]
    # Entries that came in between the sweep and the block are served at once from every
    # stream that has one: those past ``count`` go back, as new entries, for others to take.
    for stream, entry in taken[count:]:
        await give_back(redis, stream, entry)
    return taken[:count]


async def give_back(redis: aioredis.Redis, stream: str, entry: Entry) -> None:
    """Hand back an entry read from ``stream`` that will not be served: it is added again as a
    new entry, for any consumer to take, and the old one acknowledged and deleted (one step:
    never lost or doubled)."""
    entry_id, fields = entry
    await _GIVE_BACK(redis, [stream], [GROUP, entry_id, *(x for kv in fields.items() for x in kv)])


# KEYS: a stream. ARGV: the group, an entry id, its fields and values. Adds the entry again as
# a new one and acknowledges and deletes the old (one slot, one step: never lost or doubled).
_GIVE_BACK = LuaScript("""
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
""")


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# A Lua function: the stream's next entry ({id, {field, value, ...}}) for a consumer, or false;
# with ``claim``, a pending entry of any consumer first (others' work left behind), else a new one.
# A claimed entry carries a third element: its delivery count (this delivery included), which
# the claim raised; a new entry is on its first (see deliveries_of).
NEXT_ENTRY_LUA = """
local function next_entry(stream, group, consumer, claim)
  if claim then
    local claimed = redis.call('XAUTOCLAIM', stream, group, consumer, 0, '0-0', 'COUNT', 1)
    for _, entry in ipairs(claimed[2]) do
      if entry then
        local pending = redis.call('XPENDING', stream, group, entry[1], entry[1], 1)[1]
        if pending then entry[3] = pending[4] end
        return entry
      end
    end
  end
  local read = redis.call(
    'XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', stream, '>')
  if read then return read[1][2][1] end
  return false
end
"""

# KEYS: the stream. ARGV: group, consumer, '1' to claim others' pending entries first.
# Returns one entry ({id, {field, value, ...}}) or nil.
_NEXT = LuaScript(NEXT_ENTRY_LUA + "return next_entry(KEYS[1], ARGV[1], ARGV[2], ARGV[3] == '1')")

# KEYS: an agent's inbox, its record, its lease (one slot). ARGV: group, consumer, '1' to claim
# pending entries first, the lease's value. Returns {entry, the record}; when the inbox has no
# entry for the consumer, releases the lease (if it still holds that value) and returns
# {false, false, how many entries the inbox holds}.
_NEXT_OR_RELEASE = LuaScript(
    NEXT_ENTRY_LUA
    + """
local entry = next_entry(KEYS[1], ARGV[1], ARGV[2], ARGV[3] == '1')
if entry then return {entry, redis.call('GET', KEYS[2])} end
if redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
return {false, false, redis.call('XLEN', KEYS[1])}
"""
)


def entry_of(raw: Any) -> Entry | None:
    """An entry as the scripts above return it ({id, {field, value, ...}[, deliveries]}, or
    nil)."""
    if not raw:
        return None
    entry_id, flat = raw[0], raw[1]
    fields = {bytes(flat[i]): bytes(flat[i + 1]) for i in range(0, len(flat), 2)}
    return (entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)), fields


def deliveries_of(raw: Any) -> int:
    """How many times the entry that ``next_entry`` returned (``raw``, as :func:`entry_of`
    reads it) has been delivered, this time included: Redis counts them in the group's
    pending list (a claim adds one); an entry read new is on its first."""
    return int(raw[2]) if raw and len(raw) > 2 else 1


async def next_entry(
    redis: aioredis.Redis, stream: str, consumer: str, *, claim: bool
) -> Entry | None:
    """The stream's next entry for ``consumer``, in one round trip: with ``claim``, a pending
    entry of any consumer first (the stream's owner holds a lease that says its previous
    reader is gone), else a new one. None when there is none."""
    return entry_of(await _NEXT(redis, [stream], [GROUP, consumer, "1" if claim else "0"]))


class NextOrReleased(NamedTuple):
    """What :func:`next_or_release` found: an entry and the agent's record, or (``entry``
    None) the lease released and how many entries the inbox holds."""

    entry: Entry | None
    record: bytes | None
    left: int
    deliveries: int = 1  # the entry's, this one included (see deliveries_of)


async def next_or_release(
    redis: aioredis.Redis,
    inbox: str,
    record_key: str,
    lease_key: str,
    lease_value: str,
    *,
    consumer: str,
    claim: bool,
) -> NextOrReleased:
    """The inbox's next entry for ``consumer`` (as :func:`next_entry`) with the agent's record
    (``record_key``), in one round trip; when there is none, the lease is released in the same
    step (if it still holds ``lease_value``: a lost lease is left alone)."""
    found = await _NEXT_OR_RELEASE(
        redis, [inbox, record_key, lease_key], [GROUP, consumer, "1" if claim else "0", lease_value]
    )
    entry = entry_of(found[0])
    if entry is None:
        return NextOrReleased(None, None, int(found[2]))
    return NextOrReleased(entry, found[1], 0, deliveries_of(found[0]))


# KEYS: a lease, an inbox (one agent's slot). ARGV: the lease's value ('' = leave the lease
# alone). Returns how many entries the inbox holds.
_RELEASE = LuaScript("""
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('XLEN', KEYS[2])
""")

# KEYS: a stream. ARGV: the group, an entry id, the consumer. Acknowledges and deletes the
# entry if it is pending on that consumer; returns 1 if so, else 0.
_ACK_IF_OWNED = LuaScript(
    _ACK_IF_OWNED_LUA + "return ack_if_owned(KEYS[1], ARGV[1], ARGV[2], ARGV[3])"
)


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
    """Done with an agent: release its lease if it still holds ``lease_value`` (None: lost,
    leave it), acknowledge and delete the signal ``entry_id`` of ``stream`` if it is still
    pending on ``consumer``, and return whether it was, and how many entries ``inbox`` still
    holds.

    Two single-slot steps (the lease and inbox are in the agent's slot, the signal in a ready
    shard's), the release first: a crash between them leaves the signal pending on a dead
    consumer, reclaimed after a lease time by a worker that finds the lease free and drains
    the inbox (a spare look, nothing lost). The other order could leave the lease held and the
    signal gone, and work that arrived meanwhile with no signal.

    A signal pending on another consumer was reclaimed from this one (its lease lapsed): the
    new owner acknowledges it when done; acknowledged here, it could never be reclaimed again
    if that owner died.
    """
    left = await _RELEASE(redis, [lease_key, inbox], [lease_value or ""])
    return await ack_signal(redis, stream, entry_id, consumer=consumer), int(left)


async def ack_signal(redis: aioredis.Redis, stream: str, entry_id: str, *, consumer: str) -> bool:
    """Acknowledge and delete ``entry_id`` of ``stream`` if it is still pending on ``consumer``
    (see :func:`release_and_ack`, which runs it after the lease's release); whether it was."""
    return bool(await _ACK_IF_OWNED(redis, [stream], [GROUP, entry_id, consumer]))


def stage_ack(pipe: Any, stream: str, *entry_ids: str) -> None:
    """Acknowledge and delete entries inside the caller's commit."""
    pipe.xack(stream, GROUP, *entry_ids)
    pipe.xdel(stream, *entry_ids)


async def touch(redis: aioredis.Redis, stream: str, consumer: str, *entry_ids: str) -> None:
    """Reset entries' idle time so that no one reclaims work that is still in progress."""
    if entry_ids:
        await redis.xclaim(stream, GROUP, consumer, 0, list[Any](entry_ids), justid=True)


async def touch_many(
    redis: aioredis.Redis, consumer: str, held: Mapping[str, Sequence[str]]
) -> None:
    """:func:`touch` for the entries of several streams (stream -> entry ids), pipelined."""
    if not any(held.values()):
        return
    async with redis.pipeline(transaction=False) as pipe:
        for stream, entry_ids in held.items():
            if entry_ids:
                pipe.xclaim(stream, GROUP, consumer, 0, list[Any](entry_ids), justid=True)
        await pipe.execute()


# KEYS: the stream. ARGV: the group, then entry ids.
_ACK_DELETE = LuaScript("""
local ids = {unpack(ARGV, 2)}
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
return redis.call('XDEL', KEYS[1], unpack(ids))
""")


async def undeliver(
    redis: aioredis.Redis, stream: str, consumer: str, entry_id: str, deliveries: int
) -> None:
    """Take back a delivery of a pending entry that its consumer will not work on: its
    delivery count goes back to ``deliveries - 1`` (it stays pending on ``consumer``)."""
    await redis.xclaim(
        stream, GROUP, consumer, 0, [entry_id], retrycount=max(0, deliveries - 1), justid=True
    )


async def ack_and_delete(redis: aioredis.Redis, stream: str, *entry_ids: str) -> None:
    """Acknowledge and remove entries: processed work leaves the stream (bounded memory)."""
    if entry_ids:
        await _ACK_DELETE(redis, [stream], [GROUP, *entry_ids])
