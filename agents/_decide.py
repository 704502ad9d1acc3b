"""A step's third phase: decide whether the turn goes on, per agent type.

What every type shares comes first: calls held for approval stop the turn
(``requires_approval``), a call that waits for other agents suspends it, and too many steps in
a row of only invalid calls end it (``invalid_tool_call``). Then the agent type's policy says
whether the turn ends, and what the model reads before its next step:

* ``memgpt_agent`` and ``memgpt_v2_agent`` (:class:`MemGPTPolicy`): everything is a tool call,
  replies go through ``send_message``, and the turn goes on while a call asks for a heartbeat
  (``request_heartbeat``), which comes back to the model as a heartbeat message. Text with no
  tool call ends the turn, and becomes the reply when nothing reached the user yet.
* ``letta_v1_agent`` (:class:`LettaV1Policy`): no heartbeats and no ``send_message``; the
  model's plain text is the reply, and the turn goes on while the model calls tools (the tool
  results are what it reads next) and ends when it answers without one. Tool rules still
  apply: a rule that ends the turn after a tool ends it.

In both, a turn may not end while a tool rule still requires a call: the model is told why.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from agents._act import Acted
from agents._approval import mark_requests
from agents._ask import Asked
from agents._turn import StepOutcome, Turn, heartbeat
from agents.prompts import HEARTBEAT_AFTER_ERROR, HEARTBEAT_REASON
from agents.tools.registry import AgentTool
from storage.records import AgentType, Message

__all__ = (
    "MAX_INVALID_IN_A_ROW",
    "LettaV1Policy",
    "MemGPTPolicy",
    "TurnPolicy",
    "Verdict",
    "decide",
    "policy_for",
)

MAX_INVALID_IN_A_ROW = 4


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the turn ends after a step's calls, and what the model reads next if not.

    Attributes:
        end: the turn ends here.
        nudge: the message that continues the turn (a heartbeat, a rule's refusal to end);
            None with ``end`` False: the model goes on from the tool results alone.
    """

    end: bool = False
    nudge: Message | None = None


class TurnPolicy(Protocol):
    """How an agent type runs: the tools it is offered, and when its turn ends.

    Attributes:
        text_is_reply: the model's plain text is its reply (else its inner thoughts).
        heartbeats: a heartbeat message follows the tool results that continue the turn
            (after an approval, a wait's replies); else the model goes on from the results.
        chains: what makes the turn take another step, for the step-limit stop reason.
    """

    text_is_reply: bool
    heartbeats: bool
    chains: str

    def tool_entry(self, tool: AgentTool) -> dict[str, Any]:
        """The ``tools`` entry that offers ``tool`` to the model."""
        ...

    def assistant(self, turn: Turn, asked: Asked, *, ends: bool) -> Message:
        """The step's assistant message as committed, marked as a reply when it is one (and
        the reply recorded on the run); ``ends``: an answer with no call that ends the turn."""
        ...

    def after_calls(self, turn: Turn, acted: Acted, step_id: str) -> Verdict:
        """Whether the turn ends once the step's calls ran."""
        ...


def _end(turn: Turn, step_id: str) -> Verdict:
    """The end of the turn, unless a tool rule still requires a call: then the message that
    tells the model why it may not end yet."""
    refusal = turn.rt.gate.may_end(turn.agent, turn.state)
    if refusal is None:
        return Verdict(end=True)
    return Verdict(nudge=turn.message("user", step_id, content=heartbeat(refusal)))


