"""Injected faults as the openai SDK sees them: 429, 5xx, slow, malformed, cut streams."""

from __future__ import annotations

import json
import time

import anyio
import httpx2
import openai
import pytest

from agents.scripted import (
    CutStream,
    MalformedBody,
    RateLimited,
    ScriptedModel,
    ServerError,
    Slow,
    faults_then,
    malformed_tool_call,
    say,
    sequence,
    text,
)

MODEL = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "hello"}]


async def test_rate_limited_with_retry_after(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    scripted_model.policy = faults_then(RateLimited(retry_after=2.5), then=text("ok"))
    with pytest.raises(openai.RateLimitError) as raised:
        await scripted_client.chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
    error = raised.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "3"
    assert error.response.headers["retry-after-ms"] == "2500"
    assert error.code == "rate_limit_exceeded"
    done = await scripted_client.chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
    assert done.choices[0].message.content == "ok"


async def test_sdk_retries_honour_retry_after(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = faults_then(
        RateLimited(0.05), ServerError(503, retry_after=0.05), then=text("ok")
    )
    async with openai.AsyncOpenAI(
        base_url=scripted_model.base_url, api_key="x", max_retries=2
    ) as client:
        done = await client.chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
    assert done.choices[0].message.content == "ok"
    assert len(scripted_model.requests) == 3


async def test_server_error(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    scripted_model.policy = sequence(ServerError(), ServerError(502, "bad gateway", code="x"))
    with pytest.raises(openai.InternalServerError) as raised:
        await scripted_client.chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
    assert raised.value.status_code == 500
    assert raised.value.type == "server_error"
    with pytest.raises(openai.InternalServerError) as raised:
        await scripted_client.chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
    assert (raised.value.status_code, raised.value.code) == (502, "x")
    assert "bad gateway" in raised.value.message


async def test_slow_answer_hits_the_sdk_timeout(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    scripted_model.policy = sequence(Slow(30, say("late")), Slow(0.05, say("in time")))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await scripted_client.chat.completions.create(model=MODEL, messages=HELLO, timeout=0.3)  # type: ignore[arg-type]
    assert time.monotonic() - started < 5
    done = await scripted_client.chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
    assert done.choices[0].message.tool_calls is not None
    # The server noticed the first client hang up and stopped waiting for it.
    with anyio.fail_after(5):
        await scripted_model.wait_until(lambda: scripted_model.abandoned == 1)


async def test_malformed_tool_call_json_is_delivered_verbatim(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    scripted_model.policy = sequence(
        malformed_tool_call(), malformed_tool_call("x", "{not json}"), cycle=False
    )
    done = await scripted_client.chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
    (tool,) = done.choices[0].message.tool_calls or []
    assert tool.function.arguments == '{"message": "unterminated'
    with pytest.raises(json.JSONDecodeError):
        json.loads(tool.function.arguments)
    stream = await scripted_client.chat.completions.create(
        model=MODEL,
        messages=HELLO,  # type: ignore[arg-type]
        stream=True,
    )
    fragments = [
        d.function.arguments or ""
        async for c in stream
        for d in c.choices[0].delta.tool_calls or []
        if d.function
    ]
    assert "".join(fragments) == "{not json}"


async def test_stream_cut_midway_raises_in_the_sdk(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    scripted_model.policy = sequence(CutStream(3, say("a message long enough to need chunks")))
    stream = await scripted_client.chat.completions.create(
        model=MODEL,
        messages=HELLO,  # type: ignore[arg-type]
        stream=True,
    )
    received = []
    # The SDK does not wrap errors raised while iterating a stream.
    with pytest.raises((openai.APIConnectionError, httpx2.RemoteProtocolError)):  # noqa: PT012
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 3


async def test_non_stream_body_cut_midway(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    scripted_model.policy = sequence(CutStream(10, say("hello")), then=text("after"))
    with pytest.raises(openai.APIConnectionError):
        await scripted_client.chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
    done = await scripted_client.chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
    assert done.choices[0].message.content == "after"


async def test_slow_stream_chunks_arrive_spaced(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    scripted_model.policy = sequence(Slow(0, text("abcdefghijklmnopqrstuvwxyz"), chunk_delay=0.05))
    stream = await scripted_client.chat.completions.create(
        model=MODEL,
        messages=HELLO,  # type: ignore[arg-type]
        stream=True,
    )
    arrivals = [time.monotonic() async for _ in stream]
    # role, two content pieces, finish: three gaps of ~50 ms.
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] >= 0.12


async def test_shutdown_cuts_pending_slow_replies_short() -> None:
    model = ScriptedModel(sequence(Slow(60, say("never"))))
    await model.start()
    async with openai.AsyncOpenAI(base_url=model.base_url, api_key="x", max_retries=0) as client:
        outcome: list[BaseException] = []

        async def ask() -> None:
            try:
                await client.chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
            except openai.APIError as exc:
                outcome.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await model.wait_for_requests(1)
                await model.aclose()
    (error,) = outcome
    assert isinstance(error, openai.APIStatusError)
    assert error.status_code == 503


async def test_malformed_body_is_sent_verbatim_with_200(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = sequence(
        MalformedBody(), MalformedBody(b'{"choices": []}'), MalformedBody(b"<html>oops</html>")
    )
    url = f"{scripted_model.base_url}/chat/completions"
    body = {"model": MODEL, "messages": HELLO}
    async with httpx2.AsyncClient(timeout=10) as http:
        broken = await http.post(url, json=body)
        empty = await http.post(url, json=body)
        streamed = await http.post(url, json={**body, "stream": True})
    assert broken.status_code == 200
    assert broken.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)
    assert empty.json() == {"choices": []}
    # A streaming client gets the same bytes as one SSE frame, then the end of the stream.
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.content == b"data: <html>oops</html>\n\ndata: [DONE]\n\n"
    assert len(scripted_model.requests) == 3
