"""What a policy answers: a :class:`Reply`, or a fault the server injects instead.

A policy is a callable from :class:`~agents.scripted.protocol.ChatRequest` to a
:data:`Outcome` (sync or async). The outcomes are:

- :class:`Reply`: content and/or tool calls, sent as a completion or as an SSE stream,
  whichever the client asked for. Tool-call arguments given as a ``str`` are sent verbatim
  (invalid JSON included), a ``dict`` is JSON-encoded.
- :class:`RateLimited`: HTTP 429 with ``Retry-After``.
- :class:`ServerError`: HTTP 5xx (or any status) in OpenAI's error shape.
- :class:`ContextTooLong`: HTTP 400 with code ``context_length_exceeded``, like OpenAI.
- :class:`Slow`: another outcome delivered after a delay (and optionally a delay between
  stream chunks); the delay ends early when the client hangs up.
- :class:`CutStream`: a reply whose stream (or body) stops after some chunks, the connection
  closed mid-way.
- :class:`MalformedBody`: HTTP 200 whose body is not a chat completion (broken JSON, or JSON of
  the wrong shape), as a misbehaving proxy or server answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeAlias

import msgspec

from agents.scripted.protocol import ChatRequest, EmbeddingRequest

__all__ = (
    "OUTCOME_TYPES",
    "ContextTooLong",
    "CutStream",
    "EmbeddingsPolicy",
    "Fault",
    "FinishReason",
    "MalformedBody",
    "Outcome",
    "Policy",
    "RateLimited",
    "Reply",
    "ScriptedToolCall",
    "ServerError",
    "Slow",
    "Usage",
)

FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter"]


class ScriptedToolCall(msgspec.Struct, frozen=True):
    """One tool call of a reply.

    Attributes:
        name: the function name.
        arguments: a mapping (JSON-encoded on the wire) or a string sent verbatim.
        id: the call id; a fresh ``call_…`` id when ``None``.
    """

    name: str
    arguments: str | dict[str, Any] = msgspec.field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        """The arguments as sent on the wire."""
        if isinstance(self.arguments, str):
            return self.arguments
        return msgspec.json.encode(self.arguments).decode()


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Token usage reported for a reply (overrides the server's estimate)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """A successful answer of the model.

    Attributes:
        content: the assistant text (a MemGPT agent's inner thoughts, a letta_v1 agent's
            reply), or ``None``.
        tool_calls: the tool calls, in order.
        reasoning: native reasoning, sent as ``reasoning_content`` (as vLLM and DeepSeek do),
            streamed before the content; ``None`` sends no such field.
        finish_reason: defaults to ``"tool_calls"`` when there are tool calls, else ``"stop"``.
        usage: reported usage; by default estimated from the request and the reply.
    """

    content: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    reasoning: str | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None

    @property
    def effective_finish_reason(self) -> FinishReason:
        """The finish reason sent on the wire."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


class RateLimited(msgspec.Struct, frozen=True):
    """HTTP 429 with ``Retry-After`` (whole seconds, rounded up) and ``retry-after-ms``.

    ``headers`` are sent verbatim and replace those of the same name: a server's odd
    ``Retry-After`` (``"-1"``, ``"nan"``, an HTTP date) is ``headers=(("retry-after-ms",
    "nan"),)``.
    """

    retry_after: float = 1.0
    message: str = "Rate limit reached for requests (scripted). Please try again later."
    headers: tuple[tuple[str, str], ...] = ()


class ServerError(msgspec.Struct, frozen=True):
    """An HTTP error in OpenAI's shape; 500 by default.

    Attributes:
        status: the HTTP status.
        message: ``error.message`` of the body.
        type: ``error.type`` of the body.
        code: ``error.code`` of the body.
        retry_after: seconds for a ``Retry-After`` header (e.g. a 503 while overloaded).
        headers: more response headers, sent verbatim (replacing those of the same name).
    """

    status: int = 500
    message: str = "The server had an error while processing your request (scripted)."
    type: str = "server_error"
    code: str | None = None
    retry_after: float | None = None
    headers: tuple[tuple[str, str], ...] = ()


class ContextTooLong(msgspec.Struct, frozen=True):
    """HTTP 400 ``context_length_exceeded``, as OpenAI answers an oversized prompt.

    Attributes:
        message: the error message; by default OpenAI's wording with the model's window and
            the request's estimated tokens.
    """

    message: str | None = None


DEFAULT_MALFORMED_BODY = b'{"id": "chatcmpl-scripted", "choices": [{"message": {"content": "cut'
"""A completion body that stops in the middle of a string: not JSON at all."""


class MalformedBody(msgspec.Struct, frozen=True):
    """HTTP 200 with ``body`` sent verbatim (``application/json``, or one SSE ``data:`` frame
    when the client streams) instead of a chat completion.

    Attributes:
        body: the bytes to send; by default a completion cut inside a string.
    """

    body: bytes = DEFAULT_MALFORMED_BODY


class Slow(msgspec.Struct, frozen=True):
    """Deliver ``then`` after ``seconds``; streams also wait ``chunk_delay`` between chunks.

    The wait ends early when the client disconnects (the request then counts as abandoned).
    """

    seconds: float
    then: Reply | RateLimited | ServerError | ContextTooLong | CutStream | MalformedBody
    chunk_delay: float = 0.0


class CutStream(msgspec.Struct, frozen=True):
    """Send ``after_chunks`` chunks of ``reply`` then drop the connection.

    For a streaming request the chunks are SSE frames (the role frame counts as one); for a
    non-streaming one, the response body is cut after ``after_chunks`` bytes.
    """

    after_chunks: int
    reply: Reply


Fault: TypeAlias = RateLimited | ServerError | ContextTooLong | Slow | CutStream | MalformedBody
"""Any injected failure or delay."""

Outcome: TypeAlias = Reply | Fault
"""What a policy returns for one request."""

OUTCOME_TYPES = (Reply, RateLimited, ServerError, ContextTooLong, Slow, CutStream, MalformedBody)
"""The classes of an :data:`Outcome`, for ``isinstance``."""

Policy: TypeAlias = Callable[[ChatRequest], Outcome | Awaitable[Outcome]]
"""Decides each chat completion: a sync or async callable from request to outcome."""

EmbeddingsPolicy: TypeAlias = Callable[
    [EmbeddingRequest],
    list[list[float]] | Fault | Awaitable[list[list[float]] | Fault | None] | None,
]
"""Optional hook for embeddings: vectors, a fault, or ``None`` for the default vectors."""
