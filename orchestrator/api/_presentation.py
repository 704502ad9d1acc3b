"""How a client wants messages shown: Letta's ``use_assistant_message`` and its tool options.

A run's event stream is written once, in the default form (``send_message(message=...)`` calls
as ``assistant_message``). A client asking for another form gets each committed message
expanded again from the message log (the events of one message share its id, and the message
is stored in the same commit as its events), so every view comes from the same record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, TypeVar

import msgspec

from agents.letta_messages import (
    REPLY_TOOL,
    ApprovalRequestMessage,
    AssistantMessage,
    LettaMessage,
    ReasoningMessage,
    ToolCallMessage,
    expand,
)
from orchestrator.api.errors import ApiError
from orchestrator.api.state import Api
from storage.records import Message

__all__ = ("Presentation", "presented")

E = TypeVar("E")


class Presentation(msgspec.Struct, frozen=True, kw_only=True):
    """Which tool call and argument stand for the assistant's reply, if any."""

    use_assistant_message: bool = True
    tool: str = REPLY_TOOL
    kwarg: str = "message"

    @classmethod
    def of(
        cls,
        use_assistant_message: bool | None,
        tool: str | None,
        kwarg: str | None,
        source: Literal["body", "query"],
    ) -> Presentation:
        """The options of a request; an empty tool name or argument is a 422 naming it."""
        for field, value in (
            ("assistant_message_tool_name", tool),
            ("assistant_message_tool_kwarg", kwarg),
        ):
            if value is not None and not value.strip():
                raise ApiError(
                    422,
                    "must name a tool (or argument); leave it out for send_message(message)",
                    field=field,
                    source=source,
                )
        return cls(
            use_assistant_message=True if use_assistant_message is None else use_assistant_message,
            tool=tool or REPLY_TOOL,
            kwarg=kwarg or "message",
        )

    @property
    def is_default(self) -> bool:
        return self == _DEFAULT

    def expand(self, message: Message) -> list[LettaMessage]:
        return expand(
            message,
            use_assistant_message=self.use_assistant_message,
            assistant_tool=self.tool,
            assistant_kwarg=self.kwarg,
        )


_DEFAULT = Presentation()
_FROM_CALLS = (ReasoningMessage, AssistantMessage, ToolCallMessage, ApprovalRequestMessage)


async def presented(
    api: Api, agent_id: str, events: AsyncIterator[E], view: Presentation
) -> AsyncIterator[E | LettaMessage]:
    """``events`` with each model message shown as ``view`` asks (unchanged for the default)."""
    if view.is_default:
        async for event in events:
            yield event
        return
    shown: set[str] = set()
    async for event in events:
        if not isinstance(event, _FROM_CALLS):
            yield event
            continue
        if event.id in shown:
            continue  # the message was already shown whole
        stored = await api.rt.messages.get_one(agent_id, event.id)
        if stored is None or stored.role != "assistant":  # expired: as it was written
            yield event
            continue
        shown.add(event.id)
        for message in view.expand(stored):
            yield message
