"""A run followed live over SSE: token deltas as the model produces them, keep-alive pings.

With ``stream_tokens`` the worker publishes pieces of each step's reasoning and reply to the
run's event stream before the step commits (:mod:`agents._deltas`); frames of one message share
its ``id``, as Letta's do, and a client puts a message together by joining them. When the step
commits, the whole message arrives too: of it, only what its deltas did not already show is
sent (often nothing). A committed message whose deltas showed something else (which the
worker avoids by moving to a fresh id) is sent whole rather than lost.

With ``include_pings`` a ``ping`` frame goes out whenever the stream was silent for
``ping_interval_s`` (a slow model, a run waiting for another agent), so that proxies and
clients with read timeouts keep the connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import msgspec

from agents.letta_messages import (
    REASONING_PART,
    AssistantMessage,
    Event,
    ReasoningMessage,
    event_decoder,
    iso,
    reply_part,
)
from bus.run_events import LiveEntry, follow_live, read_live
from orchestrator.api.state import Api
from storage.records import new_id

__all__ = ("Ping", "live_events")

_FINISHED = frozenset({"completed", "failed", "cancelled"})


class Ping(msgspec.Struct, kw_only=True, tag="ping", tag_field="message_type"):
    """Letta's keep-alive frame (``LettaPing``)."""

    id: str
    date: str


def _text(event: ReasoningMessage | AssistantMessage) -> str:
    return event.reasoning if isinstance(event, ReasoningMessage) else event.content


def _with_text(
    event: ReasoningMessage | AssistantMessage, text: str
) -> ReasoningMessage | AssistantMessage:
    if isinstance(event, ReasoningMessage):
        return msgspec.structs.replace(event, reasoning=text)
    return msgspec.structs.replace(event, content=text)


class _Shown:
    """What the deltas already showed of each message part, so that commits add only the rest."""

    def __init__(self) -> None:
        self.sent: dict[tuple[str, str], str] = {}
        self.replies: dict[str, int] = {}  # committed replies seen per message id

    def event(self, entry: LiveEntry) -> Event | None:
        event = event_decoder.decode(entry.data)
        if entry.part is not None:
            if isinstance(event, ReasoningMessage | AssistantMessage):
                key = (event.id, entry.part)
                self.sent[key] = self.sent.get(key, "") + _text(event)
            return event
        if isinstance(event, ReasoningMessage):
            part = REASONING_PART
        elif isinstance(event, AssistantMessage):
            ordinal = self.replies.get(event.id, 0)
            self.replies[event.id] = ordinal + 1
            part = reply_part(ordinal)
        else:
            return event
        shown = self.sent.pop((event.id, part), None)
        if shown is None:
            return event
        text = _text(event)
        if text.startswith(shown):
            rest = text[len(shown) :]
            return _with_text(event, rest) if rest else None
        if shown.startswith(text) and not shown[len(text) :].strip():
            return None  # the committed text is stripped of the blanks already shown
        return event


async def live_events(
    api: Api,
    agent_id: str,
    run_id: str,
    *,
    pings: bool,
    stored: Callable[[], AsyncIterator[Event]],
) -> AsyncIterator[Event | Ping]:
    """The run's events with token deltas folded in, and pings when ``pings`` asks.

    ``stored`` gives the events of a finished run whose stream has expired.

    Raises:
        TimeoutError: the run did not end within the API's ``run_timeout_s``.
    """
    redis, shown = api.rt.redis, _Shown()
    run = await api.runs.get(agent_id, run_id)
    if run.status in _FINISHED:
        entries, ended = await read_live(redis, agent_id, run_id)
        if not ended:
            async for event in stored():
                yield event
            return
        for item in entries:
            if (folded := shown.event(item)) is not None:
                yield folded
        return
    interval = api.settings.ping_interval_s
    # Short blocking reads: a read blocked as long as the client's socket timeout fails.
    block_ms = max(10, min(1000, int(interval * 1000))) if pings else 1000
    quiet_since = anyio.current_time()
    async for entry in follow_live(
        redis, agent_id, run_id, block_ms=block_ms, timeout_s=api.settings.run_timeout_s
    ):
        if entry is not None and (live := shown.event(entry)) is not None:
            yield live
            quiet_since = anyio.current_time()
        elif pings and anyio.current_time() - quiet_since >= interval:
            yield Ping(id=new_id("message"), date=iso(api.rt.clock()))
            quiet_since = anyio.current_time()
