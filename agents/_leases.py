"""The worker's lease keeper: renews every lease it holds, on a thread and connection of its
own, measured.

A healthy worker must never lose a lease, and renewal must not queue behind work. Two queues
stood in its way: the turns' connection pool (with thousands of turns in flight every
connection is busy) and the event loop itself (with thousands of tasks ready, one pass of the
loop takes seconds, and a renewal waits a pass to wake and a pass for each reply). So renewal
runs on a thread of its own, with its own event loop and a small connection pool of its own,
and only reads the worker's table of held leases.

A worker whose loop has stopped is not healthy, though: its agents should move. The worker's
loop beats (a task that only sleeps and notes the time); the keeper renews only while the last
beat is younger than two lease times, and the beat's lateness is measured (the loop's lag, the
first thing an overloaded worker shows). A lease found expired is handed back to the loop,
which counts it and cancels its turn.

The worker's counters (its health key) carry the number of renewal rounds, the worst lateness
and duration of a round, the worst loop lag and the leases found expired, so operators and
benchmarks see a lease in danger before it is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Mapping, MutableMapping

import anyio
import redis.asyncio as aioredis
import structlog
from redis.maint_notifications import MaintNotificationsConfig

from bus import keys as bus_keys
from bus import streams
from bus.connection import cluster_copy, is_cluster
from bus.lease import Lease, renew_all

__all__ = ("COUNTERS", "Held", "LeaseKeeper", "private_client")

log = structlog.get_logger("memgrid.worker")

# The keeper's counters in the worker's health record (all start at 0).
COUNTERS = (
    "lease_expired",
    "lease_renewals",
    "lease_renew_late_ms_max",
    "lease_renew_ms_max",
    "lease_loop_lag_ms_max",
)


class Held:
    """A lease the worker holds: its ready signal, and the scope of the turn that runs it."""

    __slots__ = ("entry_id", "expired", "lease", "left", "releasing", "scope")

    def __init__(self, lease: Lease, entry_id: str, scope: anyio.CancelScope) -> None:
        self.lease = lease
        self.entry_id = entry_id
        self.scope = scope
        self.expired = False  # set (and counted) once, on the worker's loop
        # The turn's last read is in flight and releases the lease if the inbox is empty: a
        # renewal that finds it gone then is no expiry (a lost lease fences the next commit).
        self.releasing = False
        # Released (by the run's last commit or that read): entries the inbox still holds.
        self.left: int | None = None


def private_client(redis: aioredis.Redis, *, max_connections: int = 2) -> aioredis.Redis:
    """A client to the same server as ``redis`` (same address and options) with a pool of its
    own; the caller closes it with ``aclose()``."""
    if is_cluster(redis):
        return cluster_copy(redis, max_connections=max_connections)
    pool = redis.connection_pool
    own = aioredis.ConnectionPool(
        connection_class=pool.connection_class,
        max_connections=max_connections,
        # As bus.connection.connect: with maintenance notifications on, redis-py skips its
        # dead-connection check, and the keeper would not reconnect after a Redis restart.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
        **pool.connection_kwargs,
    )
    return aioredis.Redis.from_pool(own)


class _Stopper:
    """Stops the keeper's thread from the worker's loop, before or after its loop started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopped = False
        self._target: tuple[asyncio.AbstractEventLoop, anyio.CancelScope] | None = None

    def attach(self, scope: anyio.CancelScope) -> bool:
        """Called on the keeper's loop; False when already stopped."""
        with self._lock:
            self._target = (asyncio.get_running_loop(), scope)
            return not self._stopped

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._target is not None:
                loop, scope = self._target
                # A cancel scope is cancelled on its own loop; a closed loop is done anyway.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(scope.cancel)


