"""The raw ASGI app of the scripted model: routing, policy calls, replies and faults.

A small hand-written ASGI callable rather than a framework: the benchmarks drive thousands
of requests per second through it, so the per-request path is one body read, one msgspec
decode, the policy, one msgspec encode and one write.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, TypedDict, TypeVar

import anyio
import msgspec
import structlog

from agents.scripted import _wire
from agents.scripted.policies import echo
from agents.scripted.protocol import ChatRequest, EmbeddingRequest, estimate_tokens
from agents.scripted.replies import (
    OUTCOME_TYPES,
    ContextTooLong,
    CutStream,
    EmbeddingsPolicy,
    Fault,
    MalformedBody,
    Outcome,
    Policy,
    RateLimited,
    Reply,
    ServerError,
    Slow,
)
from storage.embeddings.hashing import hash_embed

__all__ = ("DEFAULT_CONTEXT_WINDOW", "DEFAULT_MODELS", "AppSettings", "ScriptedApp")

T = TypeVar("T")
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

DEFAULT_CONTEXT_WINDOW = 128_000
DEFAULT_MODELS: Mapping[str, int] = {
    "scripted": DEFAULT_CONTEXT_WINDOW,
    "gpt-4o-mini": DEFAULT_CONTEXT_WINDOW,
    "text-embedding-3-small": 8_192,
}

_log = structlog.get_logger(__name__)
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
_chat_decoder = msgspec.json.Decoder(ChatRequest)
_embedding_decoder = msgspec.json.Decoder(EmbeddingRequest)

# Set while a response is deliberately cut, so that uvicorn's complaint about it is dropped.
_cutting: contextvars.ContextVar[bool] = contextvars.ContextVar("scripted_cut", default=False)


class _CutFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _cutting.get()


CUT_FILTER = _CutFilter()


class _Disconnected(Exception):
    """The client went away before its request body arrived."""


class AppSettings(TypedDict, total=False):
    """The keyword arguments of :class:`ScriptedApp` (its attributes of the same names say
    what each does), as the classes built on it take them through."""

    models: Mapping[str, int] | None
    default_context_window: int
    enforce_context_window: bool
    embeddings_policy: EmbeddingsPolicy | None
    embedding_dimension: int
    chunk_chars: int


class ScriptedApp:
    """State and ASGI entry point of a scripted OpenAI-compatible model.

    Attributes:
        policy: decides every chat completion; may be replaced at any time.
        embeddings_policy: optional hook deciding embedding requests.
        models: model ids listed by ``/v1/models`` with their context windows.
        default_context_window: the window of models not in ``models``.
        enforce_context_window: answer ``context_length_exceeded`` (without asking the
            policy) when the request's estimated tokens exceed the model's window.
        embedding_dimension: vector size when a request names no ``dimensions``.
        chunk_chars: characters per content or argument fragment when streaming.
        requests: every chat request received, in arrival order.
        embedding_requests: every embeddings request received.
        policy_errors: exceptions raised by policies (each answered with a 500).
        abandoned: requests whose client hung up while a :class:`Slow` reply waited.
    """

    def __init__(
        self,
        policy: Policy = echo,
        *,
        models: Mapping[str, int] | None = None,
        default_context_window: int = DEFAULT_CONTEXT_WINDOW,
        enforce_context_window: bool = True,
        embeddings_policy: EmbeddingsPolicy | None = None,
        embedding_dimension: int = 384,
        chunk_chars: int = 16,
    ) -> None:
        self.policy = policy
        self.embeddings_policy = embeddings_policy
        self.models = dict(DEFAULT_MODELS if models is None else models)
        self.default_context_window = default_context_window
        self.enforce_context_window = enforce_context_window
        self.embedding_dimension = embedding_dimension
        self.chunk_chars = chunk_chars
        self.requests: list[ChatRequest] = []
        self.embedding_requests: list[EmbeddingRequest] = []
        self.policy_errors: list[Exception] = []
        self.abandoned = 0
        self._changed: anyio.Event | None = None
        self._pauses: set[anyio.CancelScope] = set()
        self._closing = False

    def context_window(self, model: str) -> int:
        """The context window of ``model`` (``default_context_window`` when unlisted)."""
        return self.models.get(model, self.default_context_window)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds; it is checked whenever a request arrives or ends.

        Bound the wait with a scope: ``with anyio.fail_after(5): await m.wait_until(...)``.
        """
        while not condition():
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    async def wait_for_requests(self, count: int) -> list[ChatRequest]:
        """Wait until at least ``count`` chat requests arrived; returns all of them."""
        await self.wait_until(lambda: len(self.requests) >= count)
        return list(self.requests)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _begin_closing(self) -> None:
        """Cut short every pause so that shutdown does not wait for slow replies."""
        self._closing = True
        for scope in list(self._pauses):
            scope.cancel()

    # ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith("/v1/"):
            path = path[3:]
        method: str = scope["method"]
        try:
            if path == "/chat/completions" and method == "POST":
                await self._chat(await _read_body(receive), receive, send)
            elif path == "/embeddings" and method == "POST":
                await self._embeddings(await _read_body(receive), receive, send)
            elif path == "/models" and method == "GET":
                await _respond(send, 200, _wire.model_list(self.models))
            elif path.startswith("/models/") and method == "GET":
                name = path[len("/models/") :]
                body = _wire.model_object_json(name, self.context_window(name))
                await _respond(send, 200, body)
            else:
                message = f"Unknown request URL: {method} {scope['path']}."
                await _respond(send, 404, _wire.error(message, "invalid_request_error", None))
        except _Disconnected:
            return

    async def _chat(self, body: bytes, receive: Receive, send: Send) -> None:
        request = await _decode(_chat_decoder, body, send)
        if request is None:
            return
        request = msgspec.structs.replace(request, raw_json=body)
        try:
            outcome, tokens = await self._decide(request)
        except Exception as exc:
            await self._policy_failed(exc, send)
            return
        await self._deliver(outcome, request, tokens, receive, send, 0.0)

    async def _decide(self, request: ChatRequest) -> tuple[Outcome, int]:
        """Record ``request``; its outcome (:class:`ContextTooLong` when it overflows the
        model's enforced window, else the policy's) and its estimated tokens.

        Raises:
            Exception: what the policy raised; TypeError when it returned no outcome.
        """
        self.requests.append(request)
        self._notify()
        tokens = estimate_tokens(request)
        if self.enforce_context_window and tokens > self.context_window(request.model):
            return ContextTooLong(), tokens
        outcome = self.policy(request)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if not isinstance(outcome, OUTCOME_TYPES):
            raise TypeError(f"policy returned {outcome!r}; expected a Reply or a fault")
        return outcome, tokens

    async def _policy_failed(self, exc: Exception, send: Send) -> None:
        self.policy_errors.append(exc)
        _log.warning("scripted_policy_failed", error=repr(exc))
        message = f"scripted policy raised {type(exc).__name__}: {exc}"
        await _respond(send, 500, _wire.error(message, "server_error", "policy_error"))

    async def _deliver(
        self,
        outcome: Outcome,
        request: ChatRequest,
        tokens: int,
        receive: Receive,
        send: Send,
        chunk_delay: float,
    ) -> None:
        if isinstance(outcome, Reply):
            if not request.stream:
                await _respond(send, 200, _wire.chat_completion(request, outcome, tokens))
            else:
                frames = _wire.stream_frames(request, outcome, tokens, self.chunk_chars)
                await self._stream(frames, len(frames), chunk_delay, receive, send)
        elif isinstance(outcome, Slow):
            if await self._pause(outcome.seconds, receive, send):
                await self._deliver(
                    outcome.then, request, tokens, receive, send, outcome.chunk_delay
                )
        elif isinstance(outcome, CutStream):
            if request.stream:
                frames = _wire.stream_frames(request, outcome.reply, tokens, self.chunk_chars)
                await self._stream(frames, outcome.after_chunks, chunk_delay, receive, send)
            else:
                body = _wire.chat_completion(request, outcome.reply, tokens)
                headers = [*_JSON, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                chunk = {"type": "http.response.body", "body": body[: outcome.after_chunks]}
                await send({**chunk, "more_body": True})
                _cutting.set(True)
        elif isinstance(outcome, MalformedBody):
            if request.stream:
                frames = [b"data: " + outcome.body + b"\n\n", b"data: [DONE]\n\n"]
                await self._stream(frames, len(frames), chunk_delay, receive, send)
            else:
                await _respond(send, 200, outcome.body)
        else:
            await _send_fault(outcome, self.context_window(request.model), tokens, send)

    async def _stream(
        self, frames: list[bytes], limit: int, delay: float, receive: Receive, send: Send
    ) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        cut = limit < len(frames)
        frames = frames[:limit]
        if delay <= 0:
            body = b"".join(frames)
            await send({"type": "http.response.body", "body": body, "more_body": cut})
        else:
            for index, frame in enumerate(frames):
                if index and not await self._pause(delay, receive, None):
                    _cutting.set(True)
                    return
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            if not cut:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        if cut:
            _cutting.set(True)

    async def _pause(self, seconds: float, receive: Receive, send: Send | None) -> bool:
        """Sleep ``seconds``; ``False`` when the client hung up or the server is closing.

        ``send`` is given when no response has started yet: a closing server then answers
        503 so that the client sees a clean error.
        """
        with anyio.move_on_after(seconds) as scope:
            self._pauses.add(scope)
            try:
                while (await receive())["type"] != "http.disconnect":
                    pass
            finally:
                self._pauses.discard(scope)
            self.abandoned += 1
            self._notify()
            return False
        if not self._closing:
            return True
        if send is not None:
            message = "The scripted model is shutting down."
            await _respond(send, 503, _wire.error(message, "server_error", "shutting_down"))
        return False

    async def _embeddings(self, body: bytes, receive: Receive, send: Send) -> None:
        request = await _decode(_embedding_decoder, body, send)
        if request is None:
            return
        self.embedding_requests.append(request)
        self._notify()
        result: list[list[float]] | Fault | None = None
        if self.embeddings_policy is not None:
            try:
                answer = self.embeddings_policy(request)
                result = await answer if inspect.isawaitable(answer) else answer
            except Exception as exc:
                await self._policy_failed(exc, send)
                return
        while isinstance(result, Slow):
            if not await self._pause(result.seconds, receive, send):
                return
            then = result.then
            result = then if isinstance(then, (RateLimited, ServerError, ContextTooLong)) else None
        if isinstance(result, (RateLimited, ServerError, ContextTooLong)):
            await _send_fault(result, self.context_window(request.model), 0, send)
            return
        texts = request.texts
        if not isinstance(result, list):
            dimension = request.dimensions or self.embedding_dimension
            result = [hash_embed(text, dimension) for text in texts]
        body = _wire.embeddings(request.model, result, texts, request.encoding_format)
        await _respond(send, 200, body)


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _Disconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _decode(decoder: msgspec.json.Decoder[T], body: bytes, send: Send) -> T | None:
    """``body`` decoded, or None once a 400 saying why it is not a request was sent."""
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        await _respond(send, 400, _wire.error(str(exc), "invalid_request_error"))
        return None


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or _JSON})
    await send({"type": "http.response.body", "body": body})


