"""The step loop: one input in, a stream of events out, until the turn ends.

Each step runs in three named phases, then commits: *ask* the model (compile the context,
evict old messages when it would not fit, call the model; :mod:`agents._ask`), *run* its tool
calls (:mod:`agents._act`), and *decide* whether the turn goes on (:mod:`agents._decide`, where
the agent's type picks the policy: MemGPT's heartbeats, or letta_v1's "tools chain steps, text
answers"). The commit writes the step (its new messages, the agent's in-context list and
summary, the run record and the step's events) in one Redis transaction, fenced by the agent's
lease when a worker runs it. The loop is transport-agnostic: a worker, the CLI or a test drives
it. A turn also ends at the agent's step limit, or on an error.

Redelivery: a run record counts committed steps, so a worker that takes over a half-done run
resumes after the last committed step. The model's answer for a step is journaled before its
tools run and replayed if the step is re-run, so block edits (keyed by step and call id) and
archival inserts (ids derived from them) are not applied twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec
import redis.exceptions
import structlog

from agents._act import run_calls
from agents._approval import answer_pending
from agents._ask import ask_model
from agents._decide import decide, policy_for
from agents._turn import (
    CANCELLED,
    Preempted,
    RepliesPending,
    StepOutcome,
    Turn,
    cancel_requested,
    resume,
)
from agents.letta_messages import Event, StopReasonName
from agents.runtime import Runtime
from bus.envelopes import InboxMessage
from bus.errors import LeaseLost
from bus.lease import Lease
from storage.records import Agent, Message, Run, decode, new_id
from storage.step_reads import StepReads, read_step

__all__ = ("Preempted", "RepliesPending", "TurnOptions", "TurnResult", "run_turn")

log = structlog.get_logger("memgrid.loop")
# Failures that must not be turned into a stop reason: the run is retried or resumed.
_PROPAGATE = (LeaseLost, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@dataclass(frozen=True, kw_only=True, slots=True)
class TurnOptions:
    """How a caller runs a turn; the defaults suit the CLI and tests (a new run, no lease).

    Attributes:
        run: the run record to execute; a new one is made when None. A record with committed
            steps is resumed after them (its inputs are already stored).
        run_id: the id of the new run when ``run`` is None.
        lease: the agent's lease when a worker runs the turn; commits are fenced by it.
        should_stop: checked after each committed step; when true the turn stops with
            :class:`Preempted`, leaving the run to be resumed. A cancelled run (a key set by
            :meth:`agents.runs.RunStore.cancel`) ends before its next step as ``cancelled``.
        agent_record: the agent's record as just read by the caller (saves a read).
        on_final: stages more writes (on the pipeline it is given) into the run's last commit,
            such as acknowledging the inbox entry the run came from, after all of the
            turn's own.
        on_final_reply: receives the reply of the last command ``on_final`` staged, once the
            commit is done.
        max_steps: the request's cap on steps (Letta's ``max_steps``), applied below the
            agent's own ``max_steps``.
        agent: ``agent_record`` decoded (saves decoding it again).
        reads: the first step's reads (:func:`storage.step_reads.read_step` with
            ``next_seq``), when the caller read them with its own.
        cancelled: whether the run was cancelled, when the caller just read it (saves the
            first step's look).
    """

    run: Run | None = None
    run_id: str | None = None
    lease: Lease | None = None
    should_stop: Callable[[], bool] | None = None
    agent_record: bytes | None = None
    on_final: Callable[[Any], None] | None = None
    on_final_reply: Callable[[Any], None] | None = None
    max_steps: int | None = None
    agent: Agent | None = None
    reads: StepReads | None = None
    cancelled: bool | None = None


_DEFAULT_OPTIONS = TurnOptions()


class TurnResult(msgspec.Struct, kw_only=True):
    """What :func:`run_turn` leaves behind, for callers that need more than events."""

    stop_reason: StopReasonName = "end_turn"
    run: Run | None = None

    @property
    def replies(self) -> list[str]:
        return self.run.replies if self.run else []

    @property
    def usage(self) -> Any:
        return self.run.usage if self.run else None


async def run_turn(
    rt: Runtime,
    agent_id: str,
    inputs: Sequence[InboxMessage],
    options: TurnOptions = _DEFAULT_OPTIONS,
    *,
    result: TurnResult | None = None,
) -> AsyncIterator[Event]:
    """Run (or resume) one turn of ``agent_id`` on ``inputs``, yielding each step's events
    once the step is committed; ``options`` says how (see :class:`TurnOptions`), ``result``
    receives the stop reason and the run.

    Raises:
        LeaseLost: another worker took the agent; nothing more was written.
        Preempted: ``options.should_stop`` asked the turn to stop.
    """
    run, agent_record, max_steps = options.run, options.agent_record, options.max_steps
    if run is None:
        run = Run(id=options.run_id or new_id("run"), agent_id=agent_id)
    result = result if result is not None else TurnResult()
    result.run = run
    if agent_record is None:
        agent, agent_record = await rt.agents.get_raw(agent_id)
    else:
        agent = options.agent or decode(Agent, agent_record)
    turn = Turn(rt, agent, agent_record, run, options.lease)
    turn.on_final = options.on_final
    turn.on_final_reply = options.on_final_reply
    turn.policy = policy_for(agent.agent_type)
    # The first step's reads
    turn.preloaded = options.reads or await read_step(rt.redis, agent, next_seq=True)
    turn.seq = turn.preloaded.next_seq - 1
    bound = log.bind(agent_id=agent.id, run_id=run.id)
    first = run.steps
    pending: list[Message] = []
    if first == 0:
        answered, inputs = await answer_pending(turn, inputs, f"step-{run.id}-0")
        pending = [
            *answered,
            *(
                turn.message(
                    m.role,
                    f"step-{run.id}-0",
                    content=m.content,
                    otid=m.otid,
                    sender_id=m.sender_id,
                )
                for m in inputs
            ),
        ]
        if not pending:  # an approval with nothing pending: nothing to do
            result.stop_reason = "end_turn"
            for event in await turn.commit(StepOutcome(messages=[], stop="end_turn"), final=True):
                yield event
            return
    if run.wait is not None:
        pending = await resume(turn)  # raises RepliesPending while replies are still due
        if turn.end_after_resume:
            result.stop_reason = "end_turn"
            ended = StepOutcome(messages=pending, stop="end_turn")
            for event in await turn.commit(ended, final=True):
                yield event
            return
    if run.started_at is None:
        run.started_at = rt.clock()
    started = anyio.current_time()
    bound.info("turn_start", inputs=len(inputs), resume_from=first)
    outcome = StepOutcome(messages=[], stop="max_steps")
    cancelled = options.cancelled  # known for the first step when the caller read it
    try:
        limit = agent.max_steps if max_steps is None else min(agent.max_steps, max_steps)
        for step in range(first, limit):
            if cancelled is None:
                cancelled = await cancel_requested(turn)
            if cancelled:  # a queued run ends here before any model call
                outcome = StepOutcome(messages=pending, stop="cancelled", detail=CANCELLED)
                break
            cancelled = None
            turn.state.step = step
            turn.state.step_calls = []
            outcome = await rt.metrics.timed_step(_step(turn, pending, step))
            pending = []
            run.steps = step + 1
            if outcome.stop is not None:
                break
            run.wait = outcome.wait
            for event in await turn.commit(outcome, final=False):
                yield event
            if run.wait is not None:
                raise RepliesPending(f"run {run.id} waits for {run.wait.targets}")
            if options.should_stop is not None and options.should_stop():
                raise Preempted(f"run {run.id} stopped after step {step} for a shutdown")
        else:
            detail = _step_limit(agent, limit, turn.policy.chains)
            outcome = StepOutcome(messages=[], stop="max_steps", detail=detail)
    except (*_PROPAGATE, Preempted, RepliesPending):
        raise
    except Exception as exc:  # the turn must end with a stop reason, never a hang
        bound.exception("turn_failed")
        outcome = StepOutcome(messages=pending, stop="error", detail=f"{type(exc).__name__}: {exc}")
    result.stop_reason = outcome.stop or "end_turn"
    for event in await turn.commit(outcome, final=True):
        yield event
    bound.info(
        "turn_finish",
        stop_reason=result.stop_reason,
        steps=run.usage.step_count,
        duration_ms=round((anyio.current_time() - started) * 1000, 2),
    )


def _step_limit(agent: Agent, limit: int, chains: str) -> str:
    """Why a turn stopped at its step limit, and what the limit was."""
    whose = "the agent's max_steps" if limit == agent.max_steps else "the request's max_steps"
    return (
        f"the turn reached its limit of {limit} steps ({whose}) while the model still "
        f"{chains}; send another message to go on, or raise max_steps"
    )


async def _step(turn: Turn, pending: list[Message], step: int) -> StepOutcome:
    """One step in three phases: ask the model, run its calls, decide (per agent type)."""
    step_id = f"step-{turn.run.id}-{step}"
    asked = await ask_model(turn, pending, step, step_id)
    if isinstance(asked, StepOutcome):
        return asked
    acted = await run_calls(turn, asked, step_id) if asked.calls else None
    return decide(turn, pending, asked, acted, step_id)
