"""The worker: takes agents' inboxes off Redis Streams and runs their turns.

Shape (one root task group per worker)::

    reader ── XREADGROUP the ready shards, as many as free slots (+ stale signals) ──> a task each
    task (one of N slots): lease the agent ─ drain its inbox in order ─ release ─ re-signal
    keeper ── renews the held leases on a thread and connection of its own (agents._leases)
    health ── a key with a TTL and counters, for ``memgrid worker --check``

Delivery is at-least-once: an inbox entry is acknowledged only after its run's final commit.
Effects are exactly-once: runs resume after their last committed step (see
:mod:`agents.loop`). A killed worker's signals are reclaimed by others once idle longer than
the lease; its agents' leases expire; their pending inbox entries are claimed by the next
holder. Work still failing after ``max_attempts`` goes to the dead-letter stream.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from signal import SIGKILL

import anyio
import msgspec
import structlog
from anyio.abc import TaskGroup, TaskStatus
from redis.exceptions import RedisError, ResponseError

from agents import metrics
from agents._entry import Processed, process_entry
from agents._health import beat
from agents._leases import COUNTERS, Held, LeaseKeeper
from agents._signals import (
    Signal,
    give_back_signal,
    read_signals,
    reclaim_signals,
    release_signal,
)
from agents._waits import fire_timers, relay_replies
from agents.loop import Preempted
from agents.runs import adopt_unsharded_signals
from agents.runtime import Runtime
from bus import keys as bus_keys
from bus import streams
from bus.connection import TRANSIENT_ERRORS, Outage, is_cluster, is_transient, through_outage
from bus.errors import LeaseLost
from bus.lease import Lease, Taken, take
from bus.shard_reads import ShardReads, shard_reads
from storage import keys
from storage.records import Run

__all__ = ("Worker", "WorkerSettings")

log = structlog.get_logger("memgrid.worker")


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How a worker behaves. ``lease_ms`` bounds how long a killed worker's agents wait."""

    worker_id: str = msgspec.field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{os.urandom(2).hex()}"
    )
    concurrency: int = 64
    lease_ms: int = 10_000
    max_attempts: int = 5
    block_ms: int = 1_000
    burst: bool = False
    health_ttl_s: int = 30
    dead_letter_cap: int = streams.DLQ_MAXLEN  # older dead letters are dropped (and logged)
    # A fault point for tests of crash recovery: the process SIGKILLs itself there.
    crash_at: str | None = msgspec.field(
        default_factory=lambda: os.environ.get("MEMGRID_TEST_CRASH_AT") or None
    )


_TIMER_EVERY_S = 0.05  # how often the reader looks for waits that reached their deadline