class MemGPTPolicy:
    """``memgpt_agent`` and ``memgpt_v2_agent``: heartbeats chain steps; replies are tools."""

    text_is_reply = False
    heartbeats = True
    chains = "asked for more (request_heartbeat)"

    def tool_entry(self, tool: AgentTool) -> dict[str, Any]:
        return tool.openai()

    def assistant(self, turn: Turn, asked: Asked, *, ends: bool) -> Message:
        text = asked.response.content
        if ends and text.strip() and not turn.run.replies:
            turn.run.replies.append(text)  # a model that ignores send_message still answers
            return msgspec.structs.replace(asked.assistant, reply=True)
        return asked.assistant

    def after_calls(self, turn: Turn, acted: Acted, step_id: str) -> Verdict:
        wants_more = any(o.next == "continue" for o in acted.outcomes)
        ends = any(o.next == "end" for o in acted.outcomes)
        any_error = acted.any_error
        if (ends and not any_error) or not (wants_more or any_error):
            return _end(turn, step_id)
        reason = HEARTBEAT_AFTER_ERROR if any_error else HEARTBEAT_REASON
        return Verdict(nudge=turn.message("user", step_id, content=heartbeat(reason)))


class LettaV1Policy:
    """``letta_v1_agent``: plain text is the reply; tool calls chain steps, no heartbeats."""

    text_is_reply = True
    heartbeats = False
    chains = "called tools"

    def tool_entry(self, tool: AgentTool) -> dict[str, Any]:
        return tool.openai(heartbeat=False, thoughts=False)

    def assistant(self, turn: Turn, asked: Asked, *, ends: bool) -> Message:
        text = asked.response.content
        if not text.strip():
            return asked.assistant
        turn.run.replies.append(text)
        return msgspec.structs.replace(asked.assistant, reply=True)

    def after_calls(self, turn: Turn, acted: Acted, step_id: str) -> Verdict:
        if any(o.forced and o.next == "end" for o in acted.outcomes) and not acted.any_error:
            return _end(turn, step_id)
        return Verdict()  # the model reads the tool results and goes on


_POLICIES: dict[AgentType, TurnPolicy] = {
    "memgpt_agent": MemGPTPolicy(),
    "memgpt_v2_agent": MemGPTPolicy(),
    "letta_v1_agent": LettaV1Policy(),
}


def policy_for(agent_type: AgentType) -> TurnPolicy:
    """The policy of an agent type."""
    return _POLICIES[agent_type]


def decide(
    turn: Turn, pending: list[Message], asked: Asked, acted: Acted | None, step_id: str
) -> StepOutcome:
    """The step's outcome: its messages, and whether (and why) the turn stops.

    ``acted`` is None when the answer had no tool call: it ends the turn, if the rules allow.
    """
    policy = turn.policy
    if acted is None:
        verdict = _end(turn, step_id)
        assistant = policy.assistant(turn, asked, ends=verdict.end)
        if verdict.end:
            return StepOutcome(messages=[*pending, assistant], stop="end_turn")
        return StepOutcome(messages=[*pending, assistant, *_nudge(verdict)])
    assistant = policy.assistant(turn, asked, ends=False)
    new = [*pending, assistant, *acted.results]
    if acted.held:
        gate = turn.rt.gate
        turn.agent = msgspec.structs.replace(turn.agent, pending_approval=acted.held)
        approvals = [c for c in acted.held if gate.needs_approval(turn.agent, turn.state, c.name)]
        # The assistant message records which calls wait: each shows as an approval request.
        return StepOutcome(
            messages=mark_requests(new, assistant, approvals),
            stop="requires_approval",
            approvals=approvals,
        )
    if acted.wait is not None:
        return StepOutcome(messages=new, wait=acted.wait)
    turn.invalid_in_a_row = turn.invalid_in_a_row + 1 if acted.all_invalid else 0
    if turn.invalid_in_a_row >= MAX_INVALID_IN_A_ROW:
        detail = (
            f"{MAX_INVALID_IN_A_ROW} steps in a row made only invalid tool calls; "
            f"the last: {_clip(acted.last_invalid)}"
        )
        return StepOutcome(messages=new, stop="invalid_tool_call", detail=detail)
    verdict = policy.after_calls(turn, acted, step_id)
    if verdict.end:
        return StepOutcome(messages=new, stop="end_turn")
    return StepOutcome(messages=[*new, *_nudge(verdict)])


def _nudge(verdict: Verdict) -> list[Message]:
    return [verdict.nudge] if verdict.nudge is not None else []


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
