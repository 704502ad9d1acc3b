"""The worker's lease keeper: renews every lease it holds, on a connection of its own, measured.

A healthy worker must never lose a lease. Renewal therefore shares nothing with the turns that
could make it wait: it has its own small connection pool (with thousands of turns in flight,
every connection of the turns' pool is busy and a renewal queued for one would let healthy
leases expire) and its own task, which only sleeps and renews. It stays on the worker's event
loop on purpose: a worker whose loop stalls for a lease time is not healthy, and its agents
should move to another worker.

Each round is measured: how late it started after it was due and how long its round trips
took. The worker's counters (its health key) carry the number of rounds, the worst lateness and
duration, and the leases found expired, so operators and benchmarks see a lease in danger
before it is lost.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import anyio
import redis.asyncio as aioredis
import structlog

from bus import keys as bus_keys
from bus import streams
from bus.lease import Lease, renew_all

__all__ = ("COUNTERS", "Held", "LeaseKeeper", "private_client")

log = structlog.get_logger("memgrid.worker")

# The keeper's counters in the worker's health record (all start at 0).
COUNTERS = ("lease_expired", "lease_renewals", "lease_renew_late_ms_max", "lease_renew_ms_max")


class Held:
    """A lease the worker holds: its ready signal, and the scope of the turn that runs it."""

    __slots__ = ("entry_id", "expired", "lease", "scope")

    def __init__(self, lease: Lease, entry_id: str, scope: anyio.CancelScope) -> None:
        self.lease = lease
        self.entry_id = entry_id
        self.scope = scope
        self.expired = False  # set (and counted) once, by whoever sees the loss first


def private_client(redis: aioredis.Redis, *, max_connections: int = 2) -> aioredis.Redis:
    """A client to the same server as ``redis`` (same address and options) with a pool of its
    own; the caller closes it with ``aclose()``."""
    pool = redis.connection_pool
    own = aioredis.ConnectionPool(
        connection_class=pool.connection_class,
        max_connections=max_connections,
        **pool.connection_kwargs,
    )
    return aioredis.Redis.from_pool(own)


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
        self.interval = lease_ms / 3000
        self.held = held
        self.counters = counters
        for name in COUNTERS:
            counters.setdefault(name, 0)

    async def run(self) -> None:
        """Renew until cancelled."""
        client = private_client(self.redis)
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
                held = list(self.held.values())
                if held:
                    await self._round(client, held, late=late)
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    async def _round(self, client: aioredis.Redis, held: list[Held], *, late: float) -> None:
        started = anyio.current_time()
        renewed: list[bool] = []
        try:
            # A round trip that outlasts an interval is no use: the next round is due.
            with anyio.fail_after(self.interval):
                renewed = await renew_all(client, [h.lease for h in held])
                kept = [h.entry_id for h, ok in zip(held, renewed, strict=True) if ok]
                await streams.touch(client, bus_keys.ready(), self.worker_id, *kept)
        except Exception as exc:  # Redis away for a moment: try again next interval
            # (the turns' own commits fail meanwhile; a lease lost for good cancels below)
            log.warning("lease_renewal_failed", worker_id=self.worker_id, error=repr(exc))
        self._measure(late, anyio.current_time() - started, len(held))
        if not renewed:  # failed: nothing is known about the leases
            return
        for h, ok in zip(held, renewed, strict=True):
            # A turn that ended during the round trip released its lease: not an expiry.
            if not ok and self.held.get(h.lease.agent_id) is h and not h.expired:
                h.expired = True
                self.counters["lease_expired"] += 1
                log.warning("lease_expired", agent_id=h.lease.agent_id, worker_id=self.worker_id)
                h.scope.cancel()

    def _measure(self, late: float, took: float, leases: int) -> None:
        late_ms, took_ms = round(late * 1000), round(took * 1000)
        c = self.counters
        c["lease_renewals"] += 1
        c["lease_renew_late_ms_max"] = max(c["lease_renew_late_ms_max"], late_ms)
        c["lease_renew_ms_max"] = max(c["lease_renew_ms_max"], took_ms)
        if late + took > self.interval:
            # Past a full interval behind, a lease has used two thirds of its time.
            log.warning(
                "lease_renewal_slow",
                worker_id=self.worker_id,
                late_ms=late_ms,
                took_ms=took_ms,
                leases=leases,
                interval_ms=round(self.interval * 1000),
            )
