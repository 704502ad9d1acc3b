"""What a run emits, in Letta's message shapes, so that REST, SSE and the CLI share one form.

A stored :class:`storage.Message` (OpenAI chat shape) expands into one or more Letta messages:
an assistant message becomes a ``reasoning_message`` (its text) and one ``tool_call_message``
per call, except ``send_message`` calls, which become ``assistant_message``; an assistant
message marked as the reply (a letta_v1 agent's text) becomes its native reasoning as a
``reasoning_message``, its text as an ``assistant_message`` and its calls; a tool result
becomes a ``tool_return_message``. A run ends with ``stop_reason`` and ``usage_statistics``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

import msgspec

from storage.records import Message

__all__ = (
    "FAILED_STOPS",
    "REASONING_PART",
    "ApprovalRequestMessage",
    "ApprovalResponseMessage",
    "ApprovalReturn",
    "AssistantMessage",
    "Event",
    "LettaMessage",
    "ReasoningMessage",
    "StopReason",
    "StopReasonName",
    "SystemMessage",
    "ToolCallBody",
    "ToolCallMessage",
    "ToolReturnMessage",
    "UsageStatistics",
    "UserMessage",
    "event_decoder",
    "event_encoder",
    "expand",
    "inner_thoughts",
    "iso",
    "reply_part",
)

StopReasonName = Literal[
    "end_turn",
    "error",
    "llm_api_error",
    "invalid_llm_response",
    "invalid_tool_call",
    "max_steps",
    "no_tool_call",
    "tool_rule",
    "cancelled",
    "requires_approval",
    "context_window_overflow_in_system_prompt",
]

REPLY_TOOL = "send_message"

#: The part of a message that token deltas of its reasoning extend (see agents._deltas).
REASONING_PART = "r"


def reply_part(ordinal: int) -> str:
    """The part of a message that token deltas of its ``ordinal``-th reply extend."""
    return f"a{ordinal}"


#: Stop reasons that mean the turn did not do what was asked (a CLI exits non-zero on them).
FAILED_STOPS: frozenset[str] = frozenset(
    {
        "error",
        "llm_api_error",
        "invalid_llm_response",
        "invalid_tool_call",
        "context_window_overflow_in_system_prompt",
    }
)


def iso(ts: float) -> str:
    """ISO 8601 in UTC, as Letta renders dates."""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat()


class _Base(msgspec.Struct, kw_only=True, omit_defaults=False, tag_field="message_type"):
    id: str
    date: str
    run_id: str | None = None
    step_id: str | None = None
    otid: str | None = None
    sender_id: str | None = None


class UserMessage(_Base, tag="user_message", kw_only=True):
    content: str


class SystemMessage(_Base, tag="system_message", kw_only=True):
    content: str


class ReasoningMessage(_Base, tag="reasoning_message", kw_only=True):
    reasoning: str
    source: str = "reasoner_model"


class ToolCallBody(msgspec.Struct, kw_only=True):
    name: str
    arguments: str
    tool_call_id: str


class ToolCallMessage(_Base, tag="tool_call_message", kw_only=True):
    tool_call: ToolCallBody


class ToolReturnMessage(_Base, tag="tool_return_message", kw_only=True):
    tool_return: str
    status: Literal["success", "error"]
    tool_call_id: str
    name: str | None = None


class AssistantMessage(_Base, tag="assistant_message", kw_only=True):
    content: str


class ApprovalRequestMessage(_Base, tag="approval_request_message", kw_only=True):
    """A tool call that waits for a person's approval (``requires_approval`` rule).

    ``tool_calls`` repeats it as a list, the shape letta-client 1.x reads.
    """

    tool_call: ToolCallBody
    tool_calls: list[ToolCallBody] | None = None


class ApprovalReturn(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Letta 0.16's ``ApprovalReturn``: a decision on one held call."""

    type: Literal["approval"] = "approval"
    tool_call_id: str
    approve: bool
    reason: str | None = None


class ApprovalResponseMessage(_Base, tag="approval_response_message", kw_only=True):
    """What a person answered to approval requests: 0.11's ``approve``/``approval_request_id``
    (all approved or not) and 0.16's ``approvals``, one per decided call."""

    approve: bool
    approval_request_id: str
    reason: str | None = None
    approvals: list[ApprovalReturn] | None = None


