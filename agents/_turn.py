"""One turn's state across its steps, and how a step commits.

:class:`Turn` carries the agent, the run and the lease through the steps of
:func:`agents.loop.run_turn`; :meth:`Turn.commit` writes a step (messages, the agent's fields
the turn manages, the run record and the step's events) in one fenced script call.
:func:`resume` answers a run that waited for other agents once their replies or its deadline
came.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from agents._deltas import TokenStream
from agents._waits import end_wait, stage_reply
from agents.context import MemoryStats, archival_totals, compile_system, to_openai_messages
from agents.gate import TurnState
from agents.letta_messages import (
    Event,
    StopReason,
    StopReasonName,
    UsageStatistics,
    event_encoder,
    expand,
)
from agents.prompts import HEARTBEAT_REASON
from agents.runtime import Runtime
from bus import keys as bus_keys
from bus.lease import Lease, WatchConflict, fenced
from bus.run_events import stage_events
from storage import keys
from storage.errors import ControlSignal
from storage.records import Agent, Block, Message, Run, ToolCall, Wait, decode, encode, new_id
from storage.step_reads import StepReads

if TYPE_CHECKING:
    from agents._decide import TurnPolicy

__all__ = (
    "CANCELLED",
    "Preempted",
    "RepliesPending",
    "StepOutcome",
    "Turn",
    "cancel_requested",
    "heartbeat",
    "resume",
    "tool_result",
)

log = structlog.get_logger("memgrid.loop")
# Stop reasons of runs that failed: the model never gave a usable answer, or the turn broke.
_FAILED = frozenset({"error", "llm_api_error", "invalid_llm_response"})
CANCELLED = "a client cancelled the run (POST /v1/agents/{agent_id}/messages/cancel)"


async def cancel_requested(turn: Turn) -> bool:
    """Whether a client asked to cancel the turn's run (checked before each step)."""
    return bool(await turn.rt.redis.exists(bus_keys.run_cancel(turn.agent.id, turn.run.id)))


class Preempted(ControlSignal):
    """The worker is stopping: the run stops after a committed step, to be resumed elsewhere."""


class RepliesPending(ControlSignal):
    """The run waits for other agents' replies; it resumes when they arrive or time out."""


def tool_result(text: str, ok: bool, now: float) -> str:
    return json.dumps(
        {
            "status": "OK" if ok else "Failed",
            "message": text,
            "time": dt.datetime.fromtimestamp(now, tz=dt.UTC).isoformat(),
        },
        ensure_ascii=False,
    )


def heartbeat(reason: str) -> str:
    return json.dumps({"type": "heartbeat", "reason": reason}, ensure_ascii=False)


class StepOutcome(msgspec.Struct, kw_only=True):
    messages: list[Message]
    stop: StopReasonName | None = None
    detail: str | None = None
    wait: Wait | None = None
    approvals: list[ToolCall] = msgspec.field(default_factory=list)


