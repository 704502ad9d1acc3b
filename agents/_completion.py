"""Reading a chat completion's body: leniently where servers differ, strictly where it matters.

A body that is not a chat completion at all (broken JSON, no choices) raises
:class:`Unparsable`, which the client retries like a transient failure.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from storage.errors import RuntimeFailure
from storage.records import ToolCall

__all__ = ("LLMResponse", "Unparsable", "parse")


class LLMResponse(msgspec.Struct, kw_only=True):
    """One completion: its text, tool calls, native reasoning (``reasoning_content``, from
    the servers that send it) and token usage."""

    content: str
    tool_calls: list[ToolCall]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None
    reasoning: str = ""


class Unparsable(RuntimeFailure):
    """A 200 answer that is not a chat completion (retried, then :class:`LLMInvalidResponse`)."""


class _Function(msgspec.Struct):
    name: Any = None
    arguments: Any = None


class _Call(msgspec.Struct):
    id: Any = None
    function: _Function | None = None


class _Message(msgspec.Struct):
    content: Any = None
    tool_calls: list[_Call] | None = None
    reasoning_content: Any = None  # vLLM, DeepSeek, LiteLLM
    reasoning: Any = None  # OpenRouter, Ollama


class _Choice(msgspec.Struct):
    message: _Message | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: Any = 0
    completion_tokens: Any = 0


class _Completion(msgspec.Struct):
    """The fields of a chat completion we read; lenient where servers differ."""

    choices: list[_Choice] | None = None
    usage: _Usage | None = None


_completion_decoder = msgspec.json.Decoder(_Completion)


def _text_of(content: Any) -> str:
    """Message content: a string, or (some servers) a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(
            str(part.get("text") or "") if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _excerpt(body: bytes, limit: int = 120) -> str:
    """The start of a body, for an error message."""
    shown = body[:limit].decode(errors="replace")
    return repr(shown + ("…" if len(body) > limit else ""))


def parse(body: bytes) -> LLMResponse:
    try:
        completion = _completion_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Unparsable(f"{exc} (in {_excerpt(body)})") from exc
    choice = completion.choices[0] if completion.choices else None
    if choice is None or choice.message is None:
        raise Unparsable(f"a completion with no choices (in {_excerpt(body)})")
    calls: list[ToolCall] = []
    for index, call in enumerate(choice.message.tool_calls or []):
        function = call.function
        if function is None:
            continue
        arguments = function.arguments
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)  # some servers send an object, not a JSON string
        calls.append(
            ToolCall(
                id=str(call.id or f"call_{index}"),
                name=str(function.name or ""),
                arguments=arguments or "",
            )
        )
    usage = completion.usage or _Usage()
    return LLMResponse(
        content=_text_of(choice.message.content),
        tool_calls=calls,
        prompt_tokens=_count(usage.prompt_tokens),
        completion_tokens=_count(usage.completion_tokens),
        finish_reason=choice.finish_reason,
        reasoning=_text_of(choice.message.reasoning_content or choice.message.reasoning),
    )
