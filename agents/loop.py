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

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
import msgspec
import redis.exceptions
import structlog

from agents._approval import answer_pending
from agents._calls import run_call
from agents.context import MemoryStats, compile_system, to_openai_messages
from agents.events import (
    ApprovalRequestMessage,
    Event,
    StopReason,
    StopReasonName,
    ToolCallBody,
    UsageStatistics,
    event_encoder,
    expand,
    iso,
)
from agents.gate import TurnState
from agents.llm import ContextWindowExceeded, LLMError, LLMResponse
from agents.messaging import Suspend
from agents.prompts import HEARTBEAT_AFTER_ERROR, HEARTBEAT_REASON
from agents.runtime import Runtime
from agents.summarizer import ContextOverflow, compact
from agents.tools.registry import agent_tools
from bus import keys as bus_keys
from bus.errors import LeaseLost
from bus.events import stage_events
from bus.lease import Lease, WatchConflict, fenced, journal
from storage import keys
from storage.records import Agent, Block, Message, Run, ToolCall, Wait, decode, encode, new_id
from storage.step_reads import StepReads, read_step

__all__ = ("InputMessage", "Preempted", "Suspended", "TurnResult", "run_turn")

log = structlog.get_logger("memgrid.loop")
_MAX_INVALID_IN_A_ROW = 4
JOURNAL_TTL_S = 24 * 3600
# Failures that must not be turned into a stop reason: the run is retried or resumed.
_PROPAGATE = (LeaseLost, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_llm_decoder = msgspec.json.Decoder(LLMResponse)
# Tools whose effects are all inside the step's commit (a reply, reads): no journal needed.
_COMMIT_ONLY_TOOLS = frozenset({"send_message", "conversation_search", "archival_memory_search"})
_WAITING_TOOLS = frozenset(
    {"send_message_to_agent_and_wait_for_reply", "send_message_to_agents_matching_tags"}
)


class Preempted(Exception):
    """The worker is stopping: the run stops after a committed step, to be resumed elsewhere."""


class Suspended(Exception):
    """The run waits for other agents' replies; it resumes when they arrive or time out."""


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


def _tool_result(text: str, ok: bool, now: float) -> str:
    return json.dumps(
        {
            "status": "OK" if ok else "Failed",
            "message": text,
            "time": dt.datetime.fromtimestamp(now, tz=dt.UTC).isoformat(),
        },
        ensure_ascii=False,
    )


def _heartbeat(reason: str) -> str:
    return json.dumps({"type": "heartbeat", "reason": reason}, ensure_ascii=False)


class _StepOutcome(msgspec.Struct, kw_only=True):
    messages: list[Message]
    stop: StopReasonName | None = None
    detail: str | None = None
    wait: Wait | None = None
    approvals: list[ToolCall] = msgspec.field(default_factory=list)


class _Turn:
    """The state of one turn across its steps."""

    def __init__(
        self, rt: Runtime, agent: Agent, agent_raw: bytes, run: Run, lease: Lease | None
    ) -> None:
        self.rt = rt
        self.agent = agent
        self.agent_raw = agent_raw  # the record as last read or written
        self.run = run
        self.lease = lease
        self.fence = (bus_keys.fence(agent.id), lease.token) if lease is not None else None
        self.state = TurnState(
            calls=list(run.calls),
            last_tool=run.calls[-1] if run.calls else None,
            last_output=run.last_output,
        )
        self.seq = 0
        self.invalid_in_a_row = 0
        self.blocks: list[Block] = []
        self.end_after_resume = False
        self.loaded_at_step = run.steps  # the record read by run_turn serves the first step
        self.preloaded: StepReads | None = None
        self.on_final: Callable[[Any], None] | None = None
        # The first worker ever to run this run's steps (attempts count starts; a resumed wait
        # is not a new attempt, so it may follow a worker that died mid-step).
        self.first_attempt = run.attempts <= 1 and run.wait is None
        self.llm = rt.llm.for_agent(agent)
        self.counter = rt.counter(agent.model)

    def own_fields(self, fresh: Agent, **changes: Any) -> Agent:
        """``fresh`` (the stored record, maybe edited by the API meanwhile) with the fields this
        turn manages itself taken from the turn."""
        agent = self.agent
        return msgspec.structs.replace(
            fresh,
            message_ids=agent.message_ids,
            summary=agent.summary,
            evicted_count=agent.evicted_count,
            pending_approval=agent.pending_approval,
            last_memory_edit_at=agent.last_memory_edit_at,
            **changes,
        )

    def message(self, role: Any, step_id: str, **fields: Any) -> Message:
        self.seq += 1
        return Message(
            id=new_id("message"),
            agent_id=self.agent.id,
            role=role,
            seq=self.seq,
            run_id=self.run.id,
            step_id=step_id,
            created_at=self.rt.clock(),
            **fields,
        )

    async def stats(self, recall_count: int) -> MemoryStats:
        tags: tuple[str, ...] = ()
        archival_count = 0
        if self.rt.archival is not None:
            try:
                archival_count = await self.rt.archival.count(self.agent.id)
                tags = tuple(await self.rt.archival.tags(self.agent.id))
            except Exception as exc:  # metadata must not stop the agent; tools report it
                log.warning("archival_unavailable", agent_id=self.agent.id, error=str(exc))
        return MemoryStats(
            now=self.rt.clock(),
            last_memory_edit_at=self.agent.last_memory_edit_at,
            recall_count=recall_count,
            archival_count=archival_count,
            archival_tags=tags,
            evicted_count=self.agent.evicted_count,
        )

    def builder(
        self, blocks: Sequence[Block], stats: MemoryStats, tools: list[dict[str, Any]]
    ) -> Any:
        rules = self.rt.gate.prompt(self.agent)

        def build(
            agent: Agent, messages: Sequence[Message]
        ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            system = compile_system(agent.system, blocks, stats, summary=agent.summary, rules=rules)
            return [{"role": "system", "content": system}, *to_openai_messages(messages)], tools

        return build

    async def commit(self, outcome: _StepOutcome, *, final: bool) -> list[Event]:
        """Commit a step: messages, agent, run record and events, in one fenced transaction."""
        rt, run = self.rt, self.run
        ids = [*self.agent.message_ids, *(m.id for m in outcome.messages)]
        self.agent = msgspec.structs.replace(self.agent, message_ids=ids, updated_at=rt.clock())
        events: list[Event] = [
            event for m in outcome.messages if m.role != "user" for event in expand(m)
        ]
        run.calls = list(self.state.calls)
        run.last_output = self.state.last_output
        run.status = "waiting" if run.wait is not None else "running"
        if final:
            run.status = "failed" if outcome.stop in ("error", "llm_api_error") else "completed"
            run.stop_reason = outcome.stop
            run.error = outcome.detail if run.status == "failed" else None
            run.completed_at = rt.clock()
            usage = run.usage
            events += [
                ApprovalRequestMessage(
                    id=new_id("message"),
                    date=iso(rt.clock()),
                    run_id=run.id,
                    tool_call=ToolCallBody(name=c.name, arguments=c.arguments, tool_call_id=c.id),
                    tool_calls=[
                        ToolCallBody(name=c.name, arguments=c.arguments, tool_call_id=c.id)
                    ],
                )
                for c in outcome.approvals
            ]
            events.append(StopReason(stop_reason=outcome.stop or "end_turn", detail=outcome.detail))
            events.append(
                UsageStatistics(
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    total_tokens=usage.total_tokens,
                    step_count=usage.step_count,
                )
            )
        agent_key = keys.agent(self.agent.id)
        encoded = [event_encoder.encode(e) for e in events]
        for attempt in range(10):
            try:
                async with fenced(
                    rt.redis, self.lease, self.agent.id, expect={agent_key: self.agent_raw}
                ) as pipe:
                    rt.messages.stage(pipe, outcome.messages)
                    written = rt.agents.stage_save(pipe, self.agent)
                    pipe.set(keys.run(self.agent.id, run.id), encode(run))
                    stage_events(pipe, self.agent.id, run.id, encoded, final=final)
                    if run.wait is not None:
                        pipe.zadd(bus_keys.timers(), {self.agent.id: run.wait.deadline})
                    if final and self.on_final is not None:
                        self.on_final(pipe)
                    if final and self.lease is not None and run.steps:
                        journals = [
                            bus_keys.step_journal(self.agent.id, run.id, s)
                            for s in range(run.steps)
                        ]
                        pipe.delete(*journals)
                self.agent_raw = written
                break
            except WatchConflict:
                if attempt == 9:
                    raise
                # The API changed the agent's settings during the step: keep them, and write
                # only the fields this turn manages.
                fresh, self.agent_raw = await rt.agents.get_raw(self.agent.id)
                self.agent = self.own_fields(fresh, updated_at=rt.clock())
        return events


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
            :class:`Preempted`, leaving the run to be resumed.
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
    turn = _Turn(rt, agent, agent_record, run, lease)
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
            for event in await turn.commit(_StepOutcome(messages=[], stop="end_turn"), final=True):
                yield event
            return
    if run.wait is not None:
        pending = await _resume(turn)  # raises Suspended while replies are still due
        if turn.end_after_resume:
            result.stop_reason = "end_turn"
            ended = _StepOutcome(messages=pending, stop="end_turn")
            for event in await turn.commit(ended, final=True):
                yield event
            return
    if run.started_at is None:
        run.started_at = rt.clock()
    started = anyio.current_time()
    bound.info("turn_start", inputs=len(inputs), resume_from=first)
    outcome = _StepOutcome(messages=[], stop="max_steps")
    try:
        limit = agent.max_steps if max_steps is None else min(agent.max_steps, max_steps)
        for step in range(first, limit):
            turn.state.step = step
            turn.state.step_calls = []
            outcome = await _step(turn, pending, step)
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
            outcome = _StepOutcome(messages=[], stop="max_steps")
    except (*_PROPAGATE, Preempted, Suspended):
        raise
    except Exception as exc:  # the turn must end with a stop reason, never a hang
        bound.exception("turn_failed")
        outcome = _StepOutcome(
            messages=pending, stop="error", detail=f"{type(exc).__name__}: {exc}"
        )
    result.stop_reason = outcome.stop or "end_turn"
    for event in await turn.commit(outcome, final=True):
        yield event
    bound.info(
        "turn_finish",
        stop_reason=result.stop_reason,
        steps=run.usage.step_count,
        duration_ms=round((anyio.current_time() - started) * 1000, 2),
    )


async def _resume(turn: _Turn) -> list[Message]:
    """The messages that answer a waiting run's tool call, once replies or the deadline came.

    Raises:
        Suspended: replies are still due and the deadline has not passed.
    """
    rt, run = turn.rt, turn.run
    wait = run.wait
    assert wait is not None
    key = bus_keys.wait_replies(turn.agent.id, run.id, wait.call_id)
    raw = await rt.redis.hgetall(key)
    replies = {
        (k.decode() if isinstance(k, bytes) else str(k)): json.loads(v) for k, v in raw.items()
    }
    now = rt.clock()
    if len(replies) < len(wait.targets) and now < wait.deadline:
        raise Suspended(f"run {run.id} still waits for {len(wait.targets) - len(replies)} replies")
    names = {a.id: a.name for a in await rt.agents.list() if a.id in wait.targets}
    if wait.tool_name == "send_message_to_agent_and_wait_for_reply":
        target = wait.targets[0]
        if target in replies:
            text, ok = replies[target]["reply"], True
        else:
            text, ok = (
                f"agent {names.get(target, target)!r} did not reply within the timeout; "
                "carry on without its answer or try again later",
                False,
            )
    else:
        rows = [
            {
                "agent": names.get(t, t),
                "agent_id": t,
                "reply": replies[t]["reply"] if t in replies else None,
                "status": "replied" if t in replies else "no reply within the timeout",
            }
            for t in wait.targets
        ]
        text, ok = json.dumps(rows, ensure_ascii=False), bool(replies)
    step_id = f"step-{run.id}-{run.steps}"
    messages = [
        turn.message(
            "tool",
            step_id,
            content=_tool_result(text, ok, now),
            tool_call_id=wait.call_id,
            name=wait.tool_name,
            status="success" if ok else "error",
        )
    ]
    turn.state.last_output = text
    # The rules decide as if the tool had just returned: exit_loop on it ends the turn here.
    if rt.gate.after(turn.agent, turn.state, wait.tool_name) == "end":
        turn.end_after_resume = True
    else:
        messages.append(turn.message("user", step_id, content=_heartbeat(HEARTBEAT_REASON)))
    run.wait = None  # the replies stay (with a TTL): a re-run of this resume reads them again
    return messages


async def _llm_for_step(turn: _Turn, step: int, request: Any, tools: Any) -> LLMResponse:
    """The model's answer for ``step``: journaled under a lease, so a re-run replays it.

    A re-run must see the same answer when the first run's tools had effects outside the step's
    commit (block edits, archival inserts, sends: keyed by step and call id). Calls to tools
    whose effects are all in the commit need no journal, and a run on its first attempt that
    did not resume a wait has no journal to read: no one ran its steps before.
    """
    if turn.lease is None:
        return await turn.llm.chat(turn.agent.model, request, tools)
    key = bus_keys.step_journal(turn.agent.id, turn.run.id, step)
    if not turn.first_attempt:
        journaled = await turn.rt.redis.get(key)
        if journaled is not None:
            return _llm_decoder.decode(journaled)
    response = await turn.llm.chat(turn.agent.model, request, tools)
    if all(call.name in _COMMIT_ONLY_TOOLS for call in response.tool_calls):
        return response
    # First writer wins, and only while the lease is ours: a stale worker racing us can neither
    # make the two disagree nor leave a journal behind a finished run.
    ours = msgspec.json.encode(response)
    kept = await journal(turn.rt.redis, turn.lease, key, ours, JOURNAL_TTL_S)
    return response if kept == ours else _llm_decoder.decode(kept)


async def _step(turn: _Turn, pending: list[Message], step: int) -> _StepOutcome:
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
    build = turn.builder(blocks, await turn.stats(reads.message_count), schemas)
    committed = reads.messages

    response: LLMResponse | None = None
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
            return _StepOutcome(
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
            response = await _llm_for_step(turn, step, request, request_tools)
        except ContextWindowExceeded:
            if attempt == 0:
                continue
            return _StepOutcome(messages=pending, stop="context_window_overflow_in_system_prompt")
        except LLMError as exc:
            return _StepOutcome(messages=pending, stop="llm_api_error", detail=str(exc))
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
    assistant = turn.message("assistant", step_id, content=response.content, tool_calls=calls)
    new.append(assistant)

    if not calls:
        refusal = rt.gate.may_end(turn.agent, turn.state)
        if refusal is None:
            if response.content.strip() and not turn.run.replies:
                new[-1] = msgspec.structs.replace(assistant, reply=True)
                turn.run.replies.append(response.content)
            return _StepOutcome(messages=new, stop="end_turn")
        new.append(turn.message("user", step_id, content=_heartbeat(refusal)))
        return _StepOutcome(messages=new)

    wants_more = ends = any_error = False
    all_invalid = True
    wait: Wait | None = None
    for index, call in enumerate(calls):
        if call.name in tools and rt.gate.needs_approval(turn.agent, turn.state, call.name):
            held = calls[index:]
            turn.agent = msgspec.structs.replace(turn.agent, pending_approval=held)
            return _StepOutcome(
                messages=new,
                stop="requires_approval",
                approvals=[
                    c for c in held if rt.gate.needs_approval(turn.agent, turn.state, c.name)
                ],
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
        new.append(
            turn.message(
                "tool",
                step_id,
                content=_tool_result(text, ok, rt.clock()),
                tool_call_id=call.id,
                name=call.name,
                status="success" if ok else "error",
            )
        )
        any_error |= not ok
        wants_more |= decision == "continue"
        ends |= decision == "end"
    if wait is not None:
        return _StepOutcome(messages=new, wait=wait)
    turn.invalid_in_a_row = turn.invalid_in_a_row + 1 if all_invalid else 0
    if turn.invalid_in_a_row >= _MAX_INVALID_IN_A_ROW:
        return _StepOutcome(
            messages=new,
            stop="invalid_tool_call",
            detail=f"{_MAX_INVALID_IN_A_ROW} steps in a row made only invalid tool calls",
        )
    if (ends and not any_error) or not (wants_more or any_error):
        refusal = rt.gate.may_end(turn.agent, turn.state)
        if refusal is None:
            return _StepOutcome(messages=new, stop="end_turn")
        new.append(turn.message("user", step_id, content=_heartbeat(refusal)))
    else:
        reason = HEARTBEAT_AFTER_ERROR if any_error else HEARTBEAT_REASON
        new.append(turn.message("user", step_id, content=_heartbeat(reason)))
    return _StepOutcome(messages=new)
