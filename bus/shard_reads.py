"""The ready shards of a Redis Cluster read without polling (:func:`shard_reads`).

A cluster cannot block on streams of several hash slots in one command, so each shard gets a
blocking XREADGROUP of its own (redis-py gives each command in flight a connection of its
own). A read stays in flight from one :meth:`ShardReads.read` to the next: it ends when its
shard gets entries or after ``block_ms``, and is sent again while the caller has free slots.
An idle worker thus sends one command per shard per ``block_ms``, and a signal landing on any
shard is taken as soon as it lands.

Reads in flight together may bring more entries than the caller has free slots: the rest are
given back at once (:func:`bus.streams.give_back`: added again as new entries, the old ones
removed, in one step) for any worker to take. That takes a burst of signals meeting a worker
with less room than there are shards: while the shards hold entries they are swept one after
another, without blocking, up to the caller's count; blocking reads start only once all were
found empty, each for a share of the free slots.

Cancelling a blocked read drops its connection, and an entry the server handed over just
before is left pending on this consumer with no one to serve it. So reads are cancelled only
when the reads stop (the worker stops) or when one outlives its block by far (a silent
network); the shard of each is then looked at and what the cut read took is given back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import redis.asyncio as aioredis
import structlog
from anyio.abc import TaskGroup
from redis.exceptions import RedisError

from bus._replies import Entry, read_reply
from bus.scripts import LuaScript
from bus.streams import GROUP, give_back

__all__ = ("ShardReads", "shard_reads")

_log = structlog.get_logger("memgrid.redis")

_LATE_S = 5.0  # how long past its block a read may stay unanswered before it is cut

# KEYS: a stream. ARGV: the group, a consumer, where to look from ('-', or '(' and the last id
# the consumer is known to have read). Entries pending on the consumer from there on that were
# delivered once (a cut read's; one reclaimed from another consumer was delivered twice) are
# added again as new entries and the old ones removed. Returns how many.
_GIVE_BACK_CUT = LuaScript("""
local back = 0
for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], '+', 100, ARGV[2])) do
  if tonumber(p[4]) == 1 then
    local entry = redis.call('XRANGE', KEYS[1], p[1], p[1])[1]
    if entry then redis.call('XADD', KEYS[1], '*', unpack(entry[2])) end
    redis.call('XACK', KEYS[1], ARGV[1], p[1])
    redis.call('XDEL', KEYS[1], p[1])
    back = back + 1
  end
