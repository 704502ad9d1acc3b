"""What the scripted model receives: OpenAI chat and embedding requests as typed structs.

Only the fields a policy needs are typed; unknown fields are ignored when decoding and kept
in :attr:`ChatRequest.raw_json`. :class:`ChatRequest` carries small inspection helpers
(``last_user_text``, ``last_tool_result``, ``tool_names``, ``system_prompt``…) so that
rule-based policies stay short.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

__all__ = (
    "ChatMessage",
    "ChatRequest",
    "ContentPart",
    "EmbeddingRequest",
    "FunctionCall",
    "FunctionSpec",
    "MessageToolCall",
    "StreamOptions",
    "ToolResult",
    "ToolSpec",
    "estimate_text_tokens",
    "estimate_tokens",
)

CHARS_PER_TOKEN = 4
_PER_MESSAGE = 3
_encoder = msgspec.json.Encoder()


class ContentPart(msgspec.Struct, frozen=True, kw_only=True):
    """One part of a multi-part message content; only text parts carry text."""

    type: str = "text"
    text: str | None = None


class FunctionCall(msgspec.Struct, frozen=True, kw_only=True):
    """The function of a tool call in the history: its name and JSON arguments text."""

    name: str
    arguments: str = ""


class MessageToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """A tool call made by the assistant earlier in the conversation."""

    id: str
    type: str = "function"
    function: FunctionCall


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of the conversation sent to the model."""

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        """The content as plain text: text parts joined, ``""`` when there is none."""
        content = self.content
        if content is None:
            return ""
        if isinstance(content, str):
            return content
        return "".join(part.text or "" for part in content)


class FunctionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A function offered to the model: name, description and JSON schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A tool offered to the model (only ``type="function"`` exists today)."""

    type: str = "function"
    function: FunctionSpec


class StreamOptions(msgspec.Struct, frozen=True, kw_only=True):
    """``stream_options`` of a streaming request."""

    include_usage: bool = False


class ToolResult(msgspec.Struct, frozen=True, kw_only=True):
    """A tool's result in the history, with the name of the tool that produced it."""

    name: str | None
    content: str
    tool_call_id: str | None


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A ``POST /v1/chat/completions`` body.

    Attributes:
        raw_json: the request body exactly as received (not part of the wire format).
    """

    model: str = ""
    messages: list[ChatMessage] = msgspec.field(default_factory=list)
    tools: list[ToolSpec] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    user: str | None = None
    raw_json: bytes = b""

    @property
    def raw(self) -> dict[str, Any]:
        """The body decoded as plain JSON, with every field the client sent."""
        decoded: dict[str, Any] = msgspec.json.decode(self.raw_json)
        return decoded

    @property
    def include_usage(self) -> bool:
        """Whether a streaming client asked for the final usage chunk."""
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def tool_names(self) -> frozenset[str]:
        """Names of the tools offered in this request."""
        return frozenset(tool.function.name for tool in self.tools or ())

    def offers(self, name: str) -> bool:
        """Whether the tool ``name`` is offered in this request."""
        return any(tool.function.name == name for tool in self.tools or ())

    @property
    def system_prompt(self) -> str:
        """Text of the first system (or developer) message; ``""`` when there is none."""
        for message in self.messages:
            if message.role in ("system", "developer"):
                return message.text
        return ""

    @property
    def last_message(self) -> ChatMessage | None:
        """The last message of the conversation."""
        return self.messages[-1] if self.messages else None

    @property
    def last_role(self) -> str | None:
        """Role of the last message (``"user"``, ``"tool"``…)."""
        return self.messages[-1].role if self.messages else None

    @property
    def last_user_text(self) -> str | None:
        """Text of the last user message, ``None`` when there is none.

        A Letta-style packed user message (a JSON object ``{"type": "user_message",
        "message": ...}``) is unwrapped to its ``message``.
        """
        for message in reversed(self.messages):
            if message.role == "user":
                return _unwrap_packed(message.text)
        return None

    @property
    def last_tool_result(self) -> ToolResult | None:
        """The last tool result, named after the assistant tool call it answers."""
        for index in range(len(self.messages) - 1, -1, -1):
            message = self.messages[index]
            if message.role == "tool":
                name = message.name or self._tool_call_name(message.tool_call_id, index)
                return ToolResult(
                    name=name, content=message.text, tool_call_id=message.tool_call_id
                )
        return None

    def since_last_user(self) -> list[ChatMessage]:
        """The messages after the last user message (all of them when there is none)."""
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == "user":
                return self.messages[index + 1 :]
        return list(self.messages)

    def tool_calls_made(self) -> list[MessageToolCall]:
        """Every assistant tool call in the history, oldest first."""
        return [
            call
            for message in self.messages
            if message.role == "assistant"
            for call in message.tool_calls or ()
        ]

    def _tool_call_name(self, tool_call_id: str | None, before: int) -> str | None:
        for message in reversed(self.messages[:before]):
            for call in message.tool_calls or ():
                if call.id == tool_call_id:
                    return call.function.name
        return None


class EmbeddingRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A ``POST /v1/embeddings`` body; token-id inputs are kept as their decimal text."""

    model: str = ""
    input: str | list[str | int | list[int]]
    dimensions: int | None = None
    encoding_format: str = "float"
    user: str | None = None

    @property
    def texts(self) -> list[str]:
        """The inputs as a list of texts."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if value and all(isinstance(item, int) for item in value):
            return [" ".join(map(str, value))]
        texts: list[str] = []
        for item in value:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, int):
                texts.append(str(item))
            else:
                texts.append(" ".join(map(str, item)))
        return texts


def estimate_text_tokens(text: str) -> int:
    """The deterministic token estimate of a text: about four characters per token."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_tokens(request: ChatRequest) -> int:
    """The prompt tokens of a request: serialized messages and tool schemas, 4 chars/token.

    Deliberately simple and deterministic, so tests can compute the same number.
    """
    chars = len(_encoder.encode(request.messages))
    if request.tools:
        chars += len(_encoder.encode(request.tools))
    return math.ceil(chars / CHARS_PER_TOKEN) + _PER_MESSAGE * len(request.messages)


def _unwrap_packed(text: str) -> str:
    if not text.startswith("{"):
        return text
    try:
        packed = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text
    if isinstance(packed, dict) and packed.get("type") == "user_message":
        message = packed.get("message")
        if isinstance(message, str):
            return message
    return text
