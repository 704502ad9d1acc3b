"""``/v1/agents/{agent_id}/messages``: send (wait, stream over SSE, or async) and list.

Every send goes through the bus: :meth:`agents.runs.RunStore.submit` queues a run on the
agent's inbox (a retried request with the same first ``otid`` gets the original run back),
and the answer is read from the run's event stream, which any worker writes. The stream is
``data: <json>`` frames, one per Letta message, then ``stop_reason`` and ``usage_statistics``
frames and ``data: [DONE]``. With ``stream_tokens`` the model's tokens stream: reasoning and
reply arrive in pieces that share their message's ``id`` (:mod:`orchestrator.api._live`);
``include_pings`` adds a ``ping`` frame whenever the stream was silent for a while.

A run stopped with ``requires_approval`` ends with an ``approval_request_message`` per held
call; the next send answers it with Letta's approval message (0.11: ``{"type": "approval",
"approve": ..., "approval_request_id": ..., "reason": ...}``; 0.16: ``{"type": "approval",
"approvals": [{"type": "approval", "tool_call_id": ..., "approve": ..., "reason": ...}]}``),
which goes to the agent's inbox as ``role="approval"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any, cast, get_args

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream
from litestar.response.base import ASGIResponse

from agents.letta_messages import (
    Event,
    LettaMessage,
    StopReason,
    StopReasonName,
    UsageStatistics,
    event_decoder,
    event_encoder,
)
from bus.run_events import follow
from orchestrator.api._inbox import check_sizes, check_url, inbox_messages
from orchestrator.api._live import Ping, live_events
from orchestrator.api._presentation import Presentation, presented
from orchestrator.api.callbacks import callback_state, enqueue_callback
from orchestrator.api.errors import ApiError
from orchestrator.api.paging import Paging, ordered
from orchestrator.api.schemas import MessagesIn
from orchestrator.api.state import Api
from orchestrator.api.views import LettaResponse, RunView, run_view
from storage.records import Message

__all__ = ("EventStream", "MessagesController", "follow_events", "sse")

_FINISHED = frozenset({"completed", "failed", "cancelled"})
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def follow_events(api: Api, agent_id: str, run_id: str) -> AsyncIterator[Event]:
    """A run's events until its end: live while it runs, stored once it has finished.

    Raises:
        TimeoutError: the run did not end within the API's ``run_timeout_s``.
    """
    run = await api.runs.get(agent_id, run_id)
    if run.status in _FINISHED:
        events, ended = await api.runs.events(agent_id, run_id)
        if not ended:  # its events have expired: what the run record still says
            usage = run.usage
            events = [
                StopReason(stop_reason=_stop_name(run.stop_reason)),
                UsageStatistics(
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    total_tokens=usage.total_tokens,
                    step_count=usage.step_count,
                ),
            ]
        for event in events:
            yield event
        return
    # Short blocking reads: a read blocked as long as the client's socket timeout (5 s in
    # redis-py 8) fails with a TimeoutError instead of returning empty.
    async for _entry, raw in follow(
        api.rt.redis, agent_id, run_id, block_ms=1000, timeout_s=api.settings.run_timeout_s
    ):
        yield event_decoder.decode(raw)


def _stop_name(value: str | None) -> StopReasonName:
    if value is None:
        return "end_turn"
    for name in get_args(StopReasonName):
        if name == value:
            return cast("StopReasonName", name)
    return "error"


def _wanted(event: Event, types: Sequence[str] | None) -> bool:
    if isinstance(event, StopReason | UsageStatistics):
        return False
    return types is None or _type_of(event) in types


def _type_of(message: LettaMessage) -> str:
    return str(type(message).__struct_config__.tag)


class EventStream(Stream):
    """A Server-Sent Events response that keeps its media type whatever the handler's."""

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        # Litestar prefers the handler's media type (JSON for POST /messages) over ours.
        kwargs["media_type"] = "text/event-stream"
        return super().to_asgi_response(*args, **kwargs)


def sse(
    api: Api,
    agent_id: str,
    run_id: str,
    types: Sequence[str] | None = None,
    *,
    live: bool = False,
    pings: bool = False,
    view: Presentation | None = None,
) -> Stream:
    """The run's events as a Server-Sent Events response ending with ``data: [DONE]``;
    ``live`` folds in token deltas, ``pings`` keeps a silent stream alive, ``view`` says how
    model messages are shown (token deltas, which are in the default form, are then left out:
    each message comes whole as its step commits)."""
    view = view or Presentation()
    live = live and view.is_default

    async def frames() -> AsyncIterator[bytes]:
        events: AsyncIterator[Event | Ping] = follow_events(api, agent_id, run_id)
        if live or pings:
            stored = partial(follow_events, api, agent_id, run_id)
            events = live_events(api, agent_id, run_id, pings=pings, stored=stored)
        events = presented(api, agent_id, events, view)
        try:
            async for event in events:
                if isinstance(event, Ping | StopReason | UsageStatistics) or _wanted(event, types):
                    yield b"data: " + event_encoder.encode(event) + b"\n\n"
        except TimeoutError as exc:
            error = {"message_type": "error_message", "run_id": run_id, "message": str(exc)}
            yield b"data: " + msgspec.json.encode(error) + b"\n\n"
            yield b"data: " + event_encoder.encode(StopReason(stop_reason="error")) + b"\n\n"
        yield b"data: [DONE]\n\n"

    return EventStream(frames(), media_type="text/event-stream", headers=_SSE_HEADERS)


