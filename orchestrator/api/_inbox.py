"""What a send puts on the agent's inbox: messages and approvals in Letta's forms, checked.

An approval answers a run stopped with ``requires_approval`` (0.11: ``{"type": "approval",
"approve": ..., "approval_request_id": ..., "reason": ...}``; 0.16: ``{"type": "approval",
"approvals": [{"type": "approval", "tool_call_id": ..., "approve": ..., "reason": ...}]}``)
and goes to the inbox as ``role="approval"`` (see :mod:`agents._approval`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from urllib.parse import urlsplit

from agents.limits import MessageTooLarge, MessageTooLong, check_message
from bus.envelopes import InboxMessage
from orchestrator.api.errors import ApiError
from orchestrator.api.schemas import ContentPart, MessageIn, MessagesIn
from orchestrator.api.state import Api
from storage.records import Agent

__all__ = ("check_sizes", "check_url", "inbox_messages")


def _text(content: str | Sequence[ContentPart], field: str) -> str:
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for index, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise ApiError(
                422, f"only text parts are supported, not {part.type!r}", field=f"{field}.{index}"
            )
        texts.append(part.text)
    return "\n".join(texts)


def _approval(message: MessageIn, field: str, pending: Collection[str]) -> InboxMessage:
    """An approval message in either of Letta's forms, as an inbox message.

    0.16's ``approvals`` decide each held call on its own (approve some, deny others); a held
    call it does not name runs unless every named one was denied.
    """
    decisions: list[dict[str, object]] = []
    if message.approvals:
        seen: set[str] = set()
        for index, item in enumerate(message.approvals):
            where = f"{field}.approvals.{index}.tool_call_id"
            if pending and item.tool_call_id not in pending:
                raise ApiError(
                    422,
                    f"no held tool call {item.tool_call_id!r}; held: {', '.join(sorted(pending))}",
                    field=where,
                )
            if item.tool_call_id in seen:
                raise ApiError(
                    422, f"{item.tool_call_id!r} is decided twice; send one decision", field=where
                )
            seen.add(item.tool_call_id)
            decisions.append(
                {"tool_call_id": item.tool_call_id, "approve": item.approve, "reason": item.reason}
            )
        approve = any(a.approve for a in message.approvals)
        reasons = [a.reason for a in message.approvals if a.reason]
        reason = "; ".join(dict.fromkeys(reasons)) or message.reason
    elif message.approve is not None:
        approve, reason = message.approve, message.reason
    else:
        raise ApiError(
            422,
            "an approval needs `approve` (true or false) or `approvals`",
            field=f"{field}.approve",
        )
    content = {
        "approve": approve,
        "reason": reason,
        "approvals": decisions,
        "approval_request_id": message.approval_request_id,
    }
    return InboxMessage(
        content=json.dumps(content),
        role="approval",
        otid=message.otid,
        sender_id=message.sender_id,
    )


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(
            422,
            f"{url!r} is not an http(s) URL; give the full address to POST the run's result to",
            field="callback_url",
        )


def check_sizes(api: Api, agent: Agent, data: MessagesIn, inbox: Sequence[InboxMessage]) -> None:
    """Refuse a message too large to store (413) or to ever fit the context window (422)."""
    rt = api.rt
    for index, message in enumerate(inbox):
        field = f"messages.{index}.content" if data.messages else "input"
        try:
            check_message(
                agent,
                message.content,
                max_bytes=rt.settings.max_message_bytes,
                counter=rt.counter(agent.model),
            )
        except MessageTooLarge as exc:
            raise ApiError(413, str(exc), field=field) from None
        except MessageTooLong as exc:
            raise ApiError(422, str(exc), field=field) from None


def _is_approval(message: MessageIn) -> bool:
    if message.type is not None:
        return message.type == "approval"
    return message.content is None and (
        message.approve is not None or message.approvals is not None
    )


def inbox_messages(data: MessagesIn, pending: Collection[str] = ()) -> list[InboxMessage]:
    found: list[InboxMessage] = []
    for index, message in enumerate(data.messages or ()):
        field = f"messages.{index}"
        if _is_approval(message):
            found.append(_approval(message, field, pending))
            continue
        if message.type == "tool_return":
            raise ApiError(422, "client-side tool returns are not supported", field=f"{field}.type")
        if message.content is None:
            raise ApiError(422, "a message needs `content`", field=f"{field}.content")
        text = _text(message.content, f"{field}.content")
        found.append(
            InboxMessage(
                content=text, role=message.role, otid=message.otid, sender_id=message.sender_id
            )
        )
    if not found and data.input is not None:
        found.append(InboxMessage(content=_text(data.input, "input")))
    if not found:
        raise ApiError(422, "send at least one message (`messages` or `input`)", field="messages")
    if not any(m.content.strip() for m in found):
        raise ApiError(422, "the message is empty", field="messages")
    return found
