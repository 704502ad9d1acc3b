"""The seam for tool rules: the step loop asks a :class:`ToolGate` what it may offer and call.

The runtime never imports the orchestrator; the orchestrator's tool-rule engine implements this
protocol and is handed to the loop when a worker is built. :class:`OpenGate` allows everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from storage.records import Agent

__all__ = ("Decision", "OpenGate", "ToolGate", "TurnState")

Decision = Literal["continue", "end"]


@dataclass
class TurnState:
    """What happened so far in the current turn (the rules decide on it)."""

    step: int = 0
    calls: list[str] = field(default_factory=list)
    step_calls: list[str] = field(default_factory=list)
    last_tool: str | None = None
    last_output: str | None = None


class ToolGate(Protocol):
    """Tool rules as the loop sees them."""

    def prompt(self, agent: Agent) -> str:
        """Rules rendered for the system prompt ("" for none)."""
        ...

    def offered(self, agent: Agent, state: TurnState, names: Sequence[str]) -> list[str]:
        """The subset of ``names`` the model may call next."""
        ...

    def refuse(self, agent: Agent, state: TurnState, name: str) -> str | None:
        """Why calling ``name`` now is not allowed, or None when it is."""
        ...

    def after(self, agent: Agent, state: TurnState, name: str) -> Decision | None:
        """Whether the rules force the turn to continue or end after ``name`` ran."""
        ...

    def may_end(self, agent: Agent, state: TurnState) -> str | None:
        """Why the turn may not end yet (a required tool not called), or None."""
        ...


class OpenGate:
    """No rules: every tool may be called at any time."""

    def prompt(self, agent: Agent) -> str:
        return ""

    def offered(self, agent: Agent, state: TurnState, names: Sequence[str]) -> list[str]:
        return list(names)

    def refuse(self, agent: Agent, state: TurnState, name: str) -> str | None:
        return None

    def after(self, agent: Agent, state: TurnState, name: str) -> Decision | None:
        return None

    def may_end(self, agent: Agent, state: TurnState) -> str | None:
        return None
