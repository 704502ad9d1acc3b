"""A step's second phase: run the model's tool calls, in order.

Each call is validated, checked against the tool rules and run (:func:`agents._calls.run_call`);
its result becomes a tool message. A call that needs a human's approval holds itself and every
call after it; a call that waits for other agents' replies suspends the run after the step.
"""

from __future__ import annotations

import msgspec

from agents._ask import Asked
from agents._calls import CallOutcome, run_call
from agents._turn import Turn, tool_result
from agents.messaging import AwaitReplies
from storage.records import Message, ToolCall, Wait

__all__ = ("Acted", "run_calls")

_WAITING_TOOLS = frozenset(
    {"send_message_to_agent_and_wait_for_reply", "send_message_to_agents_matching_tags"}
)
_ONE_WAIT = CallOutcome(
    text="only one wait for other agents per step; call it again next step",
    ok=False,
    invalid=True,
)


class Acted(msgspec.Struct, kw_only=True):
    """What running a step's calls did.

    Attributes:
        results: the tool messages of the calls that ran, in order.
        outcomes: each of those calls' outcome, in the same order.
        held: the calls held for approval (the first that needs it and all after it).
        wait: the wait for other agents' replies that one call started.
    """

    results: list[Message] = msgspec.field(default_factory=list)
    outcomes: list[CallOutcome] = msgspec.field(default_factory=list)
    held: list[ToolCall] = msgspec.field(default_factory=list)
    wait: Wait | None = None

    @property
    def any_error(self) -> bool:
        return any(not o.ok for o in self.outcomes)

    @property
    def all_invalid(self) -> bool:
        """Every call of the step was invalid (a step that started a wait never is)."""
        return self.wait is None and all(o.invalid for o in self.outcomes)

    @property
    def last_invalid(self) -> str:
        return next((o.text for o in reversed(self.outcomes) if o.invalid), "")


async def run_calls(turn: Turn, asked: Asked, step_id: str) -> Acted:
    """Run ``asked``'s calls until one needs approval; see :class:`Acted`."""
    rt, tools = turn.rt, asked.tools
    acted = Acted()
    for index, call in enumerate(asked.calls):
        if call.name in tools and rt.gate.needs_approval(turn.agent, turn.state, call.name):
            acted.held = asked.calls[index:]
            return acted
        try:
            if acted.wait is not None and call.name in _WAITING_TOOLS:
                outcome = _ONE_WAIT
            else:
                outcome = await run_call(turn, tools, call, step_id)
        except AwaitReplies as suspend:
            acted.wait = suspend.wait
            continue  # its result comes when the replies do
        acted.outcomes.append(outcome)
        acted.results.append(
            turn.message(
                "tool",
                step_id,
                content=tool_result(outcome.text, outcome.ok, rt.clock()),
                tool_call_id=call.id,
                name=call.name,
                status="success" if outcome.ok else "error",
            )
        )
    return acted
