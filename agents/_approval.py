"""Tool calls that wait for a person's approval (the ``requires_approval`` rule).

When the model calls such a tool, the step stops before running it: the calls from there on
are kept on the agent (``pending_approval``), the run ends with ``requires_approval`` and an
``approval_request_message`` per call. The next input resumes the turn: an approval
(``role="approval"``, content ``{"approve": bool, "reason": ...}``) runs the calls or answers
them with a denial; any other message first answers them as not approved, because every tool
call needs a result before the conversation can go on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from agents._calls import run_call
from agents.prompts import HEARTBEAT_REASON
from agents.tools.registry import agent_tools

if TYPE_CHECKING:
    from agents._turn import Turn
    from agents.loop import InputMessage
    from storage.records import Message

__all__ = ("answer_pending", "parse_approval")


def parse_approval(content: str) -> tuple[bool, str | None]:
    """``(approve, reason)`` from an approval message's content (a bare word works too)."""
    try:
        data = json.loads(content)
    except ValueError:
        word = content.strip().lower()
        return word in {"approve", "approved", "yes", "true"}, None
    if isinstance(data, dict):
        reason = data.get("reason")
        return bool(data.get("approve")), str(reason) if reason else None
    return bool(data), None


async def answer_pending(
    turn: Turn, inputs: Sequence[InputMessage], step_id: str
) -> tuple[list[Message], list[InputMessage]]:
    """Tool results for the agent's pending calls, and the inputs left to process."""
    from agents._turn import heartbeat, tool_result

    rt, agent = turn.rt, turn.agent
    approvals = [m for m in inputs if m.role == "approval"]
    rest = [m for m in inputs if m.role != "approval"]
    if not agent.pending_approval:
        return [], rest
    approve, reason = parse_approval(approvals[-1].content) if approvals else (False, None)
    customs = await rt.tools.get_many_by_name(agent.tools)
    tools = agent_tools(agent, customs)
    turn.blocks = await rt.blocks.get_many(agent.block_ids)
    messages: list[Message] = []
    for call in agent.pending_approval:
        if approve:
            text, ok, _decision, _invalid = await run_call(turn, tools, call, step_id)
        elif approvals:
            text = f"the user denied the call to {call.name}" + (f": {reason}" if reason else "")
            ok = False
        else:
            text = f"the call to {call.name} was not approved: a new message came first"
            ok = False
        messages.append(
            turn.message(
                "tool",
                step_id,
                content=tool_result(text, ok, rt.clock()),
                tool_call_id=call.id,
                name=call.name,
                status="success" if ok else "error",
            )
        )
    turn.agent = msgspec.structs.replace(turn.agent, pending_approval=[])
    if approvals and not rest:
        messages.append(turn.message("user", step_id, content=heartbeat(HEARTBEAT_REASON)))
    return messages, rest
