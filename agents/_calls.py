"""Running one tool call of a step: validation, rules, execution, the continue decision."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import structlog

from agents import metrics
from agents.gate import Decision
from agents.llm import ContextWindowExceeded, LLMError, LLMInvalidResponse
from agents.messaging import AwaitReplies, Messaging
from agents.tools.base import ToolContext, ToolError
from agents.tools.registry import HEARTBEAT_ARG, INNER_THOUGHTS_ARG, AgentTool
from agents.tools.schema import validate_arguments
from bus.errors import LeaseLost
from bus.recent_errors import record_error
from storage.archives import ArchiveStore
from storage.errors import StaleWriter

if TYPE_CHECKING:
    from agents._turn import Turn

log = structlog.get_logger("memgrid.loop")

__all__ = ("CallOutcome", "Next", "note_model_error", "run_call")

Next = Decision
"""What a call asks of the turn: another step ("continue"), or the end ("end")."""


class CallOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """One tool call's result and what it asks of the turn.

    Attributes:
        text: the tool's output (or why it could not run), as the model will read it.
        ok: the tool ran and succeeded.
        next: MemGPT's continue decision for this call (tool rules first, then the
            ``request_heartbeat`` flag, then "go on until the user was answered").
        forced: ``next`` came from a tool rule or a terminal tool, not from the heartbeat flag.
        invalid: the call could not be made at all (unknown tool, arguments that are not JSON
            or do not fit the schema, a rule forbids it), as opposed to a tool that refused.
    """

    text: str
    ok: bool
    next: Next | None = None
    forced: bool = False
    invalid: bool = False


_SANDBOX_LIMIT = "(sandbox limit "  # how agents.sandbox names a limit a call ran into


async def note_model_error(turn: Turn, exc: LLMError) -> None:
    """Record a model call that failed for good (after its retries) in the recent errors."""
    if isinstance(exc, LLMInvalidResponse):
        kind = "invalid_response"
    elif isinstance(exc, ContextWindowExceeded):
        kind = "context_window"
    else:
        kind = metrics.error_kind(exc.__cause__ or exc)
    await record_error(
        turn.rt.redis,
        kind=f"model_{kind}",
        agent_id=turn.agent.id,
        run_id=turn.run.id,
        message=str(exc),
    )


def _invalid(text: str) -> CallOutcome:
    return CallOutcome(text=text, ok=False, invalid=True)


async def run_call(turn: Turn, tools: dict[str, AgentTool], call: Any, step_id: str) -> CallOutcome:
    """Run one tool call: its output and what it asks of the turn."""
    rt, agent, state = turn.rt, turn.agent, turn.state
    tool = tools.get(call.name)
    if tool is None:
        names = ", ".join(sorted(tools)) or "none"
        return _invalid(f"there is no tool named {call.name!r}; the tools you have are: {names}")
    refusal = rt.gate.refuse(agent, state, call.name)
    if refusal is not None:
        return _invalid(refusal)
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError as exc:
        return _invalid(
            f"the arguments of {call.name} were not valid JSON ({exc}); send a JSON object "
            "with the tool's parameters"
        )
    if not isinstance(arguments, dict):
        kind = type(arguments).__name__
        return _invalid(f"the arguments of {call.name} must be a JSON object, not {kind}")
    heartbeat = arguments.pop(HEARTBEAT_ARG, None)
    arguments.pop(INNER_THOUGHTS_ARG, None)
    arguments.update(rt.gate.preset_args(agent, state, call.name))
    # A null for an optional argument means "not given": let the tool's default apply.
    required = set(tool.schema.parameters.get("required", ()))
    arguments = {k: v for k, v in arguments.items() if v is not None or k in required}
    problems = validate_arguments(tool.schema, arguments)
    if problems:
        return _invalid(f"invalid arguments for {call.name}: " + "; ".join(problems))
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
                    run_id=turn.run.id,
                    step_id=step_id,
                    call_id=call.id,
                    fence=turn.fence,
                    messaging=Messaging(rt, agent, turn.run, step_id),
                    archives=functools.partial(ArchiveStore(rt.redis).ids_of, agent.id),
                )
                output = tool.base(ctx, **arguments)
                text = await output if not isinstance(output, str) else output
                turn.run.replies.extend(ctx.sent_messages)
                turn.blocks = ctx.blocks
                if ctx.memory_edited:
                    turn.agent = msgspec.structs.replace(turn.agent, last_memory_edit_at=rt.clock())
            else:
                assert tool.record is not None
                text, ok = await rt.custom_tools(tool.record, arguments, agent)
    except AwaitReplies:
        raise
    except ToolError as exc:
        text, ok = str(exc), False
    except TimeoutError:
        text, ok = f"{call.name} did not finish within {rt.tool_timeout_s:.0f}s", False
    except LeaseLost:
        raise
    except StaleWriter as exc:
        raise LeaseLost(str(exc)) from exc
    except Exception as exc:
        log.warning("tool_failed", tool=call.name, error=repr(exc))
        text, ok = f"{call.name} failed: {type(exc).__name__}: {exc}", False
    if not ok:  # for the operations view; a sandbox limit names itself in the error
        await record_error(
            rt.redis,
            kind="sandbox_limit" if _SANDBOX_LIMIT in text else "tool",
            agent_id=agent.id,
            run_id=turn.run.id,
            message=f"{call.name}: {text}",
        )
    if tool.record is not None and len(text) > tool.record.return_char_limit:
        text = text[: tool.record.return_char_limit] + " … (truncated)"
    state.last_output = text
    forced: Next | None = rt.gate.after(agent, state, call.name)
    if forced is None and tool.terminal:
        forced = "end"
    if forced is not None:
        return CallOutcome(text=text, ok=ok, next=forced, forced=True)
    if isinstance(heartbeat, bool):
        return CallOutcome(text=text, ok=ok, next="continue" if heartbeat else "end")
    # No heartbeat flag: keep going until the user has been answered (models often forget it).
    return CallOutcome(text=text, ok=ok, next="continue" if not turn.run.replies else "end")