def _view(data: MessagesIn) -> Presentation:
    return Presentation.of(
        data.use_assistant_message,
        data.assistant_message_tool_name,
        data.assistant_message_tool_kwarg,
        "body",
    )


def _sse(api: Api, agent_id: str, run_id: str, data: MessagesIn) -> Stream:
    types = data.include_return_message_types
    return sse(
        api,
        agent_id,
        run_id,
        types,
        live=data.stream_tokens,
        pings=data.include_pings,
        view=_view(data),
    )


async def _respond(api: Api, agent_id: str, run_id: str, data: MessagesIn) -> LettaResponse:
    types = data.include_return_message_types
    events: list[Event] = []
    try:
        async for event in presented(
            api, agent_id, follow_events(api, agent_id, run_id), _view(data)
        ):
            events.append(event)
    except TimeoutError:
        raise ApiError(
            504,
            f"run {run_id} did not finish within {api.settings.run_timeout_s:g}s; it goes on: "
            f"see GET /v1/runs/{run_id}",
        ) from None
    stop = next((e for e in events if isinstance(e, StopReason)), None)
    usage = next((e for e in events if isinstance(e, UsageStatistics)), UsageStatistics())
    return LettaResponse(
        messages=[e for e in events if _wanted(e, types)],  # type: ignore[misc]  # filtered to messages
        stop_reason=stop
        or StopReason(stop_reason="error", detail="the run ended without a stop reason"),
        usage=usage,
    )


class MessagesController(Controller):
    """An agent's messages."""

    path = "/v1/agents/{agent_id:str}/messages"
    tags = ["messages"]

    async def _submit(
        self, api: Api, agent_id: str, data: MessagesIn, *, streamed: bool = False
    ) -> str:
        if data.max_steps is not None and data.max_steps < 1:
            raise ApiError(422, "max_steps must be at least 1", field="max_steps")
        _view(data)  # a bad option is refused before anything is queued
        agent = await api.agent(agent_id)
        inbox = inbox_messages(data, {call.id for call in agent.pending_approval})
        check_sizes(api, agent, data, inbox)
        submitted = await api.runs.submit(
            agent.id,
            inbox,
            otid=inbox[0].otid,
            max_steps=data.max_steps,
            stream_tokens=streamed and data.stream_tokens,
        )
        return submitted.run_id

    @post("/", status_code=200)
    async def create(
        self, agent_id: FromPath[str], data: JSONBody[MessagesIn], api: Api
    ) -> LettaResponse | Stream:
        """Send messages and wait for the agent's turn (``streaming=true``: stream it)."""
        run_id = await self._submit(api, agent_id, data, streamed=data.streaming)
        if data.streaming:
            return _sse(api, agent_id, run_id, data)
        return await _respond(api, agent_id, run_id, data)

    @post("/stream", status_code=200)
    async def stream(self, agent_id: FromPath[str], data: JSONBody[MessagesIn], api: Api) -> Stream:
        """Send messages and stream the agent's turn as Server-Sent Events."""
        run_id = await self._submit(api, agent_id, data, streamed=True)
        return _sse(api, agent_id, run_id, data)

    @post("/async", status_code=200)
    async def create_async(
        self, agent_id: FromPath[str], data: JSONBody[MessagesIn], api: Api
    ) -> RunView:
        """Send messages and return the run at once; poll ``GET /v1/runs/{run_id}``.

        With ``callback_url`` the run's result is POSTed there when it ends
        (:mod:`orchestrator.api.callbacks`).
        """
        if data.callback_url is not None:
            check_url(data.callback_url)
        run_id = await self._submit(api, agent_id, data)
        redis = api.rt.redis
        if data.callback_url is not None:
            ttl = api.rt.settings.run_ttl_s
            await enqueue_callback(redis, agent_id, run_id, data.callback_url, ttl_s=ttl)
        run = await api.runs.get(agent_id, run_id)
        return run_view(run, await callback_state(redis, agent_id, run_id))

    @get("/", dependencies=ordered(100))
    async def list_messages(
        self,
        agent_id: FromPath[str],
        api: Api,
        paging: Paging,
        include_return_message_types: FromQuery[list[str] | None] = None,
        use_assistant_message: FromQuery[bool | None] = None,
        assistant_message_tool_name: FromQuery[str | None] = None,
        assistant_message_tool_kwarg: FromQuery[str | None] = None,
    ) -> list[LettaMessage]:
        """The agent's messages.

        Without ``order`` (Letta 0.11): the latest ``limit`` before ``before``, or the first
        after ``after``, oldest first. ``order=asc``/``desc`` (Letta 0.16): in that order, with
        ``after``/``before`` meaning after/before in that order.
        """
        view = Presentation.of(
            use_assistant_message,
            assistant_message_tool_name,
            assistant_message_tool_kwarg,
            "query",
        )
        agent = await api.agent(agent_id)
        size = paging.size(100)
        after, before, order = paging.after, paging.before, paging.order
        log = api.rt.messages
        stored: list[Message]
        if order == "asc":
            stored = await log.list(agent.id, after=after, before=before, limit=size)
        elif order == "desc":
            stored = await log.list(
                agent.id, after=before, before=after, limit=size, ascending=False
            )
        elif after is not None and before is None:
            stored = await log.list(agent.id, after=after, limit=size)
        else:
            stored = await log.list(
                agent.id, after=after, before=before, limit=size, ascending=False
            )
            stored.reverse()
        types = include_return_message_types
        return [m for message in stored for m in view.expand(message) if _wanted(m, types)]
