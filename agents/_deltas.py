"""Token deltas: what a streaming step shows a live client before the step commits.

A :class:`TokenStream` is the :class:`~agents._streaming.DeltaSink` of one step's model call.
It turns the model's chunks into pieces of Letta messages, all carrying the id the step's
assistant message will be committed under. For a MemGPT agent the text (``content``), or when
there is none the first tool call's ``inner_thoughts`` argument, or else the model's native
reasoning (``reasoning_content``), becomes ``reasoning_message`` pieces (part ``r``), and the
``message`` argument of each ``send_message`` call, read out of the streamed argument JSON as
it arrives (:class:`JsonStringField`), ``assistant_message`` pieces (parts ``a0``, ``a1``…).
For a letta_v1 agent (``text_is_reply``) the text is the reply (part ``a0``) and the native
reasoning the ``reasoning_message``. Pieces go to
the run's event stream as deltas (:func:`bus.run_events.publish_deltas`), outside the step's
exactly-once commit; the committed message is the whole one, once.

A stream that breaks is retried as a whole (:class:`agents.llm.LLMClient`), and the client must
not see the same text twice. So the stream remembers what it published per part: a retry's
text is published only past that point, and only while it agrees with it. When a retry says
something else (real models are not deterministic), what was shown cannot be taken back: the
stream takes a fresh message id and publishes the retry from its start under it, so that the
abandoned half stays a message of its own and is never glued to the answer. A step re-run by
another worker after a crash likewise publishes under a fresh id. A live reader (the SSE
endpoint) then sends of each committed message only what its deltas did not already show.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import msgspec
import redis.asyncio as aioredis

from agents._streaming import CallDelta
from agents.letta_messages import (
    REASONING_PART,
    AssistantMessage,
    ReasoningMessage,
    event_encoder,
    iso,
    reply_part,
)
from bus.run_events import publish_deltas
from storage.records import new_id

__all__ = ("JsonStringField", "TokenStream")

_REPLY_TOOL = "send_message"
_THOUGHTS_ARG = "inner_thoughts"
_HEX = frozenset("0123456789abcdefABCDEF")


class JsonStringField:
    """The value of one top-level string field of a JSON object, as its text arrives.

    ``feed`` takes the next piece of the object's text and returns the field's newly decoded
    characters. Escapes split across pieces wait for their end; a value that is not a string,
    or a field that is absent, yields nothing.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._depth = 0
        self._in_string = False
        self._is_key = False
        self._capturing = False
        self._after_colon = False
        self._key: list[str] = []
        self._last_key: str | None = None
        self._escape = ""
        self.done = False

    def feed(self, piece: str) -> str:
        out: list[str] = []
        for char in piece:
            if self.done:
                break
            if self._in_string:
                self._string_char(char, out)
            elif char == '"':
                self._in_string = True
                self._is_key = self._depth == 1 and not self._after_colon
                self._capturing = (
                    self._depth == 1 and self._after_colon and self._last_key == self.name
                )
                self._key = []
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
            elif self._depth == 1 and char == ":":
                self._after_colon = True
            elif self._depth == 1 and char == ",":
                self._after_colon = False
        return "".join(out)

    def _string_char(self, char: str, out: list[str]) -> None:
        if self._escape:
            self._escape += char
            text = self._decode_escape()
            if text is None:
                return
            self._escape = ""
        elif char == "\\":
            self._escape = char
            return
        elif char == '"':
            self._in_string = False
            if self._is_key:
                self._last_key = "".join(self._key)
            elif self._depth == 1:
                self._after_colon = False
                self.done = self._capturing
            return
        else:
            text = char
        if self._capturing:
            out.append(text)
        elif self._is_key:
            self._key.append(text)

    def _decode_escape(self) -> str | None:
        """The escape's text once complete (``None`` while more characters are due)."""
        escape = self._escape
        if escape[1] != "u":
            if len(escape) < 2:
                return None
            try:
                return str(json.loads(f'"{escape}"'))
            except ValueError:
                return "\ufffd"  # not a JSON escape: the model's JSON is broken anyway
        if len(escape) < 6:
            return None if all(c in _HEX for c in escape[2:]) else "\ufffd"
        high = int(escape[2:6], 16) if all(c in _HEX for c in escape[2:6]) else -1
        if 0xD800 <= high < 0xDC00:  # a surrogate pair: wait for the low half
            if len(escape) < 12:
                return None
            try:
                return str(json.loads(f'"{escape}"'))
            except ValueError:
                return "\ufffd"
        return chr(high) if high >= 0 else "\ufffd"


