"""The worker's ready signals: reading them off the ready shards, reclaiming a dead worker's,
and the release of an agent with its signal's acknowledgement (see :mod:`agents.worker`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec
import redis.asyncio as aioredis

from agents._waits import wake_if_due
from bus import keys as bus_keys
from bus import streams
from bus.connection import through_outage
from bus.lease import Lease
from bus.shard_reads import ShardReads
from storage.records import Run

__all__ = (
    "RECLAIM_SCAN",
    "Signal",
    "give_back_signal",
    "read_signals",
    "reclaim_signals",
    "release_signal",
)

RECLAIM_SCAN = 2000  # pending signals one reclaim round may look at


class Signal(msgspec.Struct, frozen=True):
    stream: str  # the ready shard it came from
    entry_id: str
    agent_id: str
    stale: bool = False  # reclaimed from a worker that stopped touching it (dead or paused)


async def read_signals(
    redis: aioredis.Redis,
    worker_id: str,
    *,
    count: int,
    block_ms: int,
    start: int,
    acks: Sequence[tuple[str, str]] = (),
    shards: ShardReads | None = None,
) -> list[Signal]:
    """Up to ``count`` new signals of any shard, the sweep beginning at shard ``start``;
    ``acks`` (shard, id) acknowledged first (see :func:`release_signal`). ``shards``: the
    worker's blocking reads of a cluster's shards (:mod:`bus.shard_reads`; no ``acks``)."""
    if shards is not None:
        fresh = await shards.read(count, start=start)
    else:
        fresh = await streams.read_ready(
            redis,
            bus_keys.ready_shards(),
            worker_id,
            count=count,
            block_ms=block_ms,
            start=start,
            acks=acks,
        )
    return [Signal(stream, i, f.get(b"a", b"").decode()) for stream, (i, f) in fresh]


async def give_back_signal(redis: aioredis.Redis, signal: Signal) -> None:
    """Hand a signal this worker will not serve back to its shard, a new entry for any worker
    (and the one read removed, in one step: never lost or doubled)."""
    entry = (signal.entry_id, {b"a": signal.agent_id.encode()})
    await streams.give_back(redis, signal.stream, entry)


async def reclaim_signals(
    redis: aioredis.Redis, worker_id: str, claim_from: dict[str, str], free: int, lease_ms: int
) -> list[Signal]:
    """Up to ``free`` signals idle for a lease time: their holder, which touches them at
    each renewal, lost its lease (or is about to; see Worker._handle_agent). Each call looks
    at ~10 pending signals per signal asked for, so the cursor (``claim_from``, per shard)
    goes on where the last stopped: a worker with one free slot still reaches a dead worker's
    signals behind live ones."""
    taken: list[Signal] = []
    for ready in bus_keys.ready_shards():
        scanned = 0
        while len(taken) < free and scanned < RECLAIM_SCAN:
            want = free - len(taken)
            cursor, stale = await streams.claim_stale_from(
                redis,
                ready,
                worker_id,
                claim_from.get(ready, "0-0"),
                min_idle_ms=lease_ms,
                count=want,
            )
            claim_from[ready] = cursor
            taken += [Signal(ready, i, f.get(b"a", b"").decode(), True) for i, f in stale]
            scanned += 10 * want
            if cursor == "0-0":  # the end: the next round starts over
                break
    return taken


async def release_signal(
    redis: aioredis.Redis,
    worker_id: str,
    signal: Signal,
    lease: Lease,
    *,
    failed: bool,
    waiting: Run | None,
    lease_ms: int,
    released_left: int | None = None,
    defer_ack: Callable[[str, str], bool] | None = None,
) -> None:
    """Release the agent after its drain. ``failed``: only the lease goes; the signal stays
    pending, reclaimed after a lease (no hot loop on work that fails at once).
    ``released_left``: the drain's last read released the lease already (see
    :func:`bus.streams.next_or_release`) and found that many entries in the inbox; only the
    signal's acknowledgement is left (a step of its own, after the release, as below).
    ``defer_ack(shard, id)``, when it accepts the signal, leaves that to the worker's next
    read of the shards (:func:`read_signals`): a round trip less a turn. A crash before that
    read leaves the signal pending, reclaimed after a lease time by a worker that finds the
    lease free and the inbox as it is (a spare look), as a crash between release and ack
    always did."""
    if failed:
        await through_outage(lease_ms / 1000, f"worker {worker_id} release", lease.release)
        return
    # The lease is released only if still ours (compare and delete), the signal acknowledged
    # only if still ours: with the lease lost, another worker may have reclaimed it, and
    # acknowledges it when done. Retried through an outage (idempotent: it checks what it
    # removes), or the agent would stand still until the lease expired after Redis came back.
    if released_left is not None and defer_ack and defer_ack(signal.stream, signal.entry_id):
        left = released_left
    elif released_left is not None:
        left = released_left
        await through_outage(
            lease_ms / 1000,
            f"worker {worker_id} release",
            streams.ack_signal,
            redis,
            signal.stream,
            signal.entry_id,
            consumer=worker_id,
        )
    else:
        _acked, left = await through_outage(
            lease_ms / 1000,
            f"worker {worker_id} release",
            streams.release_and_ack,
            redis,
            bus_keys.lease(signal.agent_id),
            lease.value,
            signal.stream,
            signal.entry_id,
            bus_keys.inbox(signal.agent_id),
            consumer=worker_id,
        )
    # Close the gap between our last read and the release: work that arrived meanwhile (its
    # signal was dropped while we held the lease), or a turn cut short by a lost lease, is
    # signalled again (even when a retried release found its first try done: a spare signal
    # costs one look). A waiting run blocks the inbox on purpose: its reply or timer wakes the
    # agent, unless that came while we held the lease too.
    if waiting is None and left:
        from agents.runs import signal_ready

        await signal_ready(redis, signal.agent_id)
    elif waiting is not None:
        await wake_if_due(redis, waiting)