async def _send_fault(
    fault: RateLimited | ServerError | ContextTooLong, window: int, tokens: int, send: Send
) -> None:
    if isinstance(fault, RateLimited):
        body = _wire.error(fault.message, "requests", "rate_limit_exceeded")
        headers = _retry_headers(fault.retry_after)
        await _respond(send, 429, body, _with(headers, fault.headers))
    elif isinstance(fault, ServerError):
        body = _wire.error(fault.message, fault.type, fault.code)
        headers = _JSON if fault.retry_after is None else _retry_headers(fault.retry_after)
        await _respond(send, fault.status, body, _with(headers, fault.headers))
    else:
        message = fault.message or _wire.context_length_message(window, tokens)
        body = _wire.error(message, "invalid_request_error", "context_length_exceeded", "messages")
        await _respond(send, 400, body)


def _with(
    headers: list[tuple[bytes, bytes]], extra: tuple[tuple[str, str], ...]
) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``extra`` added, replacing those of the same name."""
    if not extra:
        return headers
    names = {name.lower().encode() for name, _ in extra}
    kept = [(name, value) for name, value in headers if name not in names]
    return kept + [(name.lower().encode(), value.encode()) for name, value in extra]


def _retry_headers(seconds: float) -> list[tuple[bytes, bytes]]:
    # Retry-After is whole seconds (RFC 9110); the openai SDK prefers retry-after-ms.
    seconds = max(0.0, seconds)
    return [
        *_JSON,
        (b"retry-after", str(math.ceil(seconds)).encode()),
        (b"retry-after-ms", str(round(seconds * 1000)).encode()),
    ]