LettaMessage = (
    UserMessage
    | SystemMessage
    | ReasoningMessage
    | ToolCallMessage
    | ToolReturnMessage
    | AssistantMessage
    | ApprovalRequestMessage
    | ApprovalResponseMessage
)


class StopReason(msgspec.Struct, kw_only=True, tag="stop_reason", tag_field="message_type"):
    stop_reason: StopReasonName
    detail: str | None = None


class UsageStatistics(
    msgspec.Struct, kw_only=True, tag="usage_statistics", tag_field="message_type"
):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    step_count: int = 0


Event = LettaMessage | StopReason | UsageStatistics

event_encoder = msgspec.json.Encoder()
event_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)


def _reply_text(arguments: str, kwarg: str = "message") -> str | None:
    """The ``kwarg`` argument (``message`` of ``send_message``) of a call, if it parses."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return None
    if isinstance(parsed, dict):
        message = parsed.get(kwarg)
        if isinstance(message, str):
            return message
    return None


def inner_thoughts(arguments: str) -> str | None:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return None
    if isinstance(parsed, dict):
        thought = parsed.get("inner_thoughts")
        if isinstance(thought, str) and thought.strip():
            return thought
    return None


def expand(
    message: Message,
    *,
    use_assistant_message: bool = True,
    assistant_tool: str = REPLY_TOOL,
    assistant_kwarg: str = "message",
) -> list[LettaMessage]:
    """The Letta messages a stored message stands for (heartbeats and system text included).

    As Letta's ``use_assistant_message``, ``assistant_message_tool_name`` and
    ``assistant_message_tool_kwarg``: calls of ``assistant_tool`` show as an
    ``assistant_message`` holding their ``assistant_kwarg`` argument, unless
    ``use_assistant_message`` is false (then every call is a ``tool_call_message``). Text
    marked as the reply (a letta_v1 agent's plain answer, or a MemGPT model's that ignored
    ``send_message``) is an ``assistant_message`` either way, as Letta shows a letta_v1
    agent's text: there is no call it could show instead.
    """
    common: dict[str, Any] = {
        "id": message.id,
        "date": iso(message.created_at),
        "run_id": message.run_id,
        "step_id": message.step_id,
        "otid": message.otid,
        "sender_id": message.sender_id,
    }
    if message.role == "user":
        return [UserMessage(content=message.content, **common)]
    if message.role == "system":
        return [SystemMessage(content=message.content, **common)]
    if message.role == "tool":
        answered: list[LettaMessage] = []
        if message.approval is not None:
            answered.append(_approval_response(message, common))
        return [
            *answered,
            ToolReturnMessage(
                tool_return=message.content,
                status=message.status or "success",
                tool_call_id=message.tool_call_id or "",
                name=message.name,
                **common,
            ),
        ]
    out: list[LettaMessage] = []
    if message.reply:
        if message.reasoning.strip():
            out.append(ReasoningMessage(reasoning=message.reasoning, **common))
        out.append(AssistantMessage(content=message.content, **common))
    else:
        reasoning = message.content.strip()
        if not reasoning and message.tool_calls:
            reasoning = inner_thoughts(message.tool_calls[0].arguments) or ""
        if reasoning or message.reasoning.strip():
            out.append(ReasoningMessage(reasoning=reasoning or message.reasoning, **common))
    for call in message.tool_calls:
        reply = (
            _reply_text(call.arguments, assistant_kwarg)
            if use_assistant_message and call.name == assistant_tool and not message.reply
            else None
        )
        if reply is not None:
            out.append(AssistantMessage(content=reply, **common))
        else:
            body = ToolCallBody(name=call.name, arguments=call.arguments, tool_call_id=call.id)
            if call.id in message.approval_requests:
                out.append(ApprovalRequestMessage(tool_call=body, tool_calls=[body], **common))
            else:
                out.append(ToolCallMessage(tool_call=body, **common))
    return out


def _approval_response(message: Message, common: dict[str, Any]) -> ApprovalResponseMessage:
    answer = message.approval
    assert answer is not None
    decisions = answer.decisions
    reasons = [d.reason for d in decisions if d.reason]
    return ApprovalResponseMessage(
        approve=all(d.approve for d in decisions),
        approval_request_id=answer.request_id or (decisions[0].tool_call_id if decisions else ""),
        reason="; ".join(dict.fromkeys(reasons)) or None,
        approvals=[
            ApprovalReturn(tool_call_id=d.tool_call_id, approve=d.approve, reason=d.reason)
            for d in decisions
        ],
        **common,
    )
