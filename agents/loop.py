"""The step loop: one input in, a stream of events out, until the turn ends.

Each step compiles the context, calls the model, validates and runs its tool calls, then
commits the step (its new messages, the agent's in-context list and summary, the run record and
the step's events) in one Redis transaction, fenced by the agent's lease when a worker runs it.
The loop is transport-agnostic: a worker, the CLI or a test drives it.

A turn ends on a tool call that does not ask for a heartbeat, on text with no tool call (which
becomes the reply if nothing reached the user yet), at the agent's step limit, or on an error.

Redelivery: a run record counts committed steps, so a worker that takes over a half-done run
resumes after the last committed step. The model's answer for a step is journaled before its
tools run and replayed if the step is re-run, so block edits (keyed by step and call id) and
archival inserts (ids derived from them) are not applied twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
import msgspec
import redis.exceptions
import structlog

from agents._approval import answer_pending, mark_requests
from agents._calls import note_model_error, run_call
from agents._model_call import llm_for_step
from agents._turn import (
    CANCELLED,
    Preempted,
    StepOutcome,
    Suspended,
    Turn,
    cancel_requested,
    heartbeat,
    resume,
    tool_result,
)
from agents.events import Event, StopReasonName
from agents.llm import ContextWindowExceeded, LLMError, LLMInvalidResponse, LLMResponse
from agents.messaging import Suspend
from agents.prompts import HEARTBEAT_AFTER_ERROR, HEARTBEAT_REASON
from agents.runtime import Runtime
from agents.summarizer import ContextOverflow, compact
from agents.tools.registry import agent_tools
from bus.errors import LeaseLost
from bus.lease import Lease
from storage.records import Agent, Message, Run, Wait, decode, new_id
from storage.step_reads import read_step

__all__ = ("InputMessage", "Preempted", "Suspended", "TurnResult", "run_turn")

log = structlog.get_logger("memgrid.loop")
_MAX_INVALID_IN_A_ROW = 4
# Failures that must not be turned into a stop reason: the run is retried or resumed.
_PROPAGATE = (LeaseLost, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_WAITING_TOOLS = frozenset(
    {"send_message_to_agent_and_wait_for_reply", "send_message_to_agents_matching_tags"}
)


class InputMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A message that starts a turn."""

    content: str
    role: str = "user"
    otid: str | None = None
    sender_id: str | None = None


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
    inputs: Sequence[InputMessage],
    *,
    run: Run | None = None,
    run_id: str | None = None,
    lease: Lease | None = None,
    result: TurnResult | None = None,
    should_stop: Callable[[], bool] | None = None,
    agent_record: bytes | None = None,
    on_final: Callable[[Any], None] | None = None,
    max_steps: int | None = None,
) -> AsyncIterator[Event]:
    """Run (or resume) one turn of ``agent_id`` on ``inputs``, yielding each step's events
    once the step is committed.

    Args:
        run: the run record to execute; a new one is made when None. A record with committed
            steps is resumed after them (its inputs are already stored).
        lease: the agent's lease when a worker runs the turn; commits are fenced by it.
        should_stop: checked after each committed step; when true the turn stops with
            :class:`Preempted`, leaving the run to be resumed. A cancelled run (a key set by
            :meth:`agents.runs.RunStore.cancel`) ends before its next step as ``cancelled``.
        agent_record: the agent's record as just read by the caller (saves a read).
        on_final: stages more writes (on the pipeline it is given) into the run's last commit,
            such as acknowledging the inbox entry the run came from.
        max_steps: the request's cap on steps (Letta's ``max_steps``), applied below the
            agent's own ``max_steps``.

    Raises:
        LeaseLost: another worker took the agent; nothing more was written.
        Preempted: ``should_stop`` asked the turn to stop.
    """
    if run is None:
        run = Run(id=run_id or new_id("run"), agent_id=agent_id)
    result = result if result is not None else TurnResult()
    result.run = run
    if agent_record is None:
        agent, agent_record = await rt.agents.get_raw(agent_id)
    else:
        agent = decode(Agent, agent_record)
    turn = Turn(rt, agent, agent_record, run, lease)
    turn.on_final = on_final
    turn.preloaded = await read_step(rt.redis, agent, next_seq=True)  # the first step's reads
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
        pending = await resume(turn)  # raises Suspended while replies are still due
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
    try:
        limit = agent.max_steps if max_steps is None else min(agent.max_steps, max_steps)
        for step in range(first, limit):
            if await cancel_requested(turn):  # a queued run ends here before any model call
                outcome = StepOutcome(messages=pending, stop="cancelled", detail=CANCELLED)
                break
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
                raise Suspended(f"run {run.id} waits for {run.wait.targets}")
            if should_stop is not None and should_stop():
                raise Preempted(f"run {run.id} stopped after step {step} for a shutdown")
        else:
            outcome = StepOutcome(messages=[], stop="max_steps", detail=_step_limit(agent, limit))
    except (*_PROPAGATE, Preempted, Suspended):
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


