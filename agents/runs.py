"""Submitting runs to agents' inboxes and following their events.

A submission is one Lua script, all or nothing: the run record, the client's ``otid`` (so a
retry gets the original run back, never a second one), the run id index, the agent's run list,
the agent's shard of the index of every agent's runs by creation time (trimmed to the runs'
retention as it grows), the inbox entry, the "ready" signal that tells the workers and, for a
run that another agent's message started, its entry in the root run's index of the runs it
caused. An error leaves nothing behind (a 5xx means nothing was stored), and a retry with the
same ``otid`` finds its run complete.

The script names every key it touches. On Redis Cluster the run id index, the agent's shard of
the index by creation time (in the slot of its ready shard), the ready shard and the root
run's caused-runs index have slots other than the agent's, and no script may span slots, so a
submission there is single-slot steps: the two indexes first, so that no stored run is missing
from them (an entry whose run was never stored finds no record: it expires, or readers skip it
until it is trimmed with the old runs), the script on the agent's slot, the caused-runs entry
(a crash before it only hides the run from its root's run view; an entry whose run was
withdrawn finds no record and is skipped by :meth:`RunStore.caused`), then the ready signal.
If the caused entry or the signal cannot be written, the submission is withdrawn
(:data:`_WITHDRAW`: the run, its otid, its inbox entry and its index entries go, unless a
worker already took the entry, which an earlier signal of the agent can make happen) and the
error raised: a 5xx still means nothing was stored, or, in that last case, the run is under
way and a retry with its ``otid`` gets it back. A retry whose ``otid`` finds its run signals it
again, which also covers a process that died before its signal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import cast

import anyio
import msgspec
import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster

from agents.letta_messages import Event, StopReason, UsageStatistics, event_decoder
from bus import keys as bus_keys
from bus import streams
from bus.envelopes import InboxMessage, RunRequest, encode_envelope
from bus.run_events import OPEN_TTL_S, follow, read_all
from storage import keys
from storage._util import mget
from storage.errors import Conflict, NotFound
from storage.records import ReplyTo, Run, decode, encode, new_id

__all__ = (
    "RunStore",
    "Submitted",
    "adopt_unsharded_signals",
    "live_workers",
    "retry_dead_letter",
    "signal_ready",
)

log = structlog.get_logger("memgrid.runs")

OTID_TTL_S = 24 * 3600
RUN_INDEX_TTL_S = 30 * 24 * 3600
# The runs one outside message may cause that its run view lists (the newest ones are kept).
MAX_CAUSED_RUNS = 1000

# KEYS: otid key (or run key when no otid), run key, inbox, agent runs zset, then on one Redis
# (not a cluster) the run index, the agent's ready shard, the root run's caused-runs zset
# (or the run key when no root) and the agent's shard of the index of runs by creation time.
# ARGV: has otid, run id, run json, envelope, otid ttl, created_at, group, agent id, index ttl,
# has root (and one Redis), most runs one root keeps, oldest creation time kept.
# Returns {run id, 1 when created, the inbox entry id} or {existing run id, 0}.
# The calls that can fail on a damaged key (a wrong type) come before any write that matters:
# an error stops the script, and what it wrote before stays, so only a harmless extra ready
# signal or a run-list entry without a record (skipped by readers) can be left by one.
_SUBMIT = """
if ARGV[1] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {existing, 0} end
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[3], ARGV[7], '0', 'MKSTREAM')
end
if KEYS[6] then redis.call('XADD', KEYS[6], '*', 'a', ARGV[8]) end
redis.call('ZADD', KEYS[4], tonumber(ARGV[6]), ARGV[2])
if KEYS[8] then
  redis.call('ZADD', KEYS[8], tonumber(ARGV[6]), ARGV[2] .. ' ' .. ARGV[8])
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', '(' .. ARGV[12])
end
local entry = redis.call('XADD', KEYS[3], '*', 'e', ARGV[4])
if ARGV[1] == '1' then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[5]))
end
redis.call('SET', KEYS[2], ARGV[3])
if KEYS[5] then redis.call('SET', KEYS[5], ARGV[8], 'EX', tonumber(ARGV[9])) end
if ARGV[10] == '1' then
  redis.call('ZADD', KEYS[7], tonumber(ARGV[6]), ARGV[8] .. ' ' .. ARGV[2])
  redis.call('ZREMRANGEBYRANK', KEYS[7], 0, -tonumber(ARGV[11]) - 1)
  redis.call('EXPIRE', KEYS[7], tonumber(ARGV[9]))
end
return {ARGV[2], 1, entry}
"""

# KEYS: the root run's caused-runs zset. ARGV: created_at, "agent-id run-id", most runs one
# root keeps, ttl. The submit script's last step, on its own slot (Redis Cluster).
_ADD_CAUSED = """
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]), ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[3]) - 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""

