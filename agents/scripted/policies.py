"""Helpers to write policies: replies, tool calls, fixed sequences, the default echo.

Typical scripts::

    from agents.scripted.policies import say, sequence, tool_call

    model.policy = sequence(
        tool_call("core_memory_append", label="human", content="likes tea",
                  request_heartbeat=True, thought="Remember that."),
        say("Noted: you like tea."),
    )

    def policy(request: ChatRequest) -> Outcome:
        if request.last_role == "tool":
            return say(f"The tool said {request.last_tool_result.content}")
        return tool_call("archival_memory_search", query=request.last_user_text or "")
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from agents.scripted.errors import SequenceExhausted
from agents.scripted.protocol import ChatRequest
from agents.scripted.replies import (
    OUTCOME_TYPES,
    Outcome,
    Policy,
    Reply,
    ScriptedToolCall,
)

__all__ = (
    "DEFAULT_MALFORMED_ARGUMENTS",
    "SEND_MESSAGE",
    "ScriptedSequence",
    "always",
    "call",
    "echo",
    "faults_then",
    "is_outcome",
    "malformed_tool_call",
    "resolve",
    "say",
    "sequence",
    "text",
    "tool_call",
    "tool_calls",
)

SEND_MESSAGE = "send_message"
"""The tool through which a MemGPT agent speaks to the user."""

DEFAULT_MALFORMED_ARGUMENTS = '{"message": "unterminated'
"""Arguments that are not valid JSON: a string cut before its closing quote."""


def call(
    name: str,
    arguments: Mapping[str, Any] | None = None,
    /,
    *,
    id: str | None = None,
    **kwargs: Any,
) -> ScriptedToolCall:
    """One tool call, for :func:`tool_calls`.

    Args:
        name: the function name.
        arguments: arguments as a mapping (use it for argument names that clash with ``id``).
        id: the call id; generated when ``None``.
        **kwargs: more arguments.
    """
    merged = {**(arguments or {}), **kwargs}
    return ScriptedToolCall(name, merged, id)


def tool_call(
    name: str,
    arguments: Mapping[str, Any] | None = None,
    /,
    *,
    thought: str | None = None,
    id: str | None = None,
    **kwargs: Any,
) -> Reply:
    """A reply with a single tool call and optional inner thoughts as content.

    Example: ``tool_call("conversation_search", query="tea", request_heartbeat=True)``.
    """
    return Reply(content=thought, tool_calls=(call(name, arguments, id=id, **kwargs),))


def tool_calls(
    *calls: ScriptedToolCall, thought: str | None = None, reasoning: str | None = None
) -> Reply:
    """A reply with several (parallel) tool calls, made with :func:`call`; ``reasoning`` is
    sent as native reasoning (``reasoning_content``)."""
    return Reply(content=thought, tool_calls=calls, reasoning=reasoning)


def say(message: str, /, *, thought: str | None = None, **kwargs: Any) -> Reply:
    """How a MemGPT agent answers: ``send_message(message=...)`` plus optional thoughts."""
    return tool_call(SEND_MESSAGE, {"message": message, **kwargs}, thought=thought)


def text(content: str, *, reasoning: str | None = None) -> Reply:
    """A plain assistant message with no tool call (``finish_reason="stop"``): a letta_v1
    agent's reply. ``reasoning`` is sent as native reasoning (``reasoning_content``)."""
    return Reply(content=content, reasoning=reasoning)


def malformed_tool_call(
    name: str = SEND_MESSAGE,
    arguments: str = DEFAULT_MALFORMED_ARGUMENTS,
    *,
    thought: str | None = None,
) -> Reply:
    """A tool call whose ``arguments`` text is not valid JSON, delivered verbatim."""
    return Reply(content=thought, tool_calls=(ScriptedToolCall(name, arguments),))


def is_outcome(value: object) -> bool:
    """Whether ``value`` is a reply or fault (rather than a policy)."""
    return isinstance(value, OUTCOME_TYPES)


def resolve(step: Outcome | Policy, request: ChatRequest) -> Outcome | Awaitable[Outcome]:
    """The outcome of ``step`` for ``request``: an outcome as is, a policy called."""
    if isinstance(step, OUTCOME_TYPES):
        return step
    return step(request)


def always(outcome: Outcome) -> Policy:
    """A policy that answers every request with ``outcome``."""

    def policy(request: ChatRequest) -> Outcome:
        return outcome

    return policy


class ScriptedSequence:
    """A policy answering with fixed steps in order; see :func:`sequence`.

    Attributes:
        calls: how many requests it has answered.
    """

    def __init__(
        self, steps: tuple[Outcome | Policy, ...], then: Outcome | Policy | None, cycle: bool
    ) -> None:
        if cycle and not steps:
            raise ValueError("sequence(cycle=True) needs at least one step")
        self._steps = steps
        self._then = then
        self._cycle = cycle
        self.calls = 0

    @property
    def remaining(self) -> int:
        """Steps not yet used (0 once exhausted; cycling sequences never run out)."""
        return max(0, len(self._steps) - self.calls)

    def __call__(self, request: ChatRequest) -> Outcome | Awaitable[Outcome]:
        index = self.calls
        self.calls += 1
        if index < len(self._steps):
            return resolve(self._steps[index], request)
        if self._cycle:
            return resolve(self._steps[index % len(self._steps)], request)
        if self._then is not None:
            return resolve(self._then, request)
        raise SequenceExhausted(
            f"scripted sequence of {len(self._steps)} step(s) was asked for reply "
            f"#{index + 1}; add steps or pass then=..."
        )


def sequence(
    *steps: Outcome | Policy, then: Outcome | Policy | None = None, cycle: bool = False
) -> ScriptedSequence:
    """A policy that answers the n-th request with the n-th step.

    Args:
        *steps: replies, faults, or policies (called for their one request).
        then: what answers once the steps are used up; by default the policy raises
            :class:`~agents.scripted.errors.SequenceExhausted` (the client gets a 500 and the
            pytest fixture fails the test).
        cycle: start over after the last step instead.
    """
    return ScriptedSequence(steps, then, cycle)


def faults_then(*faults: Outcome, then: Outcome | Policy) -> ScriptedSequence:
    """Answer the first requests with ``faults`` (429, 500, cut streams…), then ``then``."""
    return ScriptedSequence(faults, then, False)


def echo(request: ChatRequest) -> Outcome:
    """The default policy: repeat the last user message back.

    Through ``send_message`` when that tool is offered and the last message is the user's;
    as plain text otherwise (also after a tool result, which ends a MemGPT turn).
    """
    said = request.last_user_text or ""
    if request.last_role == "user" and request.offers(SEND_MESSAGE):
        return say(said)
    return text(said)