class TokenStream:
    """The delta sink of one step: publishes pieces of the step's assistant message."""

    def __init__(
        self,
        redis: aioredis.Redis,
        agent_id: str,
        run_id: str,
        step_id: str,
        *,
        ttl_s: int,
        clock: Callable[[], float],
        text_is_reply: bool = False,
    ) -> None:
        self.redis = redis
        self.agent_id = agent_id
        self.run_id = run_id
        self.step_id = step_id
        self.ttl_s = ttl_s
        self.clock = clock
        self.text_is_reply = text_is_reply
        self.message_id = new_id("message")
        self.published: dict[str, str] = {}  # what clients were shown, per part
        self._sent_any = False
        self.restart()

    def restart(self) -> None:
        self._content = ""
        self._reasoning = ""
        self._current: dict[str, str] = {}
        self._fields: dict[int, JsonStringField] = {}
        self._parts: dict[int, str] = {}
        self._first_call: int | None = None
        self._thoughts = JsonStringField(_THOUGHTS_ARG)
        self._thought = ""

    async def chunk(self, content: str, calls: Sequence[CallDelta], reasoning: str = "") -> None:
        self._content += content
        self._reasoning += reasoning
        if self.text_is_reply:  # letta_v1: tool calls show when committed (no send_message)
            if self._reasoning.strip():
                self._current[REASONING_PART] = self._reasoning
            if self._content.strip():
                self._current[reply_part(0)] = self._content
            await self._publish()
            return
        for index, name, piece in calls:
            if self._first_call is None:
                self._first_call = index
            if index == self._first_call:
                self._thought += self._thoughts.feed(piece)
            field = self._fields.get(index)
            if field is None:
                if name != _REPLY_TOOL:
                    continue
                field = self._fields[index] = JsonStringField("message")
                self._parts[index] = reply_part(len(self._parts))
            text = field.feed(piece)
            if text:
                part = self._parts[index]
                self._current[part] = self._current.get(part, "") + text
        # The committed reasoning is the text, stripped, or else the first call's
        # inner_thoughts argument as it is (see agents.letta_messages.expand).
        if self._content.strip():
            self._current[REASONING_PART] = self._content.lstrip()
        elif self._thought.strip():
            self._current[REASONING_PART] = self._thought
        elif self._reasoning.strip():
            self._current[REASONING_PART] = self._reasoning
        await self._publish()

    def finish(self) -> None:
        """The attempt that answered has ended: if it said less than was shown, or something
        else, its message takes a fresh id (the shown text stays a message of its own)."""
        if any(
            not self._current.get(part, "").startswith(shown)
            for part, shown in self.published.items()
        ):
            self.abandon()

    def abandon(self) -> None:
        """Publish from now on under a fresh id: the step commits a message other than the
        one shown so far (a retry said something else, another worker's answer won)."""
        self.message_id = new_id("message")
        self.published = {}

    async def _publish(self) -> None:
        pieces = self._pieces()
        if pieces is None:  # the retry disagrees with what was shown
            self.abandon()
            pieces = self._pieces() or []
        if not pieces:
            return
        date = iso(self.clock())
        encoded: list[tuple[str, bytes]] = []
        for part, text in pieces:
            common = {"id": self.message_id, "date": date, "run_id": self.run_id}
            event: msgspec.Struct
            if part == REASONING_PART:
                event = ReasoningMessage(reasoning=text, step_id=self.step_id, **common)
            else:
                event = AssistantMessage(content=text, step_id=self.step_id, **common)
            encoded.append((part, event_encoder.encode(event)))
        ttl = None if self._sent_any else self.ttl_s
        await publish_deltas(self.redis, self.agent_id, self.run_id, encoded, ttl_s=ttl)
        self._sent_any = True

    def _pieces(self) -> list[tuple[str, str]] | None:
        """What to publish now per part; ``None`` when the text disagrees with what was shown."""
        pieces: list[tuple[str, str]] = []
        for part, text in self._current.items():
            shown = self.published.get(part, "")
            if len(text) <= len(shown):
                if not shown.startswith(text):
                    return None
                continue
            if not text.startswith(shown):
                return None
            pieces.append((part, text[len(shown) :]))
        for part, text in self._current.items():
            if len(text) > len(self.published.get(part, "")):
                self.published[part] = text
        return pieces
