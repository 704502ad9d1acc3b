"""A streamed chat completion (``stream=True``), handed on piece by piece and assembled into
the same :class:`~agents._completion.LLMResponse` a plain completion gives.

:func:`stream_completion` makes one attempt; :class:`agents.llm.LLMClient` wraps it in the same
retries, timeouts and error classification as a plain call. A stream that breaks mid-way (the
connection drops, a chunk is not JSON, it ends with no ``finish_reason``) fails the attempt as a
whole and the next attempt starts from the first token: the :class:`DeltaSink` is told with
:meth:`DeltaSink.restart`, and it is the sink's business not to show a client twice what it
already showed (see :mod:`agents._deltas`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from agents._completion import LLMResponse, Unparsable
from storage.records import ToolCall

if TYPE_CHECKING:  # loaded with the first model call (agents.llm), not on import
    import openai

__all__ = ("CallDelta", "DeltaSink", "stream_completion")

CallDelta = tuple[int, str | None, str]
"""A piece of a tool call: its index in the answer, its name once known, an arguments piece."""


class DeltaSink(Protocol):
    """Where the pieces of a streamed answer go as they arrive."""

    def restart(self) -> None:
        """A new attempt starts: what comes next replaces what earlier attempts produced."""

    async def chunk(self, content: str, calls: Sequence[CallDelta], reasoning: str = "") -> None:
        """One chunk of the answer: a piece of its text, pieces of its tool calls, and a piece
        of its native reasoning (``reasoning_content``; empty from most servers)."""


class _Call:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # some servers send content parts
        return "".join(str(p.get("text") or "") if isinstance(p, dict) else str(p) for p in value)
    return str(value)


def _count(usage: Mapping[str, Any], name: str) -> int:
    try:
        return int(usage.get(name) or 0)
    except (TypeError, ValueError):
        return 0


async def stream_completion(sdk: openai.AsyncOpenAI, body: bytes, sink: DeltaSink) -> LLMResponse:
    """One streamed completion of ``body`` (a chat request's JSON with ``stream`` set).

    Raises:
        Unparsable: a chunk is not a completion chunk, or the stream ended unfinished.
        openai.APIError: what the SDK raises for HTTP errors and dropped connections.
    """
    import openai  # already loaded by the caller's client; a name lookup here

    # Chunks come back as plain dicts: the typed chunk models would cost more than they give.
    stream = await sdk.post(
        "/chat/completions",
        content=body,
        cast_to=object,
        stream=True,
        stream_cls=openai.AsyncStream[object],
        options={"headers": {"Content-Type": "application/json"}},
    )
    answer = _Answer()
    try:
        async for chunk in stream:
            try:
                text, pieces, reasoning = answer.add(chunk)
            except (TypeError, ValueError, AttributeError) as exc:
                raise Unparsable(f"a stream chunk that is not a completion chunk: {exc}") from exc
            if text or pieces or reasoning:
                await sink.chunk(text, pieces, reasoning)
    except ValueError as exc:  # a data line that is not JSON (the SDK decodes it)
        raise Unparsable(f"a stream chunk that is not JSON: {exc}") from exc
    finally:
        await stream.close()
    return answer.response()


class _Answer:
    """The answer so far, chunk by chunk."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, _Call] = {}
        self.usage: Mapping[str, Any] = {}
        self.finish: str | None = None

    def add(self, chunk: Any) -> tuple[str, list[CallDelta], str]:
        """Take in one chunk; its text, tool-call pieces and reasoning."""
        if not isinstance(chunk, dict):
            raise TypeError(f"not an object: {str(chunk)[:120]!r}")
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else None
        if choice is None:
            return "", [], ""
        delta = choice.get("delta") or {}
        text = _text(delta.get("content"))
        reasoning = _text(delta.get("reasoning_content") or delta.get("reasoning"))
        pieces: list[CallDelta] = []
        for part in delta.get("tool_calls") or ():
            index = int(part.get("index") or 0)
            call = self.calls.setdefault(index, _Call())
            function = part.get("function") or {}
            call.id = call.id or part.get("id")
            # Some servers repeat the name in every delta: it is set once, not glued.
            call.name = call.name or function.get("name")
            piece = function.get("arguments") or ""
            if not isinstance(piece, str):
                piece = json.dumps(piece)
            call.arguments.append(piece)
            pieces.append((index, call.name, piece))
        self.content.append(text)
        self.reasoning.append(reasoning)
        if choice.get("finish_reason"):
            self.finish = str(choice["finish_reason"])
        return text, pieces, reasoning

    def response(self) -> LLMResponse:
        """The whole answer.

        Raises:
            Unparsable: the stream ended before the model finished.
        """
        finish, calls, usage = self.finish, self.calls, self.usage
        if finish is None:
            raise Unparsable("the stream ended before the model finished (no finish_reason)")
        return LLMResponse(
            content="".join(self.content),
            tool_calls=[
                ToolCall(
                    id=str(call.id or f"call_{index}"),
                    name=str(call.name or ""),
                    arguments="".join(call.arguments),
                )
                for index, call in sorted(calls.items())
            ],
            prompt_tokens=_count(usage, "prompt_tokens"),
            completion_tokens=_count(usage, "completion_tokens"),
            finish_reason=finish,
            reasoning="".join(self.reasoning),
        )