# KEYS: otid key (or run key), run key, inbox, agent runs zset (one agent's slot). ARGV: run
# id, inbox entry id, group, has otid. Removes a submission whose signal could not be written,
# unless a worker took its inbox entry already (it is pending, or was done and deleted).
# Returns 1 when withdrawn, 0 when under way.
_WITHDRAW = """
if #redis.call('XRANGE', KEYS[3], ARGV[2], ARGV[2]) == 0 then return 0 end
if #redis.call('XPENDING', KEYS[3], ARGV[3], ARGV[2], ARGV[2], 1) > 0 then return 0 end
redis.call('XDEL', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[1])
if ARGV[4] == '1' then redis.call('DEL', KEYS[1]) end
redis.call('DEL', KEYS[2])
return 1
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Submitted(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    agent_id: str
    created: bool


async def signal_ready(redis: aioredis.Redis, agent_id: str) -> None:
    """Tell the workers that ``agent_id`` has work in its inbox."""
    await redis.xadd(bus_keys.ready(agent_id), {"a": agent_id})


async def adopt_unsharded_signals(redis: aioredis.Redis, *, batch: int = 1000) -> int:
    """Signal again, on their agents' shards, the agents named in the one ready stream of the
    versions before the ready shards (:data:`bus.keys.UNSHARDED_READY`), and remove what was
    read: an upgraded deployment's messages would otherwise wait for a signal no worker reads.
    Every worker does it at start (one EXISTS when there is nothing); a signal given twice is
    harmless (the worker that takes it finds the inbox empty and acknowledges it). Returns how
    many agents were signalled."""
    key = bus_keys.UNSHARDED_READY
    if not await redis.exists(key):
        return 0
    signalled: set[str] = set()
    # Our clients read bytes (no decode_responses).
    while entries := cast(
        list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(key, count=batch)
    ):
        for agent_id in {f.get(b"a", b"").decode() for _, f in entries} - signalled - {""}:
            await signal_ready(redis, agent_id)
            signalled.add(agent_id)
        await redis.xdel(key, *(entry_id for entry_id, _ in entries))
    if signalled:
        log.info("unsharded_signals_adopted", agents=len(signalled))
    return len(signalled)


class RunStore:
    """Run records, submission and events.

    ``run_ttl_s`` is how long runs are kept (``Settings.run_ttl_s``): a submission trims the
    index of runs by creation time to the runs created since.
    """

    def __init__(self, redis: aioredis.Redis, *, run_ttl_s: float = RUN_INDEX_TTL_S) -> None:
        self._redis = redis
        self._run_ttl_s = run_ttl_s
        self._submit = redis.register_script(_SUBMIT)
        self._withdraw = redis.register_script(_WITHDRAW)
        self._add_caused = redis.register_script(_ADD_CAUSED)
        self._cluster = isinstance(redis, RedisCluster)

    async def submit(
        self,
        agent_id: str,
        messages: Sequence[InboxMessage],
        *,
        otid: str | None = None,
        reply_to: ReplyTo | None = None,
        hops: int = 0,
        wait_chain: Sequence[str] = (),
        max_steps: int | None = None,
        stream_tokens: bool = False,
        root_run_id: str | None = None,
    ) -> Submitted:
        """Queue a run; returns at once. A repeated ``otid`` returns the original run.

        ``reply_to``, ``hops``, ``wait_chain`` and ``root_run_id`` (the outside input's run
        that the chain started from) are set for messages between agents; ``max_steps`` caps
        this run's steps below the agent's own limit; ``stream_tokens`` makes its model calls
        stream, their tokens published as deltas to its event stream.
        """
        otid = otid or next((m.otid for m in messages if m.otid), None)
        run = Run(
            id=new_id("run"),
            agent_id=agent_id,
            otid=otid,
            reply_to=reply_to,
            hops=hops,
            wait_chain=list(wait_chain),
            stream_tokens=stream_tokens,
            root_run_id=root_run_id,
        )
        envelope = RunRequest(
            run_id=run.id, agent_id=agent_id, messages=tuple(messages), max_steps=max_steps
        )
        own = [
            bus_keys.otid(agent_id, otid) if otid else keys.run(agent_id, run.id),
            keys.run(agent_id, run.id),
            bus_keys.inbox(agent_id),
            keys.agent_runs(agent_id),
        ]
        listed = f"{run.id} {agent_id}"  # its entry in the index by creation time
        index = bus_keys.runs_by_time(agent_id)  # the agent's shard of it
        oldest_kept = run.created_at - self._run_ttl_s
        if self._cluster:  # the indexes first: see the module's docstring
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(keys.run_index(run.id), agent_id, ex=RUN_INDEX_TTL_S)
                pipe.zadd(index, {listed: run.created_at})
                pipe.zremrangebyscore(index, "-inf", f"({oldest_kept!r}")
                await pipe.execute()
        else:
            caused = keys.run_caused(root_run_id) if root_run_id else keys.run(agent_id, run.id)
            own += [keys.run_index(run.id), bus_keys.ready(agent_id), caused]
            own.append(index)
        result = await self._submit(
            keys=own,
            args=[
                "1" if otid else "0",
                run.id,
                encode(run),
                encode_envelope(envelope),
                OTID_TTL_S,
                run.created_at,
                streams.GROUP,  # the inbox is made with the workers' group: no first-read setup
                agent_id,
                RUN_INDEX_TTL_S,
                "1" if root_run_id and not self._cluster else "0",
                MAX_CAUSED_RUNS,
                repr(oldest_kept),
            ],
        )
        run_id = _text(result[0])
        created = bool(int(result[1]))
        if self._cluster:
            if not created:  # the original run has its own entries: this one's stay unused
                await self._unindex(run.id, agent_id)
            try:
                if created and root_run_id:
                    await self._add_caused(
                        keys=[keys.run_caused(root_run_id)],
                        args=[
                            run.created_at,
                            f"{agent_id} {run.id}",
                            MAX_CAUSED_RUNS,
                            RUN_INDEX_TTL_S,
                        ],
                    )
                await signal_ready(self._redis, agent_id)
            except BaseException:
                if created:
                    with anyio.CancelScope(shield=True):
                        withdrawn = await self._withdraw(
                            keys=own,
                            args=[run.id, _text(result[2]), streams.GROUP, "1" if otid else "0"],
                        )
                        if int(withdrawn):
                            await self._unindex(run.id, agent_id)
                raise
        return Submitted(run_id=run_id, agent_id=agent_id, created=created)

    async def _unindex(self, run_id: str, agent_id: str) -> None:
        """Remove a run that was not stored from the indexes written before it (Cluster)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.run_index(run_id))
            pipe.zrem(bus_keys.runs_by_time(agent_id), f"{run_id} {agent_id}")
            await pipe.execute()

    async def get(self, agent_id: str, run_id: str) -> Run:
        raw = await self._redis.get(keys.run(agent_id, run_id))
        if raw is None:
            raise NotFound(f"no run {run_id!r} for agent {agent_id!r}")
        return decode(Run, raw)

    async def find(self, run_id: str) -> Run:
        """A run by id alone."""
        agent_id = await self._redis.get(keys.run_index(run_id))
        if agent_id is None:
            raise NotFound(f"no run with id {run_id!r}")
        return await self.get(_text(agent_id), run_id)

    async def caused(self, root_run_id: str) -> list[Run]:
        """The runs that run ``root_run_id``'s outside message caused (agents messaging
        agents), oldest first; ones already expired are left out."""
        caused = await self._redis.zrange(keys.run_caused(root_run_id), 0, -1)
        members = [_text(m).split(" ", 1) for m in caused]
        raws = await mget(self._redis, [keys.run(a, r) for a, r in members]) if members else []
        return [decode(Run, raw) for raw in raws if raw is not None]

    async def recent(self, agent_id: str, *, limit: int = 50) -> list[Run]:
        ids = await self._redis.zrevrange(keys.agent_runs(agent_id), 0, limit - 1)
        if not ids:
            return []
        raws = await self._redis.mget([keys.run(agent_id, _text(i)) for i in ids])
        return [decode(Run, raw) for raw in raws if raw is not None]

    async def cancel(self, agent_id: str, run_ids: Sequence[str] | None = None) -> dict[str, str]:
        """Ask to cancel the agent's unfinished runs (``run_ids``, else all of them).

        Nothing is written to the runs themselves here: their worker holds the agent's lease.
        It reads the request before each step, so a queued run ends ``cancelled`` without
        calling the model, and a running one after its current step (that step's effects are
        committed as usual; a run waiting on another agent ends when it resumes). Returns each
        run's id with ``cancelled`` when asked, else its final status (left as it is).

        Raises:
            NotFound: a run in ``run_ids`` is not one of the agent's.
        """
        if run_ids is None:
            runs = await self.recent(agent_id, limit=1000)
        else:
            runs = [await self.get(agent_id, run_id) for run_id in run_ids]
        answer: dict[str, str] = {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for run in runs:
                if run.status in ("completed", "failed", "cancelled"):
                    if run_ids is not None:
                        answer[run.id] = run.status
                    continue
                pipe.set(bus_keys.run_cancel(agent_id, run.id), "1", ex=OPEN_TTL_S)
                answer[run.id] = "cancelled"
            await pipe.execute()
        return answer

    async def follow(
        self, agent_id: str, run_id: str, *, timeout_s: float | None = None
    ) -> AsyncIterator[Event]:
        """The run's events from its first, live, until its end."""
        async for _entry, raw in follow(self._redis, agent_id, run_id, timeout_s=timeout_s):
            yield event_decoder.decode(raw)

    async def events(self, agent_id: str, run_id: str) -> tuple[list[Event], bool]:
        raws, ended = await read_all(self._redis, agent_id, run_id)
        return [event_decoder.decode(raw) for raw in raws], ended


async def live_workers(redis: aioredis.Redis) -> list[dict[str, object]]:
    """Health records of the workers that beat recently and are not stopping."""
    ids = [_text(i) for i in await redis.smembers(bus_keys.workers())]
    if not ids:
        return []
    raws = await mget(redis, [bus_keys.worker_health(i) for i in ids])
    alive: list[dict[str, object]] = []
    for worker_id, raw in zip(ids, raws, strict=True):
        if raw is None:
            await redis.srem(bus_keys.workers(), worker_id)
            continue
        state = msgspec.json.decode(raw)
        if isinstance(state, dict) and not state.get("stopping"):
            alive.append(state)
    return alive


RETRY_ATTEMPTS = 10


async def retry_dead_letter(redis: aioredis.Redis, entry_id: str) -> Submitted:
    """Put a dead-lettered run back into its agent's inbox, in one script with the removal of
    its dead letter (never lost, never queued twice).

    The run keeps what it committed (steps, replies, calls, usage, their events): a worker
    resumes it after its last committed step and replays a half-done step from its journal,
    so nothing done runs again. Its attempts count starts over; ``retries`` counts the retry.

    Raises:
        NotFound: no such dead letter (never was, or already retried).
    """
    from bus.envelopes import decode_envelope
    from bus.lease import WatchConflict, fenced
    from bus.streams import get_dead_letter, take_dead_letter

    # Three single-slot steps (the agent's, the ready shard's, the dead letters'): re-queue
    # with a marker of this dead letter in the agent's slot (expected absent: a second retry
    # re-queues nothing), signal, then delete the dead letter. A crash between them leaves
    # the dead letter listed; retrying it again finds the marker and only signals and deletes.
    for _attempt in range(RETRY_ATTEMPTS):
        row = await get_dead_letter(redis, entry_id)
        if row is None:
            break
        envelope = decode_envelope(msgspec.json.encode(row["envelope"]))
        agent_id, run_id = envelope.agent_id, envelope.run_id
        run_key, events_key = keys.run(agent_id, run_id), bus_keys.run_events(agent_id, run_id)
        taken_key = bus_keys.dead_letter_taken(agent_id, entry_id)
        if not await redis.exists(taken_key):
            stored = await redis.get(run_key)
            raw = stored.encode() if isinstance(stored, str) else stored
            try:
                async with fenced(
                    redis, None, agent_id, expect={run_key: raw, taken_key: None}
                ) as pipe:
                    if raw is not None and (run := decode(Run, raw)).status == "failed":
                        run.status, run.stop_reason, run.error = "created", None, None
                        run.completed_at = None
                        run.attempts, run.retries = 0, run.retries + 1
                        run.uncounted_deliveries = 0  # a new entry: its count starts over
                        pipe.set(run_key, encode(run))
                        # The dead letter's own end (its stop reason and usage) goes; the
                        # events of the committed steps stay, and the stream lives until the
                        # run ends again.
                        ended = await _dead_letter_end(redis, events_key)
                        if ended:
                            pipe.xdel(events_key, *ended)
                        pipe.persist(events_key)
                    pipe.xadd(bus_keys.inbox(agent_id), {"e": encode_envelope(envelope)})
                    pipe.set(taken_key, "1", ex=RUN_INDEX_TTL_S)
            except WatchConflict:
                continue
        await signal_ready(redis, agent_id)
        if not await take_dead_letter(redis, entry_id):
            break
        return Submitted(run_id=run_id, agent_id=agent_id, created=True)
    else:
        raise Conflict(f"the run of dead letter {entry_id} kept changing; retry it again")
    raise NotFound(f"no dead letter with id {entry_id!r}; see `memgrid dlq list`")


async def _dead_letter_end(redis: aioredis.Redis, events_key: str) -> list[str]:
    """The ids of the final stop reason and usage events that a dead-lettering wrote."""
    tail = await redis.xrevrange(events_key, count=2) or []
    ids: list[str] = []
    for entry_id, fields in tail:
        fields = fields or {}
        if not ids and fields.get(b"end") != b"1":
            return []  # the run's stream did not end: nothing of the dead letter's to remove
        raw = fields.get(b"e")
        if raw is None or not isinstance(event_decoder.decode(raw), StopReason | UsageStatistics):
            break
        ids.append(_text(entry_id))
    return ids
