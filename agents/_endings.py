"""How a run ends outside its own turn: dead-lettered, unreadable, or its agent deleted.

Each ending that can be recorded is committed (fenced by the agent's lease) with the run's
reply staged in the agent's outbox, then relayed: an agent waiting on such a run gets an
answer that says what happened instead of waiting until its timeout.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
import structlog

from agents._waits import end_wait, relay_replies, stage_reply
from agents.letta_messages import StopReason, UsageStatistics, event_encoder
from bus import streams
from bus.lease import Lease, fenced
from bus.run_events import stage_events
from storage import keys
from storage.records import Run, encode
from storage.settings import StorageSettings

__all__ = ("answer_for_deleted", "dead_letter_run", "dead_letter_unreadable")

log = structlog.get_logger("memgrid.worker")


async def dead_letter_run(
    redis: aioredis.Redis,
    lease: Lease,
    run: Run,
    raw: bytes,
    max_attempts: int,
    *,
    retain: StorageSettings,
) -> None:
    """Park a run that kept failing: the dead-letter entry, the run failed with its events,
    and its waiter answered, in one fenced commit (a stale worker writes none of them)."""
    agent_id = lease.agent_id
    error = f"gave up after {max_attempts} attempts"
    if run.error:
        error += f"; last error: {run.error}"
    run.status, run.stop_reason, run.error = "failed", "error", error
    run.completed_at = time.time()
    waited, run.wait = run.wait is not None, None
    usage = run.usage
    events = [
        StopReason(stop_reason="error", detail=error),
        UsageStatistics(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            step_count=usage.step_count,
        ),
    ]
    async with fenced(redis, lease, agent_id) as pipe:
        streams.stage_dead_letter(
            pipe,
            agent_id=agent_id,
            run_id=run.id,
            envelope=raw,
            error=error,
            attempts=run.attempts - 1,
        )
        pipe.set(keys.run(agent_id, run.id), encode(run), ex=retain.run_ttl_s)
        stage_events(
            pipe,
            agent_id,
            run.id,
            [event_encoder.encode(e) for e in events],
            final=True,
            finished_ttl_s=retain.events_ttl_s,
        )
        stage_reply(pipe, run, time.time())
    await streams.move_dead_letters(redis, agent_id)
    await relay_replies(redis, agent_id)
    if waited:  # it no longer waits on anyone
        await end_wait(redis, run)
    log.error("run_dead_lettered", agent_id=agent_id, run_id=run.id, error=error)


async def dead_letter_unreadable(
    redis: aioredis.Redis, agent_id: str, run_id: str, raw: bytes, exc: Exception
) -> None:
    """Park an inbox entry whose run record cannot be decoded: every attempt would fail the
    same way (and before any attempt could be counted)."""
    await streams.dead_letter(
        redis,
        agent_id=agent_id,
        run_id=run_id,
        envelope=raw,
        error=f"the run record {keys.run(agent_id, run_id)} cannot be read: {exc}",
        attempts=0,
    )
    log.error("run_record_unreadable", agent_id=agent_id, run_id=run_id, error=str(exc))


async def answer_for_deleted(
    redis: aioredis.Redis, lease: Lease, run: Run, *, retain: StorageSettings
) -> None:
    """A run of a deleted agent ends failed, and its waiter (if any) gets an answer; the run
    record written for that expires like any finished run's (the agent's keys are gone)."""
    if run.status in ("completed", "failed", "cancelled"):
        return
    if run.wait is not None:  # it no longer waits on anyone
        await end_wait(redis, run)
    if run.reply_to is None:
        return
    run.status, run.stop_reason = "failed", "error"
    run.error = "the agent was deleted before it answered"
    run.completed_at = time.time()
    # Not fenced: deleting the agent deleted its fence too, and there is no agent state left
    # to protect; the reply is relayed once (the outbox entry goes when delivered).
    async with fenced(redis, None, run.agent_id) as pipe:
        pipe.set(keys.run(run.agent_id, run.id), encode(run), ex=retain.run_ttl_s)
        stage_reply(pipe, run, time.time())
    await relay_replies(redis, run.agent_id)
