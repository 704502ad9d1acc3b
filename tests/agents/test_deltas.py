"""Token deltas: the reply read out of streamed tool-call JSON, and what a retry may show."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from agents._deltas import JsonStringField, TokenStream
from agents.letta_messages import AssistantMessage, ReasoningMessage, event_decoder
from bus.run_events import read_live

ARGUMENTS = json.dumps(
    {
        "inner_thoughts": "say 'message' but not this",
        "nested": {"message": "not this either", "list": ["message", "}"]},
        "message": 'Line one\nsaid "hi" \\ caf\u00e9 \U0001f600 done',
        "request_heartbeat": False,
    }
)


def _fed(text: str, size: int) -> str:
    field = JsonStringField("message")
    return "".join(field.feed(text[i : i + size]) for i in range(0, len(text), size))


def test_the_field_is_read_whatever_the_pieces() -> None:
    expected = json.loads(ARGUMENTS)["message"]
    for size in (1, 2, 3, 5, 7, 16, len(ARGUMENTS)):
        assert _fed(ARGUMENTS, size) == expected, size
    assert _fed(json.dumps({"message": "x" * 50}), 1) == "x" * 50
    assert _fed(json.dumps({"message": 42, "other": "no"}), 1) == ""
    assert _fed(json.dumps({"messages": "no", "x": {"message": "no"}}), 3) == ""


async def _deltas(redis: aioredis.Redis) -> list[tuple[str, str, str]]:
    entries, _ended = await read_live(redis, "agent-1", "run-1")
    out: list[tuple[str, str, str]] = []
    for entry in entries:
        event = event_decoder.decode(entry.data)
        assert isinstance(event, ReasoningMessage | AssistantMessage)
        text = event.reasoning if isinstance(event, ReasoningMessage) else event.content
        out.append((event.id, entry.part or "", text))
    return out


def _stream(redis: aioredis.Redis) -> TokenStream:
    return TokenStream(redis, "agent-1", "run-1", "step-1", ttl_s=60, clock=lambda: 0.0)


async def test_a_retry_shows_only_what_was_not_shown(redis_client: aioredis.Redis) -> None:
    stream = _stream(redis_client)
    stream.restart()
    await stream.chunk("  Think", [])
    await stream.chunk("ing.", [(0, "send_message", '{"message": "Hel')])
    stream.restart()  # the stream broke; the retry starts over with the same text
    await stream.chunk("Thinking.", [(0, "send_message", '{"message": "Hello')])
    await stream.chunk("", [(0, None, ' you"}')])
    stream.finish()
    first = stream.message_id
    assert await _deltas(redis_client) == [
        (first, "r", "Think"),
        (first, "r", "ing."),
        (first, "a0", "Hel"),
        (first, "a0", "lo"),
        (first, "a0", " you"),
    ]
    assert await redis_client.ttl("mg:{agent-1}:events:run-1") > 0


async def test_a_retry_that_says_otherwise_takes_a_new_id(redis_client: aioredis.Redis) -> None:
    stream = _stream(redis_client)
    stream.restart()
    await stream.chunk("First try", [])
    first = stream.message_id
    stream.restart()
    await stream.chunk("Second", [])
    second = stream.message_id
    assert second != first
    await stream.chunk(" try", [])
    stream.finish()
    assert stream.message_id == second
    assert await _deltas(redis_client) == [
        (first, "r", "First try"),
        (second, "r", "Second"),
        (second, "r", " try"),
    ]
    # An answer that ends shorter than what was shown commits under yet another id.
    stream.restart()
    await stream.chunk("Second", [])
    stream.finish()
    assert stream.message_id not in (first, second)


async def test_inner_thoughts_stream_as_reasoning_when_there_is_no_text(
    redis_client: aioredis.Redis,
) -> None:
    stream = _stream(redis_client)
    stream.restart()
    arguments = json.dumps({"inner_thoughts": "Bob is back.", "message": "Hi Bob"})
    for start in range(0, len(arguments), 10):
        name = "send_message" if start == 0 else None
        await stream.chunk("", [(0, name, arguments[start : start + 10])])
    stream.finish()
    shown = await _deltas(redis_client)
    assert "".join(text for _id, part, text in shown if part == "r") == "Bob is back."
    assert "".join(text for _id, part, text in shown if part == "a0") == "Hi Bob"
    assert {message_id for message_id, _part, _text in shown} == {stream.message_id}