class LeaseKeeper:
    """Renews the leases in ``held`` every third of ``lease_ms`` and touches their signals so
    that no one reclaims them; cancels the turn of a lease found expired."""

    def __init__(
        self,
        redis: aioredis.Redis,
        worker_id: str,
        lease_ms: int,
        held: Mapping[str, Held],
        counters: MutableMapping[str, int],
    ) -> None:
        self.redis = redis
        self.worker_id = worker_id
        self.lease_s = lease_ms / 1000
        self.interval = self.lease_s / 3
        self.held = held
        self.counters = counters
        for name in COUNTERS:
            counters.setdefault(name, 0)
        self._beat = time.monotonic()  # when the worker's loop last ran its beat
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    async def run(self) -> None:
        """Renew (on the keeper's thread) and beat for the worker's loop, until cancelled.

        Raises:
            RuntimeError: the keeper's thread died (the worker cannot keep leases).
        """
        self._loop = asyncio.get_running_loop()
        stopper = _Stopper()
        thread = threading.Thread(
            target=self._thread, args=(stopper,), name=f"lease-keeper-{self.worker_id}"
        )
        self._beat = time.monotonic()
        thread.start()
        try:
            while thread.is_alive():
                await anyio.sleep(self.interval / 2)
                now = time.monotonic()
                lag = now - self._beat - self.interval / 2
                self._beat = now
                self._max("lease_loop_lag_ms_max", lag)
            raise RuntimeError(f"the lease keeper's thread stopped: {self._error!r}")
        finally:
            stopper.stop()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(thread.join)

    def _thread(self, stopper: _Stopper) -> None:
        try:
            anyio.run(self._renew_until_stopped, stopper)
        except BaseException as exc:  # kept for the worker's loop, which raises it
            self._error = exc

    async def _renew_until_stopped(self, stopper: _Stopper) -> None:
        with anyio.CancelScope() as scope:
            if not stopper.attach(scope):
                return
            client = private_client(self.redis)
            stalled = False
            try:
                due = anyio.current_time() + self.interval
                while True:
                    await anyio.sleep_until(due)
                    started = anyio.current_time()
                    late = started - due
                    # Keep the cadence; a round more than an interval late starts it over.
                    due += self.interval
                    if due <= started:
                        due = started + self.interval
                    if time.monotonic() - self._beat > 2 * self.lease_s:
                        if not stalled:  # a hung loop: let its agents go to other workers
                            log.error("lease_renewal_paused_loop_stalled", worker_id=self.worker_id)
                        stalled = True
                        continue
                    stalled = False
                    held = list(self.held.values())  # one C-level copy: safe from this thread
                    if held:
                        await self._round(client, held, late=late)
            finally:
                with anyio.CancelScope(shield=True):
                    await client.aclose()

    async def _round(self, client: aioredis.Redis, held: list[Held], *, late: float) -> None:
        started = anyio.current_time()
        renewed: list[bool] = []
        leases: list[Lease] = []
        try:
            # Past a lease time every lease of the round has expired anyway: start over.
            with anyio.fail_after(self.lease_s):
                leases = [h.lease for h in held]  # a drain may take a new lease meanwhile
                renewed = await renew_all(client, leases)
                kept: dict[str, list[str]] = {}  # ready shard -> its signals still held
                for h, ok in zip(held, renewed, strict=True):
                    if ok:
                        kept.setdefault(bus_keys.ready(h.lease.agent_id), []).append(h.entry_id)
                await streams.touch_many(client, self.worker_id, kept)
        except Exception as exc:  # Redis away for a moment: try again next interval
            # (the turns' own commits fail meanwhile; a lease lost for good cancels below)
            log.warning("lease_renewal_failed", worker_id=self.worker_id, error=repr(exc))
        took = anyio.current_time() - started
        self.counters["lease_renewals"] += 1
        self._max("lease_renew_late_ms_max", late)
        self._max("lease_renew_ms_max", took)
        if late + took > self.interval:
            # Past a full interval behind, a lease has used two thirds of its time.
            log.warning(
                "lease_renewal_slow",
                worker_id=self.worker_id,
                late_ms=round(late * 1000),
                took_ms=round(took * 1000),
                leases=len(held),
                interval_ms=round(self.interval * 1000),
            )
        found = zip(held, leases, renewed, strict=True) if renewed else ()
        lost = [(h, lease) for h, lease, ok in found if not ok]
        if lost and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the worker's loop closed: it is gone
                self._loop.call_soon_threadsafe(self._expired, lost)

    def _expired(self, lost: list[tuple[Held, Lease]]) -> None:
        """On the worker's loop: count and cancel the turns of leases found expired."""
        for h, lease in lost:
            # A turn that ended during the round trip released its lease: not an expiry.
            # Nor is a lease released by a run's last commit and taken again since (h.lease).
            current = self.held.get(lease.agent_id) is h and h.lease is lease
            if current and not h.expired and not h.releasing:
                h.expired = True
                self.counters["lease_expired"] += 1
                log.warning("lease_expired", agent_id=h.lease.agent_id, worker_id=self.worker_id)
                h.scope.cancel()

    def _max(self, name: str, seconds: float) -> None:
        # Each counter has one writer (this thread or the worker's loop): no lost update.
        self.counters[name] = max(self.counters[name], round(seconds * 1000))