class Turn:
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
        self.on_final_reply: Callable[[Any], None] | None = None  # the last staged's reply
        # The first worker ever to run this run's steps (attempts count starts; a resumed wait
        # is not a new attempt, so it may follow a worker that died mid-step; a dead-letter
        # retry restarts the count but follows a worker that may have journaled a step).
        self.first_attempt = run.attempts <= 1 and run.wait is None and not run.retries
        self.policy: TurnPolicy  # set by run_turn from the agent's type
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

    def message(
        self, role: Any, step_id: str, message_id: str | None = None, **fields: Any
    ) -> Message:
        self.seq += 1
        return Message(
            id=message_id or new_id("message"),
            agent_id=self.agent.id,
            role=role,
            seq=self.seq,
            run_id=self.run.id,
            step_id=step_id,
            created_at=self.rt.clock(),
            **fields,
        )

    def token_stream(self, step_id: str) -> TokenStream | None:
        """Where a step's model call shows its tokens, when a client follows the run live."""
        if not self.run.stream_tokens:
            return None
        rt = self.rt
        ttl = rt.settings.open_events_ttl_s
        return TokenStream(
            rt.redis,
            self.agent.id,
            self.run.id,
            step_id,
            ttl_s=ttl,
            clock=rt.clock,
            text_is_reply=self.policy.text_is_reply,
        )

    async def stats(self, recall_count: int, archive_ids: Sequence[str] = ()) -> MemoryStats:
        tags: tuple[str, ...] = ()
        archival_count = 0
        if self.rt.archival is not None:
            try:
                owners = [self.agent.id, *archive_ids]
                archival_count, found = await archival_totals(self.rt.archival, owners)
                tags = tuple(found)
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

    async def commit(self, outcome: StepOutcome, *, final: bool) -> list[Event]:
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
        if run.wait is not None and not final:
            # Attempts count failures since the run last made progress: each resume from a wait
            # is an attempt of its own (see agents._entry), and a run may wait many times. The
            # deliveries so far are none of the next resume's attempts.
            run.uncounted_deliveries += run.attempts
            run.attempts = 0
        if final:
            run.status = "failed" if outcome.stop in _FAILED else "completed"
            if outcome.stop == "cancelled":
                run.status = "cancelled"
            run.stop_reason = outcome.stop
            run.error = outcome.detail if run.status == "failed" else None
            run.completed_at = rt.clock()
            usage = run.usage
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
        reply: list[Any] = []
        for attempt in range(10):
            try:
                async with fenced(
                    rt.redis,
                    self.lease,
                    self.agent.id,
                    expect={agent_key: self.agent_raw},
                    reply=reply,
                ) as pipe:
                    rt.messages.stage(pipe, outcome.messages)
                    written = rt.agents.stage_save(pipe, self.agent)
                    retain = rt.settings
                    run_key = keys.run(self.agent.id, run.id)
                    pipe.set(run_key, encode(run), ex=retain.run_ttl_s if final else None)
                    if final:  # runs created before the oldest kept one are gone or going
                        cutoff = f"({rt.clock() - retain.run_ttl_s!r}"
                        pipe.zremrangebyscore(keys.agent_runs(self.agent.id), "-inf", cutoff)
                    stage_events(
                        pipe,
                        self.agent.id,
                        run.id,
                        encoded,
                        final=final,
                        finished_ttl_s=retain.events_ttl_s,
                        open_ttl_s=retain.open_events_ttl_s,
                    )
                    if final:  # the reply to a waiting agent travels in the commit
                        stage_reply(pipe, run, rt.clock())
                        pipe.delete(bus_keys.run_cancel(self.agent.id, run.id))
                    if final and self.lease is not None and run.steps:
                        journals = [
                            bus_keys.step_journal(self.agent.id, run.id, s)
                            for s in range(run.steps)
                        ]
                        pipe.delete(*journals)
                    if final and self.on_final is not None:  # last: its reply is kept
                        self.on_final(pipe)
                self.agent_raw = written
                if final and self.on_final_reply is not None and reply:
                    self.on_final_reply(reply[-1])
                break
            except WatchConflict:
                if attempt == 9:
                    raise
                # The API changed the agent's settings during the step: keep them, and write
                # only the fields this turn manages.
                fresh, self.agent_raw = await rt.agents.get_raw(self.agent.id)
                self.agent = self.own_fields(fresh, updated_at=rt.clock())
        return events


async def resume(turn: Turn) -> list[Message]:
    """The messages that answer a waiting run's tool call, once replies or the deadline came.

    Raises:
        RepliesPending: replies are still due and the deadline has not passed.
    """
    rt, run = turn.rt, turn.run
    wait = run.wait
    assert wait is not None
    key = bus_keys.wait_replies(turn.agent.id, run.id, wait.call_id)
    async with rt.redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(key)
        pipe.execute_command("TIME")  # (pipe.time() is refused by a cluster's pipeline)
        for target in wait.targets:  # each agent has a hash slot of its own
            pipe.get(keys.agent(target))
        raw, (seconds, micros), *records = await pipe.execute()
    replies = {
        (k.decode() if isinstance(k, bytes) else str(k)): json.loads(v) for k, v in raw.items()
    }
    # The deadline is on the server's clock (as the timers are): a worker whose own clock is
    # behind must not take a fired timer for an early wake-up, and sleep on with none left.
    if len(replies) < len(wait.targets) and seconds + micros / 1e6 < wait.deadline:
        raise RepliesPending(
            f"run {run.id} still waits for {len(wait.targets) - len(replies)} replies"
        )
    now = rt.clock()
    await end_wait(rt.redis, run)
    names = _names(wait.targets, records)
    if wait.tool_name == "send_message_to_agent_and_wait_for_reply":
        target = wait.targets[0]
        if target in replies:
            text, ok = replies[target]["reply"], replies[target].get("status") != "failed"
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
            content=tool_result(text, ok, now),
            tool_call_id=wait.call_id,
            name=wait.tool_name,
            status="success" if ok else "error",
        )
    ]
    turn.state.last_output = text
    # The rules decide as if the tool had just returned: exit_loop on it ends the turn here.
    if rt.gate.after(turn.agent, turn.state, wait.tool_name) == "end":
        turn.end_after_resume = True
    elif turn.policy.heartbeats:
        messages.append(turn.message("user", step_id, content=heartbeat(HEARTBEAT_REASON)))
    run.wait = None  # the replies stay (with a TTL): a re-run of this resume reads them again
    return messages


def _names(ids: Sequence[str], records: Sequence[bytes | None]) -> dict[str, str]:
    """Agents' names by id, for the tool's result; an agent deleted or unreadable since keeps
    its id (a reply must not be lost to a name lookup)."""
    names: dict[str, str] = {}
    for agent_id, raw in zip(ids, records, strict=True):
        try:
            names[agent_id] = decode(Agent, raw).name if raw is not None else agent_id
        except (msgspec.DecodeError, msgspec.ValidationError):
            names[agent_id] = agent_id
    return names
