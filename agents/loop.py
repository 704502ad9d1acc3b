"""The step loop: one input in, a stream of events out, until the turn ends.

Each step compiles the context, calls the model, validates and runs its tool calls, and commits
the step's new messages and the agent's in-context list in one Redis transaction, then yields
the step's events. The loop is transport-agnostic: a worker, the CLI or a test drives it.

A turn ends on a tool call that does not ask for a heartbeat, on text with no tool call (which
becomes the reply if nothing reached the user yet), at the agent's step limit, or on an error.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import msgspec
import structlog

from agents.context import MemoryStats, compile_system, to_openai_messages
from agents.events import Event, StopReason, StopReasonName, UsageStatistics, expand
from agents.gate import TurnState
from agents.llm import ContextWindowExceeded, LLMError, LLMResponse
from agents.prompts import HEARTBEAT_AFTER_ERROR, HEARTBEAT_REASON
from agents.runtime import Runtime
from agents.summarizer import ContextOverflow, compact
from agents.tools.base import ToolContext, ToolError
from agents.tools.registry import HEARTBEAT_ARG, INNER_THOUGHTS_ARG, AgentTool, agent_tools
from agents.tools.schema import validate_arguments
from storage.records import Agent, Block, Message, Usage, new_id

__all__ = ("InputMessage", "TurnResult", "run_turn")

log = structlog.get_logger("memgrid.loop")
_MAX_INVALID_IN_A_ROW = 4


class InputMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A message that starts a turn."""

    content: str
    role: str = "user"
    otid: str | None = None
    sender_id: str | None = None


class TurnResult(msgspec.Struct, kw_only=True):
    """What :func:`run_turn` leaves behind, for callers that need more than events."""

    stop_reason: StopReasonName = "end_turn"
    usage: Usage = msgspec.field(default_factory=Usage)
    replies: list[str] = msgspec.field(default_factory=list)


def _tool_result(text: str, ok: bool, now: float) -> str:
    return json.dumps(
        {
            "status": "OK" if ok else "Failed",
            "message": text,
            "time": dt.datetime.fromtimestamp(now, tz=dt.UTC).isoformat(),
        },
        ensure_ascii=False,
    )


