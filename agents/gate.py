"""The seam for tool rules: the step loop asks a :class:`ToolGate` what it may offer and call.

The tool-rule engine (:class:`agents.rules.RuleGate`) implements this protocol and is every
runtime's default gate; :class:`OpenGate` allows everything.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from storage.records import Agent, ToolRule

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

    def preset_args(self, agent: Agent, state: TurnState, name: str) -> dict[str, Any]:
        """Arguments the rules fix for a call of ``name`` (they override the model's)."""
        ...

    def check(self, tool_rules: Sequence[ToolRule], tool_names: Collection[str]) -> list[str]:
        """Problems with an agent's rules, each naming the rule and field ([] when valid)."""
        ...

    def needs_approval(self, agent: Agent, state: TurnState, name: str) -> bool:
        """Whether a call of ``name`` must wait for a person's approval before it runs."""
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

    def preset_args(self, agent: Agent, state: TurnState, name: str) -> dict[str, Any]:
        return {}

    def check(self, tool_rules: Sequence[ToolRule], tool_names: Collection[str]) -> list[str]:
        return []

    def needs_approval(self, agent: Agent, state: TurnState, name: str) -> bool:
        return False