end
return back
""")


def _entries(raw: object) -> list[Entry]:
    """The entries of an XREADGROUP reply on one stream."""
    return [entry for _stream, items in read_reply(raw) for entry in items]


class ShardReads:
    """Reads of the ready shards (``streams``) of a cluster for one consumer, blocking reads
    kept in flight between calls of :meth:`read`; made by :func:`shard_reads`."""

    def __init__(
        self,
        redis: aioredis.Redis,
        streams: Sequence[str],
        consumer: str,
        tg: TaskGroup,
        *,
        block_ms: int,
    ) -> None:
        self._redis, self._streams, self._consumer = redis, list(streams), consumer
        self._tg, self._block_ms = tg, block_ms
        self._want = 0  # how many entries the caller takes now or with its next read
        self._got: list[tuple[str, Entry]] = []  # read, not handed over yet (never > _want)
        self._arrived = anyio.Event()
        self._reading: set[str] = set()  # shards with a read task
        self._blocked: set[str] = set()  # shards whose read waits on the server right now
        self._seen: dict[str, str] = {}  # shard -> the last entry id read there
        self._errors: list[RedisError] = []
        self._stopped = False

    async def read(self, count: int, *, start: int = 0) -> list[tuple[str, Entry]]:
        """Up to ``count`` new entries (with the shard of each): those that blocked reads
        brought meanwhile, then from the shards with no read in flight, swept from
        ``streams[start]`` on; when none has any, blocks up to ``block_ms`` for the next.
        After it returns, entries are taken in for the slots it left free (``count`` minus
        what it returned: the caller reads again soon while it has free slots)."""
        if self._errors:
            error, self._errors = self._errors[0], []
            raise error
        self._want = count
        await self._trim()
        taken = self._take()
        order = [*self._streams[start % len(self._streams) :]]
        order += self._streams[: start % len(self._streams)]
        try:
            for stream in order:
                if self._want <= 0:
                    break
                if stream not in self._reading:
                    self._blocked.add(stream)  # (cut, it is looked at as a blocked read is)
                    found = _entries(await self._read_group(stream, self._want, None))
                    self._blocked.discard(stream)
                    self._note(stream, found)
                    taken += [(stream, entry) for entry in found]
                    self._want -= len(found)
                taken += self._take()
        except RedisError:  # what was taken is handed over by the next read
            self._got[:0] = taken
            self._want += len(taken)
            raise
        if not taken:
            # Every shard was empty: watch each with a blocking read, and wait for the first.
            self._arrived = anyio.Event()
            share = max(1, count // len(self._streams))
            for stream in order:
                if stream not in self._reading:
                    self._reading.add(stream)
                    self._tg.start_soon(self._watch, stream, share)
            if not self._got and not self._errors and not self._stopped:
                with anyio.move_on_after(self._block_ms / 1000):
                    await self._arrived.wait()
            taken = self._take()
            if not taken and self._errors:
                error, self._errors = self._errors[0], []
                raise error
        await self._trim()  # reads that answered during a sweep, for slots it then filled
        return taken

    async def _read_group(self, stream: str, count: int, block_ms: int | None) -> object:
        """XREADGROUP of new entries of one shard (routed by its key: see
        :class:`bus.connection._Cluster`, which reads it from the command)."""
        return await self._redis.xreadgroup(
            GROUP, self._consumer, {stream: ">"}, count=count, block=block_ms
        )

    def stop(self) -> None:
        """The caller stops: a :meth:`read` waiting now, or later, returns what it has."""
        self._stopped = True
        self._arrived.set()

    def _take(self) -> list[tuple[str, Entry]]:
        """What blocked reads brought, as far as the caller has room."""
        room = max(0, self._want)
        got, self._got = self._got[:room], self._got[room:]
        self._want -= len(got)
        return got

    async def _trim(self) -> None:
        """Give back what blocked reads brought beyond the caller's room."""
        room = max(0, self._want)
        extra, self._got = self._got[room:], self._got[:room]
        await self._give_back(extra)

    def _note(self, stream: str, found: list[Entry]) -> None:
        if found:  # ids grow: what this consumer read of the shard is at or below this one
            self._seen[stream] = found[-1][0]

    async def _watch(self, stream: str, count: int) -> None:
        """One shard's blocking reads, while the caller has room for what they bring."""
        try:
            while True:
                self._blocked.add(stream)
                with anyio.move_on_after(self._block_ms / 1000 + _LATE_S) as late:
                    raw = await self._read_group(stream, count, self._block_ms)
                if late.cancelled_caught:  # its connection is gone: what did it take?
                    await self._give_back_cut(stream)
                    self._blocked.discard(stream)
                    return
                self._blocked.discard(stream)
                found = _entries(raw)
                self._note(stream, found)
                room = max(0, self._want - len(self._got))
                self._got += [(stream, entry) for entry in found[:room]]
                if found[:room]:
                    self._arrived.set()
                await self._give_back([(stream, entry) for entry in found[room:]])
                if self._want - len(self._got) <= 0:
                    return  # the caller is full: the next read sweeps this shard
                count = max(1, self._want // len(self._streams))
        except RedisError as exc:  # the caller's next read raises it (an outage, NOGROUP...)
            # (The shard stays among the blocked: a read whose reply was lost may have taken
            # entries, looked for when the reads stop.)
            self._errors.append(exc)
            self._arrived.set()
        finally:
            self._reading.discard(stream)

    async def _give_back(self, entries: Sequence[tuple[str, Entry]]) -> None:
        with anyio.CancelScope(shield=True):  # cut, an entry could be given back twice
            for stream, entry in entries:
                await give_back(self._redis, stream, entry)
        if entries:
            _log.debug("ready_given_back", consumer=self._consumer, entries=len(entries))

    async def _give_back_cut(self, stream: str) -> None:
        seen = self._seen.get(stream)
        await _GIVE_BACK_CUT(
            self._redis, [stream], [GROUP, self._consumer, f"({seen}" if seen else "-"]
        )

    async def close(self) -> None:
        """Give back what was read and not handed over, and what reads cut by the stop
        took (called by :func:`shard_reads` once its reads are cancelled)."""
        got, self._got = self._got, []
        try:
            await self._give_back(got)
            for stream in sorted(self._blocked):
                await self._give_back_cut(stream)
        except RedisError as exc:  # left pending: reclaimed after a lease, as after a crash
            _log.warning("ready_not_given_back", consumer=self._consumer, error=repr(exc))
        self._blocked.clear()


@asynccontextmanager
async def shard_reads(
    redis: aioredis.Redis, streams: Sequence[str], consumer: str, *, block_ms: int
) -> AsyncIterator[ShardReads]:
    """:class:`ShardReads` of ``streams`` for ``consumer`` (on a cluster), blocking up to
    ``block_ms`` a read; on exit the reads in flight are cancelled and what they or the
    reads before them took and did not hand over is given back."""
    reads: ShardReads | None = None
    try:
        async with anyio.create_task_group() as tg:
            reads = ShardReads(redis, streams, consumer, tg, block_ms=block_ms)
            try:
                yield reads
            finally:
                tg.cancel_scope.cancel()
    finally:
        if reads is not None:
            with anyio.CancelScope(shield=True):
                await reads.close()
