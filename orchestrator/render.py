"""Terminal rendering of run events, shared by ``send``, ``chat``, ``run`` and the demo."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from agents.letta_messages import (
    ApprovalRequestMessage,
    AssistantMessage,
    Event,
    ReasoningMessage,
    StopReason,
    ToolCallMessage,
    ToolReturnMessage,
    UsageStatistics,
)

__all__ = ("note_workers_model", "print_event", "short")


def short(text: str, limit: int = 160) -> str:
    """One line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _tool_output(raw: str) -> str:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(parsed, dict) and "message" in parsed:
        return str(parsed["message"])
    return raw


def print_event(event: Event, *, who: str = "", agent: str = "", out: TextIO | None = None) -> None:
    """Print one event as a line a person can follow.

    ``agent`` (a name or id) goes into the hint printed under an approval request.
    """
    stream = out or sys.stdout
    prefix = f"[{who}] " if who else ""
    if isinstance(event, ReasoningMessage):
        line = f"{prefix}thinking: {short(event.reasoning)}"
    elif isinstance(event, ToolCallMessage):
        call = event.tool_call
        line = f"{prefix}-> {call.name}({short(call.arguments, 200)})"
    elif isinstance(event, ApprovalRequestMessage):
        call = event.tool_call
        target = agent or who or "AGENT"
        line = (
            f"{prefix}-> waiting for approval: {call.name}({short(call.arguments, 200)})"
            f"  (memgrid approve {target} | --deny)"
        )
    elif isinstance(event, ToolReturnMessage):
        mark = "ok" if event.status == "success" else "ERROR"
        line = f"{prefix}<- {mark}: {short(_tool_output(event.tool_return), 200)}"
    elif isinstance(event, AssistantMessage):
        line = f"{prefix}agent: {event.content}"
    elif isinstance(event, StopReason):
        detail = f" ({event.detail})" if event.detail else ""
        line = f"{prefix}[stop: {event.stop_reason}{detail}]"
    elif isinstance(event, UsageStatistics):
        line = (
            f"{prefix}[{event.step_count} steps, {event.prompt_tokens} prompt + "
            f"{event.completion_tokens} completion tokens]"
        )
    else:
        return
    print(line, file=stream, flush=True)


def note_workers_model(workers: Sequence[dict[str, object]], file: TextIO | None = None) -> None:
    """Say on stderr when running workers will answer with another model endpoint than this
    shell's ``OPENAI_BASE_URL``: a message submitted through them uses theirs (agents that name
    their own endpoint keep it either way)."""
    mine = os.environ.get("OPENAI_BASE_URL") or None
    if mine is None:
        return
    theirs = sorted({str(w.get("model_endpoint") or "unset") for w in workers} - {mine})
    if theirs:
        print(
            f"memgrid: running workers answer with their own model settings "
            f"(OPENAI_BASE_URL={', '.join(theirs)}), not this shell's OPENAI_BASE_URL={mine}; "
            "restart them with yours (or stop them) to use it",
            file=file or sys.stderr,
        )
