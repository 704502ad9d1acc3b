"""The scripted model in-process: the same policies, no server, no HTTP.

:class:`FunctionModel` is a :class:`agents.model.ModelPool` (and the :class:`ChatModel` of
every agent) that hands each request to a policy in the caller's task, as pydantic-ai's
``FunctionModel`` does. A runtime built on it runs agent steps with no port, no uvicorn and no
``openai`` SDK: the fast way to unit-test the runtime::

    model = FunctionModel(sequence(say("hi")))
    rt = Runtime(redis=redis, llm=model)
    ...
    assert model.requests[0].last_user_text == "hello"

What the policy sees and answers is what the HTTP server sees and answers: the request is the
JSON body :class:`agents.llm.LLMClient` would post, and a :class:`Reply` goes through the same
completion (or chunk) encoding and parsing, so a test moves between the two by swapping the
model. What differs: there are no retries. A fault is raised at once as the error the HTTP
client raises once its retries are spent (429 and 5xx: :class:`LLMUnavailable`; another 4xx:
:class:`LLMRejected`; a too-long prompt: :class:`ContextWindowExceeded`; a body that is not a
completion: :class:`LLMInvalidResponse`; a cut stream: :class:`LLMUnavailable` after the chunks
sent). Tests of retries, backoff, timeouts and the SDK's wire stay on
:class:`~agents.scripted.server.ScriptedModel`, as do the API, acceptance and chaos suites.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

import anyio
import msgspec

from agents._completion import LLMResponse, Unparsable, parse
from agents._streaming import DeltaSink, _Answer
from agents.llm import (
    ContextWindowExceeded,
    LLMInvalidResponse,
    LLMRejected,
    LLMUnavailable,
    model_name,
)
from agents.model import ChatCall, ChatModel
from agents.scripted import _wire
from agents.scripted._app import AppSettings, ScriptedApp
from agents.scripted.policies import echo
from agents.scripted.protocol import ChatRequest
from agents.scripted.replies import (
    ContextTooLong,
    CutStream,
    MalformedBody,
    Outcome,
    Policy,
    RateLimited,
    Reply,
    Slow,
)
from storage.records import Agent

__all__ = ("FunctionModel",)

_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(ChatRequest)
_chunk_decoder = msgspec.json.Decoder()


class FunctionModel(ScriptedApp, ChatModel):
    """A scripted model called in-process: a :class:`~agents.model.ModelPool` whose every agent
    gets this one :class:`~agents.model.ChatModel`.

    Its state and settings (``policy``, ``requests``, ``policy_errors``, ``wait_until``,
    context windows…) are those of the HTTP :class:`~agents.scripted.server.ScriptedModel`;
    a policy that raises is recorded in ``policy_errors`` and the call fails with
    :class:`LLMUnavailable`, as a 500 would.

    Args:
        policy: decides each chat completion; default :func:`~agents.scripted.policies.echo`.
        **settings: the settings of :class:`~agents.scripted._app.ScriptedApp`.
    """

    def __init__(self, policy: Policy = echo, **settings: Unpack[AppSettings]) -> None:
        super().__init__(policy, **settings)
        self.reserved = 0

    # ModelPool -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str | None:
        """None: there is no endpoint, the model runs in this process."""
        return None

    def for_agent(self, agent: Agent) -> FunctionModel:
        """This model, for every agent (its ``model_endpoint`` is not called)."""
        return self

    def reserve(self, connections: int) -> None:
        """Record the concurrency asked for; there are no connections to keep."""
        self.reserved = max(self.reserved, connections)

    async def aclose(self) -> None:
        """Nothing to release."""

    # ChatModel -----------------------------------------------------------------------

    async def complete(self, call: ChatCall, sink: DeltaSink | None) -> LLMResponse:
        """One completion decided by the policy; with a ``sink``, handed to it chunk by chunk
        (``chat`` and ``stream`` come here)."""
        request = _request(call, stream=sink is not None)
        if sink is not None:
            sink.restart()  # as LLMClient does before its attempt
        outcome, tokens = await self._decided(request)
        return await self._answer(outcome, request, tokens, sink, 0.0)

    async def _decided(self, request: ChatRequest) -> tuple[Outcome, int]:
        try:
            return await self._decide(request)
        except Exception as exc:
            self.policy_errors.append(exc)
            raise LLMUnavailable(f"the scripted policy raised {type(exc).__name__}: {exc}") from exc

    async def _answer(
        self,
        outcome: Outcome,
        request: ChatRequest,
        tokens: int,
        sink: DeltaSink | None,
        chunk_delay: float,
    ) -> LLMResponse:
        if isinstance(outcome, Slow):
            await anyio.sleep(outcome.seconds)
            return await self._answer(outcome.then, request, tokens, sink, outcome.chunk_delay)
        if isinstance(outcome, Reply | CutStream):
            reply = outcome if isinstance(outcome, Reply) else outcome.reply
            if sink is None:
                if isinstance(outcome, CutStream):
                    raise LLMUnavailable("the scripted model cut the connection mid-answer")
                return parse(_wire.chat_completion(request, reply, tokens))
            frames = _wire.stream_frames(request, reply, tokens, self.chunk_chars)
            if isinstance(outcome, CutStream):
                frames = frames[: outcome.after_chunks]
            return await _feed(frames, sink, chunk_delay)
        if isinstance(outcome, MalformedBody):
            try:
                if sink is None:
                    return parse(outcome.body)
                return await _feed([b"data: " + outcome.body + b"\n\n", _wire.DONE], sink, 0.0)
            except Unparsable as exc:
                raise LLMInvalidResponse(
                    f"the model answered with something that is not a chat completion: {exc}"
                ) from exc
        if isinstance(outcome, ContextTooLong):
            window = self.context_window(request.model)
            raise ContextWindowExceeded(
                outcome.message or _wire.context_length_message(window, tokens)
            )
        if isinstance(outcome, RateLimited):
            raise LLMUnavailable(f"rate limited: {outcome.message}")
        status = outcome.status
        if status >= 500 or status in (408, 409, 429):
            raise LLMUnavailable(f"the scripted model answered {status}: {outcome.message}")
        raise LLMRejected(f"the model endpoint refused the request: {outcome.message}")


def _request(call: ChatCall, *, stream: bool) -> ChatRequest:
    """The request as :class:`agents.llm.LLMClient` would post it, decoded as the server
    decodes it (so policies see the same JSON round trip)."""
    body: dict[str, Any] = {"model": model_name(call.model), "messages": list(call.messages)}
    if call.tools:
        body["tools"] = list(call.tools)
        body["tool_choice"] = call.tool_choice or "auto"
    if call.max_tokens:
        body["max_tokens"] = call.max_tokens
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    raw = _encoder.encode(body)
    return msgspec.structs.replace(_request_decoder.decode(raw), raw_json=raw)


async def _feed(frames: Sequence[bytes], sink: DeltaSink, delay: float) -> LLMResponse:
    """The SSE ``frames`` of an answer handed to ``sink`` as the HTTP client hands them."""
    answer = _Answer()
    for index, frame in enumerate(frames):
        if frame == _wire.DONE:
            return answer.response()
        if index and delay > 0:
            await anyio.sleep(delay)
        try:
            text, pieces, reasoning = answer.add(
                _chunk_decoder.decode(frame.removeprefix(b"data: "))
            )
        except (msgspec.DecodeError, TypeError, ValueError, AttributeError) as exc:
            raise Unparsable(f"a stream chunk that is not a completion chunk: {exc}") from exc
        if text or pieces or reasoning:
            await sink.chunk(text, pieces, reasoning)
    raise LLMUnavailable("the scripted model cut the stream mid-answer")
