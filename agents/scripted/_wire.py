"""OpenAI's response shapes, encoded with msgspec: completions, SSE chunks, errors, embeddings."""

from __future__ import annotations

import base64
import math
import secrets
import struct
import time
from collections.abc import Iterator, Mapping, Sequence

import msgspec
from msgspec import UNSET, UnsetType

from agents.scripted.protocol import ChatRequest, estimate_text_tokens
from agents.scripted.replies import Reply, Usage

__all__ = (
    "chat_completion",
    "context_length_message",
    "embeddings",
    "error",
    "model_list",
    "model_object_json",
    "new_id",
    "stream_frames",
)

OWNER = "memgrid-scripted"
_CREATED = 1_700_000_000
_CHUNK = "chat.completion.chunk"
DONE = b"data: [DONE]\n\n"


class _Function(msgspec.Struct):
    name: str
    arguments: str


class _ToolCall(msgspec.Struct):
    id: str
    function: _Function
    type: str = "function"


class _Message(msgspec.Struct, omit_defaults=True):
    role: str
    content: str | None
    refusal: None
    tool_calls: list[_ToolCall] | None = None
    reasoning_content: str | None = None


class _Choice(msgspec.Struct):
    index: int
    message: _Message
    logprobs: None
    finish_reason: str


class _Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class _Completion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[_Choice]
    usage: _Usage
    system_fingerprint: None = None
    object: str = "chat.completion"


class _FunctionDelta(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class _ToolCallDelta(msgspec.Struct, omit_defaults=True):
    index: int
    id: str | None = None
    type: str | None = None
    function: _FunctionDelta | None = None


class _Delta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None


class _ChunkChoice(msgspec.Struct):
    index: int
    delta: _Delta
    logprobs: None
    finish_reason: str | None


class _Chunk(msgspec.Struct, omit_defaults=True):
    id: str
    object: str
    created: int
    model: str
    system_fingerprint: None
    choices: list[_ChunkChoice]
    usage: _Usage | UnsetType | None = UNSET


class _ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _Error(msgspec.Struct):
    error: _ErrorDetail


class _Embedding(msgspec.Struct):
    index: int
    embedding: list[float] | str
    object: str = "embedding"


class _EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class _Embeddings(msgspec.Struct):
    data: list[_Embedding]
    model: str
    usage: _EmbeddingUsage
    object: str = "list"


class _Model(msgspec.Struct):
    id: str
    created: int
    context_window: int
    owned_by: str = OWNER
    object: str = "model"


class _ModelList(msgspec.Struct):
    data: list[_Model]
    object: str = "list"


_encode = msgspec.json.Encoder().encode


def new_id(prefix: str) -> str:
    """A fresh OpenAI-looking id such as ``chatcmpl-…`` or ``call_…``."""
    return prefix + secrets.token_hex(12)


def _usage(reply: Reply, prompt_tokens: int) -> _Usage:
    usage = reply.usage
    if usage is None:
        completion = len(reply.content or "") + sum(
            len(call.name) + len(call.arguments_json) for call in reply.tool_calls
        )
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=math.ceil(completion / 4))
    return _Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


def _call_ids(reply: Reply) -> list[str]:
    return [call.id or new_id("call_") for call in reply.tool_calls]


def chat_completion(request: ChatRequest, reply: Reply, prompt_tokens: int) -> bytes:
    """The JSON body of a non-streaming chat completion."""
    tool_calls = [
        _ToolCall(call_id, _Function(call.name, call.arguments_json))
        for call, call_id in zip(reply.tool_calls, _call_ids(reply), strict=True)
    ]
    message = _Message("assistant", reply.content, None, tool_calls or None, reply.reasoning)
    return _encode(
        _Completion(
            id=new_id("chatcmpl-"),
            created=int(time.time()),
            model=request.model,
            choices=[_Choice(0, message, None, reply.effective_finish_reason)],
            usage=_usage(reply, prompt_tokens),
        )
    )


def _pieces(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def stream_frames(
    request: ChatRequest, reply: Reply, prompt_tokens: int, chunk_chars: int = 16
) -> list[bytes]:
    """Every SSE frame of a streamed reply, ending with ``data: [DONE]``.

    Role first, then reasoning (``reasoning_content``) and content in ``chunk_chars`` pieces,
    then each tool call (id and name
    first, then argument fragments), the finish reason, the usage chunk when the client asked
    for it (``stream_options.include_usage``), and ``[DONE]``.
    """
    chunk_id = new_id("chatcmpl-")
    created = int(time.time())
    usage_field: _Usage | UnsetType | None = None if request.include_usage else UNSET

    def frame(delta: _Delta, finish: str | None = None) -> bytes:
        choices = [_ChunkChoice(0, delta, None, finish)]
        chunk = _Chunk(chunk_id, _CHUNK, created, request.model, None, choices, usage_field)
        return b"data: " + _encode(chunk) + b"\n\n"

    frames = [frame(_Delta(role="assistant", content=""))]
    reasoning = _pieces(reply.reasoning or "", chunk_chars)
    frames += [frame(_Delta(reasoning_content=piece)) for piece in reasoning]
    frames += [frame(_Delta(content=piece)) for piece in _pieces(reply.content or "", chunk_chars)]
    for index, (call, call_id) in enumerate(zip(reply.tool_calls, _call_ids(reply), strict=True)):
        head = _ToolCallDelta(index, call_id, "function", _FunctionDelta(call.name, ""))
        frames.append(frame(_Delta(tool_calls=[head])))
        for piece in _pieces(call.arguments_json, chunk_chars):
            part = _ToolCallDelta(index, function=_FunctionDelta(arguments=piece))
            frames.append(frame(_Delta(tool_calls=[part])))
    frames.append(frame(_Delta(), reply.effective_finish_reason))
    if request.include_usage:
        usage = _usage(reply, prompt_tokens)
        usage_chunk = _Chunk(chunk_id, _CHUNK, created, request.model, None, [], usage)
        frames.append(b"data: " + _encode(usage_chunk) + b"\n\n")
    frames.append(DONE)
    return frames


def error(message: str, type: str, code: str | None = None, param: str | None = None) -> bytes:
    """An error body in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return _encode(_Error(_ErrorDetail(message, type, param, code)))


def context_length_message(window: int, tokens: int) -> str:
    """OpenAI's wording of ``context_length_exceeded``."""
    return (
        f"This model's maximum context length is {window} tokens. However, your messages "
        f"resulted in {tokens} tokens. Please reduce the length of the messages."
    )


def embeddings(
    model: str, vectors: Sequence[Sequence[float]], texts: Sequence[str], encoding_format: str
) -> bytes:
    """The body of an embeddings response; ``base64`` packs little-endian float32."""
    data: list[_Embedding] = []
    for index, vector in enumerate(vectors):
        value: list[float] | str
        if encoding_format == "base64":
            packed = struct.pack(f"<{len(vector)}f", *vector)
            value = base64.b64encode(packed).decode()
        else:
            value = list(vector)
        data.append(_Embedding(index, value))
    tokens = sum(estimate_text_tokens(text) for text in texts)
    return _encode(_Embeddings(data, model, _EmbeddingUsage(tokens, tokens)))


def model_object_json(model_id: str, context_window: int) -> bytes:
    """The body of ``GET /v1/models/{id}`` (with a non-standard ``context_window``)."""
    return _encode(_Model(model_id, _CREATED, context_window))


def model_list(models: Mapping[str, int]) -> bytes:
    """The body of ``GET /v1/models``."""
    data = [_Model(name, _CREATED, window) for name, window in models.items()]
    return _encode(_ModelList(data))
