"""Recall memory made up for a benchmark, shaped the way an agent's turns write it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from storage.records import Message, Role, ToolCall

T0 = 1_700_000_000.0  # the first message's time: a fixed past, so that runs compare
_ROLES: tuple[Role, Role, Role] = ("user", "assistant", "tool")


def chat_history(
    agent_id: str,
    numbers: Iterable[int],
    text: Callable[[int], str],
    reply: Callable[[int], str],
    *,
    phase: int = 0,
    result: Callable[[int], str | None] = lambda n: None,
    system_every: int = 0,
) -> list[Message]:
    """A user's text, the agent's thought with a ``send_message`` call, that call's tool
    return, and again: message ``n`` of ``numbers`` has seq ``n`` and ``T0 + n`` as its time.

    Args:
        text: the user's text, or the agent's thought, of message ``n``.
        reply: what the ``send_message`` call of message ``n`` says.
        phase: message ``n`` is the user's when ``(n + phase) % 3 == 0``, the agent's call at
            1, the tool return at 2.
        result: the ``message`` of the tool return ``n`` (None, as ``send_message``'s).
        system_every: every this many-th message (by ``n``) is a system message of
            ``text(n)`` instead (0: none).
    """
    out: list[Message] = []
    for n in numbers:
        role: Role = _ROLES[(n + phase) % 3]
        if system_every and n % system_every == 0:
            role = "system"
        content = text(n)
        calls: list[ToolCall] = []
        tool = role == "tool"
        if role == "assistant":
            args = json.dumps({"message": reply(n), "request_heartbeat": False})
            calls = [ToolCall(id=f"call-{n}", name="send_message", arguments=args)]
        elif tool:
            content = json.dumps({"status": "OK", "message": result(n), "time": "now"})
        out.append(
            Message(
                id=f"message-{n:08d}",
                agent_id=agent_id,
                role=role,
                content=content,
                seq=n,
                tool_calls=calls,
                tool_call_id=f"call-{n - 1}" if tool else None,
                name="send_message" if tool else None,
                status="success" if tool else None,
                created_at=T0 + n,
            )
        )
    return out