def _step_limit(agent: Agent, limit: int) -> str:
    """Why a turn stopped at its step limit, and what the limit was."""
    whose = "the agent's max_steps" if limit == agent.max_steps else "the request's max_steps"
    return (
        f"the turn reached its limit of {limit} steps ({whose}) while the model still asked "
        "for more (request_heartbeat); send another message to go on, or raise max_steps"
    )


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


async def _step(turn: Turn, pending: list[Message], step: int) -> StepOutcome:
    rt, step_id = turn.rt, f"step-{turn.run.id}-{step}"
    # Others (the API, a workflow re-apply) may have changed the agent's settings; the fields
    # this turn manages itself come from the turn, not from the stored record.
    if step != turn.loaded_at_step:
        fresh, turn.agent_raw = await rt.agents.get_raw(turn.agent.id)
        turn.agent = turn.own_fields(fresh)
    agent = turn.agent
    reads, turn.preloaded = turn.preloaded or await read_step(rt.redis, agent), None
    blocks = turn.blocks = reads.blocks
    tools = agent_tools(agent, reads.tools)
    offered = rt.gate.offered(agent, turn.state, list(tools))
    schemas = [tools[name].openai() for name in offered if name in tools]
    build = turn.builder(blocks, await turn.stats(reads.message_count, reads.archive_ids), schemas)
    committed = reads.messages

    response: LLMResponse | None = None
    sink = turn.token_stream(step_id)
    for attempt in range(2):
        # This turn's own messages stay: the model must see the results it asked for.
        split = next(
            (i for i, m in enumerate(committed) if m.run_id == turn.run.id), len(committed)
        )
        older, current = committed[:split], committed[split:]
        try:
            compaction = await compact(
                agent=turn.agent,
                committed=older,
                pending=[*current, *pending],
                build=build,
                counter=turn.counter,
                llm=turn.llm,
                now=rt.clock(),
                force=attempt > 0,
            )
        except ContextOverflow as exc:
            return StepOutcome(
                messages=pending, stop="context_window_overflow_in_system_prompt", detail=str(exc)
            )
        if compaction.evicted:
            turn.agent = msgspec.structs.replace(
                compaction.agent,
                message_ids=[*compaction.agent.message_ids, *(m.id for m in current)],
            )
            committed = [*compaction.kept, *current]
            turn.run.usage.add(compaction.prompt_tokens, compaction.completion_tokens)
        request, request_tools = build(turn.agent, [*committed, *pending])
        try:
            response = await llm_for_step(turn, step, request, request_tools, sink)
        except ContextWindowExceeded as exc:
            if attempt == 0:
                continue
            await note_model_error(turn, exc)
            return StepOutcome(
                messages=pending,
                stop="context_window_overflow_in_system_prompt",
                detail=f"the model refused the context as too long, even after evicting old "
                f"messages: {exc}",
            )
        except LLMInvalidResponse as exc:
            await note_model_error(turn, exc)
            return StepOutcome(messages=pending, stop="invalid_llm_response", detail=str(exc))
        except LLMError as exc:
            await note_model_error(turn, exc)
            return StepOutcome(messages=pending, stop="llm_api_error", detail=str(exc))
        turn.counter.observe(request, request_tools, response.prompt_tokens)
        break
    assert response is not None
    usage = turn.run.usage
    usage.add(response.prompt_tokens, response.completion_tokens)
    usage.step_count += 1

    new: list[Message] = list(pending)
    calls = [
        c if c.id else msgspec.structs.replace(c, id=f"call-{step_id}-{i}")
        for i, c in enumerate(response.tool_calls)
    ]
    assistant = turn.message(
        "assistant",
        step_id,
        sink.message_id if sink is not None else None,
        content=response.content,
        tool_calls=calls,
    )
    new.append(assistant)

    if not calls:
        refusal = rt.gate.may_end(turn.agent, turn.state)
        if refusal is None:
            if response.content.strip() and not turn.run.replies:
                new[-1] = msgspec.structs.replace(assistant, reply=True)
                turn.run.replies.append(response.content)
            return StepOutcome(messages=new, stop="end_turn")
        new.append(turn.message("user", step_id, content=heartbeat(refusal)))
        return StepOutcome(messages=new)

    wants_more = ends = any_error = False
    all_invalid = True
    last_invalid = ""
    wait: Wait | None = None
    for index, call in enumerate(calls):
        if call.name in tools and rt.gate.needs_approval(turn.agent, turn.state, call.name):
            held = calls[index:]
            turn.agent = msgspec.structs.replace(turn.agent, pending_approval=held)
            asked = [c for c in held if rt.gate.needs_approval(turn.agent, turn.state, c.name)]
            return StepOutcome(
                messages=mark_requests(new, assistant, asked),
                stop="requires_approval",
                approvals=asked,
            )
        try:
            if wait is not None and call.name in _WAITING_TOOLS:
                text, ok, decision, invalid = (
                    "only one wait for other agents per step; call it again next step",
                    False,
                    None,
                    True,
                )
            else:
                text, ok, decision, invalid = await run_call(turn, tools, call, step_id)
        except Suspend as suspend:
            wait, all_invalid = suspend.wait, False
            continue  # its result comes when the replies do
        all_invalid &= invalid
        if invalid:
            last_invalid = text
        new.append(
            turn.message(
                "tool",
                step_id,
                content=tool_result(text, ok, rt.clock()),
                tool_call_id=call.id,
                name=call.name,
                status="success" if ok else "error",
            )
        )
        any_error |= not ok
        wants_more |= decision == "continue"
        ends |= decision == "end"
    if wait is not None:
        return StepOutcome(messages=new, wait=wait)
    turn.invalid_in_a_row = turn.invalid_in_a_row + 1 if all_invalid else 0
    if turn.invalid_in_a_row >= _MAX_INVALID_IN_A_ROW:
        return StepOutcome(
            messages=new,
            stop="invalid_tool_call",
            detail=(
                f"{_MAX_INVALID_IN_A_ROW} steps in a row made only invalid tool calls; "
                f"the last: {_clip(last_invalid)}"
            ),
        )
    if (ends and not any_error) or not (wants_more or any_error):
        refusal = rt.gate.may_end(turn.agent, turn.state)
        if refusal is None:
            return StepOutcome(messages=new, stop="end_turn")
        new.append(turn.message("user", step_id, content=heartbeat(refusal)))
    else:
        reason = HEARTBEAT_AFTER_ERROR if any_error else HEARTBEAT_REASON
        new.append(turn.message("user", step_id, content=heartbeat(reason)))
    return StepOutcome(messages=new)
