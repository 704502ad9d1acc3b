"""One inbox entry of a leased agent: decode it, run (or resume) its run, say what became of it.

Delivery is at-least-once: what :func:`process_entry` returns tells the worker whether to
acknowledge the entry now ("done"), whether the run's final commit already did ("acked"),
whether to retry it ("retry", from the run's last committed step), or that the run waits for
other agents (the :class:`~storage.records.Run`; the entry stays pending until it resumes).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, Literal

import anyio
import msgspec
import structlog

from agents._endings import answer_for_deleted, dead_letter_run, dead_letter_unreadable
from agents._waits import relay_replies, wait_over
from agents.loop import Preempted, RepliesPending, TurnOptions, run_turn
from bus import keys as bus_keys
from bus import streams
from bus.connection import is_transient
from bus.envelopes import decode_envelope
from bus.errors import LeaseLost
from bus.lease import Lease, fenced
from storage import keys
from storage.records import Agent, Run, decode, encode
from storage.step_reads import StepReads, read_step

if TYPE_CHECKING:
    from agents.worker import Worker

__all__ = ("Processed", "process_entry", "trim_dead_letters")

log = structlog.get_logger("memgrid.worker")

Processed = Literal["done", "acked", "retry"] | Run
"""What became of an inbox entry: "done" (finished or dead-lettered: acknowledge it), "acked"
(finished, acknowledged in the run's last commit), "retry", or the run when it waits."""


async def process_entry(
    worker: Worker,
    lease: Lease,
    entry_id: str,
    raw: bytes,
    record: bytes | None,
    deliveries: int = 1,
) -> Processed:
    """Run one inbox entry of ``worker``'s leased agent, whose record (as read with the entry)
    is ``record``, delivered ``deliveries`` times (this one included); see
    :data:`Processed`."""
    redis, agent_id = worker.rt.redis, lease.agent_id
    try:
        envelope = decode_envelope(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        await streams.dead_letter(
            redis,
            agent_id=agent_id,
            run_id="",
            envelope=raw,
            error=f"bad envelope: {exc}",
            attempts=0,
        )
        worker.counters["dead_lettered"] += 1
        await trim_dead_letters(worker)
        return "done"
    run_key = keys.run(agent_id, envelope.run_id)
    # The run record and whether it was cancelled come with the first step's reads: one round
    # trip (wasted on the rare run that ends below without a step).
    mine = (("GET", run_key), ("EXISTS", bus_keys.run_cancel(agent_id, envelope.run_id)))
    reads: StepReads | None = None
    try:
        agent = decode(Agent, record) if record is not None else None
    except (msgspec.DecodeError, msgspec.ValidationError):
        agent = None  # run_turn reads it again and ends the run with the error
    stored, cancelled = None, None
    if agent is not None:
        try:
            reads = await read_step(redis, agent, next_seq=True, extra=mine)
            stored, cancelled = reads.extra
        except Exception as exc:
            if is_transient(exc):
                raise
            reads = None  # run_turn reads again, inside an attempt that counts (a bad key)
    if reads is None:
        stored = await redis.get(run_key)
    try:
        run = decode(Run, stored) if stored else Run(id=envelope.run_id, agent_id=agent_id)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        # It would fail the same way every time: park it at once, with what to look at.
        await dead_letter_unreadable(redis, agent_id, envelope.run_id, raw, exc)
        worker.counters["dead_lettered"] += 1
        return "done"
    if record is None:
        log.warning("agent_deleted", agent_id=agent_id, run_id=envelope.run_id)
        await answer_for_deleted(redis, lease, run, retain=worker.rt.settings)
        return "done"  # the agent is gone: nothing can run for it
    if run.status in ("completed", "failed", "cancelled"):
        # A redelivery of finished work: its results (its reply among them) are durable.
        await relay_replies(redis, agent_id)
        return "done"
    if run.wait is not None and not await wait_over(redis, run):
        # Woken early (a fan-out's first replies): not an attempt, though the take counted a
        # delivery. Rare enough for a write of its own.
        run.uncounted_deliveries = deliveries - run.attempts
        async with fenced(redis, lease, agent_id) as pipe:
            pipe.set(run_key, encode(run))
        return run
    # Each delivery of the entry since the run last waited is an attempt: a resume from a
    # wait too (the count restarts at each wait), and one whose worker died (the take that
    # counted it is the record; nothing is written here). A run that keeps failing ends in
    # the dead-letter stream.
    run.attempts = deliveries - run.uncounted_deliveries
    if run.attempts < 1:  # a Redis that lost its last writes counts from less again
        run.uncounted_deliveries, run.attempts = deliveries - 1, 1
    if run.attempts > worker.settings.max_attempts:
        await dead_letter_run(
            redis, lease, run, raw, worker.settings.max_attempts, retain=worker.rt.settings
        )
        worker.counters["dead_lettered"] += 1
        await trim_dead_letters(worker)
        return "done"
    started = time.perf_counter()
    bound = log.bind(agent_id=agent_id, run_id=run.id, worker_id=worker.id)
    held, inbox = worker._held.get(agent_id), bus_keys.inbox(agent_id)

    def final(pipe: Any) -> None:
        """The run's last commit acknowledges its entry and, under the worker's lease,
        releases the lease and counts what the inbox still holds (the fence is ours: the lease
        is ours or expired unclaimed). The worker then takes it again if that is not 0."""
        streams.stage_ack(pipe, inbox, entry_id)
        if held is not None:
            held.releasing = True  # a renewal finding the lease gone is no expiry
            pipe.delete(bus_keys.lease(agent_id))
            pipe.xlen(inbox)

    def released(left: Any) -> None:
        if held is not None:
            held.left = int(left)

    try:
        options = TurnOptions(
            run=run,
            lease=lease,
            should_stop=worker._should_stop,
            agent_record=record,
            agent=agent,
            reads=reads,
            cancelled=None if cancelled is None else bool(cancelled),
            max_steps=envelope.max_steps,
            on_final=final,
            on_final_reply=released,
        )
        async for _event in run_turn(worker.rt, agent_id, envelope.messages, options):
            pass
    except RepliesPending:
        return run
    except Preempted:
        bound.info("run_preempted", steps=run.steps)
        raise
    except LeaseLost:
        raise
    except Exception as exc:  # transient (Redis, network): retried from the last step
        worker.counters["failed"] += 1
        bound.warning("run_attempt_failed", attempt=run.attempts, error=repr(exc))
        run.error = f"{type(exc).__name__}: {exc}"
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            # Keep the cause for the dead-letter entry if the attempts run out.
            stored_now = await redis.get(keys.run(agent_id, run.id))
            if stored_now is not None:
                latest = decode(Run, stored_now)
                latest.error = run.error
                async with fenced(redis, lease, agent_id) as pipe:
                    pipe.set(keys.run(agent_id, run.id), encode(latest))
        await anyio.sleep(min(0.1 * 2**run.attempts, 5.0))
        return "retry"
    worker.counters["runs"] += 1
    bound.info("run_done", duration_ms=round((time.perf_counter() - started) * 1000, 2))
    if run.reply_to is not None:
        worker._fault("reply_committed")
        with anyio.CancelScope(shield=True):  # else the next holder relays it (recover)
            await relay_replies(redis, agent_id)
    return "acked"


async def trim_dead_letters(worker: Worker) -> None:
    """Drop the oldest dead letters past the worker's cap (and say so)."""
    cap = worker.settings.dead_letter_cap
    dropped = await streams.trim_dead_letters(worker.rt.redis, cap)
    if dropped:
        worker.counters["dead_letters_trimmed"] += dropped
        log.warning("dead_letters_trimmed", count=dropped, cap=cap)