class _Turn:
    """The state of one turn across its steps."""

    def __init__(self, rt: Runtime, agent: Agent, run_id: str, result: TurnResult) -> None:
        self.rt = rt
        self.agent = agent
        self.run_id = run_id
        self.result = result
        self.state = TurnState()
        self.seq = 0
        self.invalid_in_a_row = 0
        self.blocks: list[Block] = []
        self.llm = rt.llm.for_agent(agent)
        self.counter = rt.counter(agent.model)

    def message(self, role: Any, step_id: str, **fields: Any) -> Message:
        self.seq += 1
        return Message(
            id=new_id("message"),
            agent_id=self.agent.id,
            role=role,
            seq=self.seq,
            run_id=self.run_id,
            step_id=step_id,
            created_at=self.rt.clock(),
            **fields,
        )

    async def stats(self) -> MemoryStats:
        tags: tuple[str, ...]
        archival_count, tags = 0, ()
        if self.rt.archival is not None:
            archival_count = await self.rt.archival.count(self.agent.id)
            tags = tuple(await self.rt.archival.tags(self.agent.id))
        return MemoryStats(
            now=self.rt.clock(),
            last_memory_edit_at=self.agent.last_memory_edit_at,
            recall_count=await self.rt.messages.count(self.agent.id),
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

    async def commit(self, messages: Sequence[Message]) -> None:
        """Persist the step's messages and the agent's new in-context list together."""
        ids = [*self.agent.message_ids, *(m.id for m in messages)]
        self.agent = msgspec.structs.replace(
            self.agent, message_ids=ids, updated_at=self.rt.clock()
        )
        async with self.rt.redis.pipeline(transaction=True) as pipe:
            self.rt.messages.stage(pipe, messages)
            self.rt.agents.stage_save(pipe, self.agent)
            await pipe.execute()


async def run_turn(
    rt: Runtime,
    agent_id: str,
    inputs: Sequence[InputMessage],
    *,
    run_id: str | None = None,
    result: TurnResult | None = None,
) -> AsyncIterator[Event]:
    """Run one turn of ``agent_id`` on ``inputs``, yielding events as each step commits."""
    run_id = run_id or new_id("run")
    result = result if result is not None else TurnResult()
    agent = await rt.agents.get(agent_id)
    turn = _Turn(rt, agent, run_id, result)
    turn.seq = await rt.messages.next_seq(agent.id) - 1
    bound = log.bind(agent_id=agent.id, run_id=run_id)
    pending: list[Message] = [
        turn.message(
            m.role, f"step-{run_id}-0", content=m.content, otid=m.otid, sender_id=m.sender_id
        )
        for m in inputs
    ]
    started = anyio.current_time()
    bound.info("turn_start", inputs=len(inputs))
    stop: StopReasonName = "end_turn"
    detail: str | None = None
    try:
        for step in range(agent.max_steps):
            turn.state.step = step
            turn.state.step_calls = []
            outcome = await _step(turn, pending, step)
            pending = []
            for message in outcome.messages:
                if message.role != "user":
                    for event in expand(message):
                        yield event
            if outcome.stop is not None:
                stop, detail = outcome.stop, outcome.detail
                break
        else:
            stop = "max_steps"
    except Exception as exc:  # the turn must end with a stop reason, never a hang
        bound.exception("turn_failed")
        stop, detail = "error", f"{type(exc).__name__}: {exc}"
        if pending:
            await turn.commit(pending)
    result.stop_reason = stop
    bound.info(
        "turn_finish",
        stop_reason=stop,
        steps=result.usage.step_count,
        duration_ms=round((anyio.current_time() - started) * 1000, 2),
    )
    yield StopReason(stop_reason=stop, detail=detail)
    usage = result.usage
    yield UsageStatistics(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        step_count=usage.step_count,
    )


class _StepOutcome(msgspec.Struct, kw_only=True):
    messages: list[Message]
    stop: StopReasonName | None = None
    detail: str | None = None


async def _step(turn: _Turn, pending: list[Message], step: int) -> _StepOutcome:
    rt, step_id = turn.rt, f"step-{turn.run_id}-{step}"
    agent = turn.agent = await rt.agents.get(turn.agent.id)  # others may have changed it
    blocks = turn.blocks = await rt.blocks.get_many(agent.block_ids)
    customs = await rt.tools.get_many_by_name(agent.tools)
    tools = agent_tools(agent, customs)
    offered = rt.gate.offered(agent, turn.state, list(tools))
    schemas = [tools[name].openai() for name in offered if name in tools]
    stats = await turn.stats()
    build = turn.builder(blocks, stats, schemas)
    committed = await rt.messages.get(agent.id, agent.message_ids)

    response: LLMResponse | None = None
    for attempt in range(2):
        # This turn's own messages stay: the model must see the results it asked for.
        split = next(
            (i for i, m in enumerate(committed) if m.run_id == turn.run_id), len(committed)
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
            await turn.commit(pending)
            return _StepOutcome(
                messages=pending, stop="context_window_overflow_in_system_prompt", detail=str(exc)
            )
        if compaction.evicted:
            turn.agent = msgspec.structs.replace(
                compaction.agent,
                message_ids=[*compaction.agent.message_ids, *(m.id for m in current)],
            )
            committed = [*compaction.kept, *current]
            turn.result.usage.add(compaction.prompt_tokens, compaction.completion_tokens)
            await rt.agents.save(turn.agent)
        request, request_tools = build(turn.agent, [*committed, *pending])
        try:
            response = await turn.llm.chat(agent.model, request, request_tools)
        except ContextWindowExceeded:
            if attempt == 0:
                continue
            await turn.commit(pending)
            return _StepOutcome(messages=pending, stop="context_window_overflow_in_system_prompt")
        except LLMError as exc:
            await turn.commit(pending)
            return _StepOutcome(messages=pending, stop="llm_api_error", detail=str(exc))
        turn.counter.observe(request, request_tools, response.prompt_tokens)
        break
    assert response is not None
    usage = turn.result.usage
    usage.add(response.prompt_tokens, response.completion_tokens)
    usage.step_count += 1

    new: list[Message] = list(pending)
    for index, call in enumerate(response.tool_calls):
        if not call.id:
            response.tool_calls[index] = msgspec.structs.replace(call, id=new_id("call"))
    assistant = turn.message(
        "assistant", step_id, content=response.content, tool_calls=response.tool_calls
    )
    new.append(assistant)

    if not response.tool_calls:
        refusal = rt.gate.may_end(turn.agent, turn.state)
        if refusal is None:
            if response.content.strip() and not turn.result.replies:
                assistant = msgspec.structs.replace(assistant, reply=True)
                new[-1] = assistant
                turn.result.replies.append(response.content)
            await turn.commit(new)
            return _StepOutcome(messages=new, stop="end_turn")
        new.append(turn.message("user", step_id, content=_heartbeat(refusal)))
        await turn.commit(new)
        return _StepOutcome(messages=new)

    wants_more = False
    ends = False
    any_error = False
    all_invalid = True
    for call in response.tool_calls:
        text, ok, decision, invalid = await _run_call(turn, tools, call, step_id)
        all_invalid &= invalid
        tool_message = turn.message(
            "tool",
            step_id,
            content=_tool_result(text, ok, rt.clock()),
            tool_call_id=call.id,
            name=call.name,
            status="success" if ok else "error",
        )
        new.append(tool_message)
        any_error |= not ok
        if decision == "continue":
            wants_more = True
        elif decision == "end":
            ends = True
    turn.invalid_in_a_row = turn.invalid_in_a_row + 1 if all_invalid else 0
    if turn.invalid_in_a_row >= _MAX_INVALID_IN_A_ROW:
        await turn.commit(new)
        return _StepOutcome(
            messages=new,
            stop="invalid_tool_call",
            detail=f"{_MAX_INVALID_IN_A_ROW} steps in a row made only invalid tool calls",
        )
    if ends and not any_error:
        refusal = rt.gate.may_end(turn.agent, turn.state)
        if refusal is None:
            await turn.commit(new)
            return _StepOutcome(messages=new, stop="end_turn")
        new.append(turn.message("user", step_id, content=_heartbeat(refusal)))
    elif wants_more or any_error:
        reason = HEARTBEAT_AFTER_ERROR if any_error else HEARTBEAT_REASON
        new.append(turn.message("user", step_id, content=_heartbeat(reason)))
    else:
        refusal = rt.gate.may_end(turn.agent, turn.state)
        if refusal is None:
            await turn.commit(new)
            return _StepOutcome(messages=new, stop="end_turn")
        new.append(turn.message("user", step_id, content=_heartbeat(refusal)))
    await turn.commit(new)
    return _StepOutcome(messages=new)


def _heartbeat(reason: str) -> str:
    return json.dumps({"type": "heartbeat", "reason": reason}, ensure_ascii=False)


async def _run_call(
    turn: _Turn,
    tools: dict[str, AgentTool],
    call: Any,
    step_id: str,
) -> tuple[str, bool, str | None, bool]:
    """Run one tool call; returns (output, ok, "continue" | "end" | None, invalid).

    ``invalid`` marks a call that could not be made at all (unknown tool, arguments that are
    not JSON or do not fit the schema), as opposed to a tool that ran and refused.
    """
    rt, agent, state = turn.rt, turn.agent, turn.state
    tool = tools.get(call.name)
    if tool is None:
        names = ", ".join(sorted(tools)) or "none"
        return (
            f"there is no tool named {call.name!r}; the tools you have are: {names}",
            False,
            None,
            True,
        )
    refusal = rt.gate.refuse(agent, state, call.name)
    if refusal is not None:
        return refusal, False, None, True
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError as exc:
        return (
            f"the arguments of {call.name} were not valid JSON ({exc}); send a JSON object "
            "with the tool's parameters",
            False,
            None,
            True,
        )
    if not isinstance(arguments, dict):
        return (
            f"the arguments of {call.name} must be a JSON object, not {type(arguments).__name__}",
            False,
            None,
            True,
        )
    heartbeat = arguments.pop(HEARTBEAT_ARG, None)
    arguments.pop(INNER_THOUGHTS_ARG, None)
    # A null for an optional argument means "not given": let the tool's default apply.
    required = set(tool.schema.parameters.get("required", ()))
    arguments = {k: v for k, v in arguments.items() if v is not None or k in required}
    problems = validate_arguments(tool.schema, arguments)
    if problems:
        return f"invalid arguments for {call.name}: " + "; ".join(problems), False, None, True
    state.calls.append(call.name)
    state.step_calls.append(call.name)
    state.last_tool = call.name
    ok = True
    try:
        with anyio.fail_after(rt.tool_timeout_s):
            if tool.base is not None:
                ctx = ToolContext(
                    agent=agent,
                    blocks=turn.blocks,
                    block_store=rt.blocks,
                    messages=rt.messages,
                    archival=rt.archival,
                    run_id=turn.run_id,
                    step_id=step_id,
                    call_id=call.id,
                )
                output = tool.base(ctx, **arguments)
                text = await output if not isinstance(output, str) else output
                turn.result.replies.extend(ctx.sent_messages)
                turn.blocks = ctx.blocks
                if ctx.memory_edited:
                    turn.agent = msgspec.structs.replace(turn.agent, last_memory_edit_at=rt.clock())
            else:
                assert tool.record is not None
                text, ok = await rt.custom_tools(tool.record, arguments, agent)
    except ToolError as exc:
        text, ok = str(exc), False
    except TimeoutError:
        text, ok = f"{call.name} did not finish within {rt.tool_timeout_s:.0f}s", False
    except Exception as exc:
        log.warning("tool_failed", tool=call.name, error=repr(exc))
        text, ok = f"{call.name} failed: {type(exc).__name__}: {exc}", False
    if tool.record is not None and len(text) > tool.record.return_char_limit:
        text = text[: tool.record.return_char_limit] + " … (truncated)"
    state.last_output = text
    forced = rt.gate.after(agent, state, call.name)
    if forced is not None:
        return text, ok, forced, False
    if tool.terminal:
        return text, ok, "end", False
    if heartbeat is True:
        return text, ok, "continue", False
    if heartbeat is False:
        return text, ok, "end", False
    # No heartbeat flag: keep going until the user has been answered (models often forget it).
    return text, ok, "continue" if not turn.result.replies else "end", False