class Worker:
    """Runs agents' turns from the bus until stopped (or, in burst mode, until idle)."""

    def __init__(self, rt: Runtime, settings: WorkerSettings | None = None) -> None:
        self.rt = rt
        self.settings = settings or WorkerSettings()
        rt.llm.reserve(self.settings.concurrency)
        self.id = self.settings.worker_id
        self.stopping = False
        self.busy = 0
        self.counters = {"runs": 0, "failed": 0, "dead_lettered": 0, "preempted": 0}
        self.counters["dead_letters_trimmed"] = 0
        self.counters.update(dict.fromkeys(COUNTERS, 0))  # the lease keeper's measurements
        self.started_at = time.time()
        self._scope: anyio.CancelScope | None = None
        self._held: dict[str, Held] = {}  # agent id -> its lease, signal and turn's scope
        self._claim_from: dict[str, str] = {}  # stream -> where the next reclaim looks
        self._sweeps = 0  # reads of the ready shards so far
        # Signals of released agents, acknowledged with the reader's next sweep while it runs
        # (one Redis only: a cluster's sweep is one read per shard); None: acknowledge at once.
        self._acks: list[tuple[str, str]] | None = None
        self._shards: ShardReads | None = None  # a cluster's blocking reads, while they run

    def stop(self) -> None:
        """Stop taking work; running turns stop after their current step."""
        self.stopping = True
        if self._shards is not None:
            self._shards.stop()

    def cancel(self) -> None:
        """Stop now (after :meth:`stop` and a grace period): cancels turns in flight."""
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        redis = self.rt.redis
        outage = Outage(f"worker {self.id} start")
        while True:  # a worker started while Redis is away waits for it
            try:
                for shard in bus_keys.ready_shards():
                    await streams.ensure_group(redis, shard)
                await adopt_unsharded_signals(redis)  # left by an upgrade from before shards
                break
            except TRANSIENT_ERRORS as exc:
                await outage.wait(exc)
        outage.ok()
        log.info("worker_start", worker_id=self.id, concurrency=self.settings.concurrency)
        metrics.track_worker(self)
        try:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                tg.start_soon(beat, self)
                tg.start_soon(self._keep_leases)
                async with anyio.create_task_group() as work:
                    work.start_soon(self._reader, work)
                    task_status.started()
                tg.cancel_scope.cancel()  # the work is done: stop the health beat too
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await redis.delete(bus_keys.worker_health(self.id))
                    await redis.srem(bus_keys.workers(), self.id)
                except TRANSIENT_ERRORS as exc:  # its health key expires by itself
                    log.warning("worker_stop_unrecorded", worker_id=self.id, error=repr(exc))
            log.info("worker_stop", worker_id=self.id, **self.counters)

    # --- signals -----------------------------------------------------------------------

    async def _reader(self, work: TaskGroup) -> None:
        """Read signals (:meth:`_read`), acknowledging released agents' signals with each
        sweep; what is left to acknowledge when it stops is acknowledged here."""
        redis, s = self.rt.redis, self.settings
        self._acks = None if is_cluster(redis) else []
        try:
            if is_cluster(redis) and not s.burst:  # blocking reads per shard, not polling
                shards = bus_keys.ready_shards()
                async with shard_reads(redis, shards, self.id, block_ms=s.block_ms) as reads:
                    self._shards = reads
                    await self._read(work, reads)
            else:
                await self._read(work)
        finally:
            self._shards = None
            acks, self._acks = self._acks or [], None
            with anyio.CancelScope(shield=True):
                for stream, entry_id in acks:  # one left pending is reclaimed after a lease
                    with contextlib.suppress(RedisError):
                        await through_outage(
                            self.settings.lease_ms / 1000,
                            f"worker {self.id} release",
                            streams.ack_signal,
                            self.rt.redis,
                            stream,
                            entry_id,
                            consumer=self.id,
                        )

    def _defer_ack(self, stream: str, entry_id: str) -> bool:
        """Leave a released agent's signal to the reader's next sweep, if the reader runs."""
        if self._acks is None:
            return False
        self._acks.append((stream, entry_id))
        return True

    async def _read(self, work: TaskGroup, shards: ShardReads | None = None) -> None:
        """Take as many signals as there are free slots, never more: a signal taken is pending
        on this worker, so one read while every slot is busy would hold agents back that
        another worker (or a slot freed a moment later here) could have run. ``shards``: a
        non-burst worker's reads on a cluster (:mod:`bus.shard_reads`)."""
        redis, s = self.rt.redis, self.settings
        slots = anyio.Semaphore(s.concurrency)
        next_reclaim = next_timers = 0.0
        outage = Outage(f"worker {self.id} reader")
        regroup = False
        while not self.stopping:
            await slots.acquire()
            # Burst mode ends after a read that began with nothing running: a signal written
            # by a turn that ended during the read is then seen (on a cluster the read is one
            # shard after another, not one blocking read on them all).
            idle_before = self.busy == 0
            free = 1
            while slots.value:
                slots.acquire_nowait()
                free += 1
            taken: list[Signal] = []
            try:
                if regroup:
                    for shard in bus_keys.ready_shards():
                        await streams.ensure_group(redis, shard)
                    regroup = False
                if time.monotonic() >= next_timers:
                    # A round trip per look: under load the loop comes round for every few
                    # freed slots, and a timer fired 50 ms late is as good (deadlines are s).
                    next_timers = time.monotonic() + _TIMER_EVERY_S
                    await self._fire_timers()
                if time.monotonic() >= next_reclaim:
                    next_reclaim = time.monotonic() + s.lease_ms / 2000
                    taken += await reclaim_signals(
                        redis, self.id, self._claim_from, free, s.lease_ms
                    )
                if len(taken) < free:
                    acks = list(self._acks or ())  # (those queued meanwhile go next time)
                    with anyio.move_on_after(s.block_ms / 1000 + 1):
                        self._sweeps += 1  # each read starts at the next shard: fairness
                        taken += await read_signals(
                            redis,
                            self.id,
                            count=free - len(taken),
                            block_ms=10 if s.burst else s.block_ms,
                            start=self._sweeps,
                            acks=acks,
                            shards=shards,
                        )
                    if self._acks:  # done (again, if a lost reply hid the first time: no harm)
                        del self._acks[: len(acks)]
                outage.ok()
            except RedisError as exc:
                if is_transient(exc):
                    # Redis is away (restarting, loading its AOF, failing over): wait and read
                    # again. What was taken stays taken; the rest is read after the outage.
                    await outage.wait(exc)
                elif "NOGROUP" in str(exc):
                    regroup = True  # a Redis that came back without its data (no AOF)
                else:
                    raise
            finally:
                for _ in range(free - len(taken)):
                    slots.release()
            for signal in taken:
                self.busy += 1
                work.start_soon(self._slot, signal, slots)
            if s.burst and not taken and idle_before and self.busy == 0 and not outage.down:
                return

    async def _fire_timers(self) -> None:
        """Wake agents whose waiting runs reached their deadline."""
        await fire_timers(self.rt.redis, lambda: self._fault("timer_fired"))

    async def _slot(self, signal: Signal, slots: anyio.Semaphore) -> None:
        try:
            await self._handle_agent(signal)
        except Exception as exc:  # one agent's trouble must not stop the worker
            # The signal stays pending: it is reclaimed after the lease and retried.
            log.exception("agent_handling_failed", agent_id=signal.agent_id, error=repr(exc))
            self.counters["failed"] += 1
        finally:
            self.busy -= 1
            slots.release()

    # --- one agent ---------------------------------------------------------------------

    async def _handle_agent(self, signal: Signal) -> None:
        redis, ready, agent_id = self.rt.redis, signal.stream, signal.agent_id
        if not agent_id:
            await streams.ack_and_delete(redis, ready, signal.entry_id)
            return
        if self.stopping:
            # Read after SIGTERM (by the reader's last blocking read: its own release's
            # re-signal, say): hand the agent to another worker untaken. A take would count a
            # delivery (an attempt) of its next entry and run nothing.
            await give_back_signal(redis, signal)
            return
        taken = await self._take(agent_id)
        if taken is None:  # another worker holds it and drains the inbox, this message included
            # Unless the holder died just after renewing (its lease outlives its last touch):
            # a reclaimed signal stays pending, to be reclaimed again once the lease is gone.
            if not signal.stale:
                await streams.ack_and_delete(redis, ready, signal.entry_id)
            return
        lease = taken.lease
        failed = False
        waiting: Run | None = None
        scope = anyio.CancelScope()  # cancelled by the keeper if the lease expires
        held = self._held[agent_id] = Held(lease, signal.entry_id, scope)
        try:
            with scope:
                try:
                    waiting = await self._drain(held, taken, recover=signal.stale)
                except LeaseLost as exc:
                    log.warning("lease_lost", agent_id=agent_id, error=str(exc))
                    if not held.expired:  # a commit found it first
                        held.expired = True
                        self.counters["lease_expired"] += 1
                except Preempted:
                    self.counters["preempted"] += 1
                except Exception as exc:
                    # A Redis outage is not this agent's fault: release and re-signal as
                    # usual once Redis answers. Anything else would fail again at once.
                    failed = not is_transient(exc)
                    raise
        finally:
            self._held.pop(agent_id, None)
            with anyio.CancelScope(shield=True):
                await release_signal(
                    redis,
                    self.id,
                    signal,
                    held.lease,
                    failed=failed,
                    waiting=waiting,
                    lease_ms=self.settings.lease_ms,
                    released_left=held.left,
                    defer_ack=self._defer_ack,
                )

    async def _take(self, agent_id: str) -> Taken | None:
        """The lease, the inbox's next entry and the agent's record, in one round trip
        (:func:`bus.lease.take`); None when another worker holds the lease."""
        redis = self.rt.redis
        try:
            return await take(
                redis, agent_id, self.id, self.settings.lease_ms, record_key=keys.agent(agent_id)
            )
        except ResponseError as exc:
            # RunStore.submit makes inboxes with the group; a stream made otherwise has none.
            if "NOGROUP" not in str(exc):
                raise
        await streams.ensure_group(redis, bus_keys.inbox(agent_id))
        return await take(
            redis, agent_id, self.id, self.settings.lease_ms, record_key=keys.agent(agent_id)
        )

    async def _keep_leases(self) -> None:
        """Renew every lease this worker holds, on a thread and connection of their own (see
        :mod:`agents._leases`); a turn whose lease expired is cancelled."""
        keeper = LeaseKeeper(
            self.rt.redis, self.id, self.settings.lease_ms, self._held, self.counters
        )
        await keeper.run()

    async def _drain(self, held: Held, taken: Taken, *, recover: bool = False) -> Run | None:
        """Run the agent's inbox in order, from the entry taken with the lease; the run it
        stopped at when that run waits on replies. A run's last commit releases the lease (and
        the lease is taken again while the inbox holds more); else, when the inbox has nothing
        more for this worker, the read that finds so releases it. ``held.left`` then says how
        many entries the inbox still holds.

        ``recover``: the signal was reclaimed from a worker that stopped (maybe between a run's
        final commit and the relay of its reply): relay what the agent's outbox still holds.
        """
        redis, lease = self.rt.redis, held.lease
        agent_id = lease.agent_id
        inbox = bus_keys.inbox(agent_id)
        if recover:  # what a dead worker committed but did not hand over
            await streams.move_dead_letters(redis, agent_id)
            await relay_replies(redis, agent_id)
        got: Taken | streams.NextOrReleased | None = taken  # the entry to run next, if any
        # Entries left pending (by a dead worker, or by our own failed attempt) come first:
        # they are older (the take claimed one). Others cannot deliver entries to themselves
        # while we hold the lease, so after a clean pass only new entries are read.
        claim = True
        while not self.stopping:
            entry = None if got is None else got.entry
            if got is None or entry is None:
                # No entry for us: release in the same step (a commit racing the release, or
                # a renewal that finds the lease gone meanwhile, is no expiry of ours).
                held.releasing = True
                try:
                    found = await streams.next_or_release(
                        redis,
                        inbox,
                        keys.agent(agent_id),
                        bus_keys.lease(agent_id),
                        lease.value,
                        consumer=self.id,
                        claim=claim,
                    )
                except ResponseError as exc:
                    # A Redis that came back without its data (no AOF) has no group there.
                    if "NOGROUP" not in str(exc):
                        raise
                    await streams.ensure_group(redis, inbox)
                    continue
                finally:
                    held.releasing = False
                if found.entry is None:
                    held.left = found.left
                    return None
                got, entry = found, found.entry
            entry_id, fields = entry
            held.releasing = False
            outcome = await self._process(
                lease, entry_id, fields.get(b"e", b""), record=got.record, deliveries=got.deliveries
            )
            if isinstance(outcome, Run):
                return outcome
            if outcome == "done":
                await streams.ack_and_delete(redis, inbox, entry_id)
            claim = outcome == "retry"
            got = None
            if held.left is not None:  # the run's last commit released the lease
                if not held.left:
                    return None
                # Work came in meanwhile, its signals dropped while we held the lease. Not cut
                # by a cancel: a lease taken and not known would hold the agent till it expired.
                with anyio.CancelScope(shield=True):
                    again = await self._take(agent_id)
                if again is None:  # another worker took it: it drains the inbox
                    held.left = 0
                    return None
                lease = held.lease = again.lease
                held.left = None
                got = again
        if got is not None and got.entry is not None:
            # Taken as SIGTERM came: left pending, and that take is no attempt.
            await streams.undeliver(redis, inbox, self.id, got.entry[0], got.deliveries)
        return None

    async def _process(
        self, lease: Lease, entry_id: str, raw: bytes, *, record: bytes | None, deliveries: int
    ) -> Processed:
        """One inbox entry (:func:`agents._entry.process_entry`); a method that tests wrap.
        ``record``: the agent's record, as read with the entry; ``deliveries``: the entry's,
        this one included."""
        return await process_entry(self, lease, entry_id, raw, record, deliveries)

    def _fault(self, point: str) -> None:
        """Crash here (SIGKILL) when the settings name this fault point (crash tests)."""
        if self.settings.crash_at == point:
            os.kill(os.getpid(), SIGKILL)

    def _should_stop(self) -> bool:
        """Whether running turns should stop after their current step."""
        return self.stopping
