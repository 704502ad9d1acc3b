"""Tool calls that wait for a person's approval (the ``requires_approval`` rule).

When the model calls such a tool, the step stops before running it: the calls from there on
are kept on the agent (``pending_approval``), the assistant message records which of them wait
(``approval_requests``: each shows as an ``approval_request_message``) and the run ends with
``requires_approval``. The next input resumes the turn: an approval (``role="approval"``,
content ``{"approve": bool, "reason": ..., "approvals": [{"tool_call_id", "approve",
"reason"}], "approval_request_id": ...}``) runs each call it approves and answers each it denies
with an error; a call it does not name follows ``approve`` (the calls held only because they
came after one that waited). The first result keeps the answer (``approval``), shown as an
``approval_response_message``. Any other message first answers the calls as not approved,
because every tool call needs a result before the conversation can go on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from agents._calls import run_call
from agents.prompts import HEARTBEAT_REASON
from agents.tools.registry import agent_tools
from storage.records import ApprovalAnswer, ApprovalDecision, Message, ToolCall

if TYPE_CHECKING:
    from agents._turn import Turn
    from bus.envelopes import InboxMessage

__all__ = ("Approval", "answer_pending", "mark_requests", "parse_approval")


class Approval(msgspec.Struct, kw_only=True):
    """An approval message's content: the default decision and the per-call ones."""

    approve: bool = False
    reason: str | None = None
    approvals: list[ApprovalDecision] = msgspec.field(default_factory=list)
    approval_request_id: str | None = None

    def decide(self, call_id: str) -> tuple[bool, str | None]:
        """``(approve, reason)`` for one held call."""
        for decision in self.approvals:
            if decision.tool_call_id == call_id:
                return decision.approve, decision.reason
        return self.approve, self.reason


def parse_approval(content: str) -> Approval:
    """An approval message's content (JSON, or a bare word such as ``approve``)."""
    try:
        data = json.loads(content)
    except ValueError:
        word = content.strip().lower()
        return Approval(approve=word in {"approve", "approved", "yes", "true"})
    if not isinstance(data, dict):
        return Approval(approve=bool(data))
    try:
        return msgspec.convert(data, Approval)
    except msgspec.ValidationError:  # an older or hand-written shape: its gist
        reason = data.get("reason")
        return Approval(approve=bool(data.get("approve")), reason=str(reason) if reason else None)


def mark_requests(
    messages: Sequence[Message], assistant: Message, asked: Sequence[ToolCall]
) -> list[Message]:
    """``messages`` with ``assistant`` recording which of its calls wait for approval."""
    ids = [c.id for c in asked]
    return [
        msgspec.structs.replace(m, approval_requests=ids) if m is assistant else m for m in messages
    ]


def _request_id(turn: Turn, call_id: str) -> str | None:
    """The id of the message that asked for approval of ``call_id``, if still in context."""
    reads = turn.preloaded
    for message in reversed(reads.messages if reads is not None else []):
        if any(c.id == call_id for c in message.tool_calls):
            return message.id
    return None


async def answer_pending(
    turn: Turn, inputs: Sequence[InboxMessage], step_id: str
) -> tuple[list[Message], list[InboxMessage]]:
    """Tool results for the agent's pending calls, and the inputs left to process."""
    from agents._turn import heartbeat, tool_result

    rt, agent = turn.rt, turn.agent
    approvals = [m for m in inputs if m.role == "approval"]
    rest = [m for m in inputs if m.role != "approval"]
    if not agent.pending_approval:
        return [], rest
    answer = parse_approval(approvals[-1].content) if approvals else Approval()
    customs = await rt.tools.get_many_by_name(agent.tools)
    tools = agent_tools(agent, customs)
    turn.blocks = await rt.blocks.get_many(agent.block_ids)
    messages: list[Message] = []
    decided: list[ApprovalDecision] = []
    for call in agent.pending_approval:
        approve, reason = answer.decide(call.id)
        if approvals:
            decided.append(ApprovalDecision(tool_call_id=call.id, approve=approve, reason=reason))
        if approve:
            outcome = await run_call(turn, tools, call, step_id)
            text, ok = outcome.text, outcome.ok
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
    if approvals and messages:
        source = approvals[-1]
        request_id = answer.approval_request_id or _request_id(turn, agent.pending_approval[0].id)
        messages[0] = msgspec.structs.replace(
            messages[0],
            approval=ApprovalAnswer(decisions=decided, request_id=request_id),
            otid=source.otid,
            sender_id=source.sender_id,
        )
    turn.agent = msgspec.structs.replace(turn.agent, pending_approval=[])
    if approvals and not rest and turn.policy.heartbeats:
        messages.append(turn.message("user", step_id, content=heartbeat(HEARTBEAT_REASON)))
    return messages, rest
