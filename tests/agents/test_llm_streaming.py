"""Streamed completions (a delta sink given): the same answer as a plain call, handed on chunk
by chunk, through the same retries and error classification."""

from __future__ import annotations

import pytest

from agents.llm import LLMClient, LLMInvalidResponse, LLMSettings, LLMUnavailable
from agents.scripted import (
    CutStream,
    MalformedBody,
    ScriptedModel,
    ServerError,
    always,
    faults_then,
)
from tests.agents._streams import ANSWER, HELLO, Sink


def _client(scripted_model: ScriptedModel) -> LLMClient:
    settings = LLMSettings(
        base_url=scripted_model.base_url,
        api_key="test",
        timeout_s=10.0,
        max_retries=2,
        backoff_base_s=0.01,
        backoff_cap_s=0.05,
    )
    return LLMClient(settings)


async def test_a_streamed_answer_equals_the_plain_one(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = always(ANSWER)
    client, sink = _client(scripted_model), Sink()
    try:
        plain = await client.chat("scripted", HELLO)
        streamed = await client.chat("scripted", HELLO, sink=sink)
    finally:
        await client.aclose()
    assert streamed == plain
    assert [r.stream for r in scripted_model.requests] == [False, True]
    assert scripted_model.requests[1].include_usage
    (chunks,) = sink.attempts
    assert len(chunks) > 4
    assert "".join(text for text, _ in chunks) == plain.content
    pieces = [piece for _, calls in chunks for piece in calls]
    assert {name for _, name, _ in pieces} == {"send_message", "core_memory_append"}
    for index, tool_call in enumerate(plain.tool_calls):
        assert "".join(arg for i, _, arg in pieces if i == index) == tool_call.arguments


async def test_a_broken_stream_is_retried_whole(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = faults_then(
        CutStream(after_chunks=6, reply=ANSWER), ServerError(), then=ANSWER
    )
    client, sink = _client(scripted_model), Sink()
    try:
        response = await client.chat("scripted", HELLO, sink=sink)
    finally:
        await client.aclose()
    assert response.tool_calls[0].arguments == '{"message":"Hi Bob, nice to meet you"}'
    assert len(scripted_model.requests) == 3
    assert [len(a) > 0 for a in sink.attempts] == [True, False, True]


@pytest.mark.parametrize(
    "fault",
    [
        MalformedBody(b"not json"),
        MalformedBody(b"{}"),
        MalformedBody(b'{"choices": [{"delta": {"tool_calls": ["not a call"]}}]}'),
        MalformedBody(b'{"choices": [{"delta": "no"}]}'),
    ],
)
async def test_a_stream_that_is_not_a_completion_is_invalid(
    scripted_model: ScriptedModel, fault: MalformedBody
) -> None:
    scripted_model.policy = always(fault)
    client = _client(scripted_model)
    try:
        with pytest.raises(LLMInvalidResponse, match="stream"):
            await client.chat("scripted", HELLO, sink=Sink())
    finally:
        await client.aclose()
    assert len(scripted_model.requests) == 3


async def test_a_stream_that_keeps_breaking_is_unavailable(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = always(CutStream(after_chunks=3, reply=ANSWER))
    client = _client(scripted_model)
    try:
        with pytest.raises(LLMUnavailable):
            await client.chat("scripted", HELLO, sink=Sink())
    finally:
        await client.aclose()
