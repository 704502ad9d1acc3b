"""Bad models, through the real API and its embedded worker (issue #11).

Each test drives an agent turn with ``POST /v1/agents/{id}/messages`` while the scripted model
misbehaves in one way: rate limits with ``Retry-After``, 5xx, answers slower than the request
timeout, bodies cut mid-way, bodies that are not JSON, tool calls with broken arguments or
unknown tools, 2 MB outputs, heartbeats forever. Each asserts what a user relies on: the model
was asked a bounded number of times, the run ended with a Letta stop reason and a detail that
names the cause, the run record says how it ended, and the agent still answers the next message.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from agents.scripted import (
    ContextTooLong,
    CutStream,
    MalformedBody,
    Policy,
    RateLimited,
    ServerError,
    Slow,
    always,
    call,
    echo,
    faults_then,
    malformed_tool_call,
    say,
    text,
    tool_call,
    tool_calls,
)
from tests.api.conftest import Served, make_agent, sse_frames

RETRIES = 2  # MEMGRID_LLM_RETRIES for these tests: each model call is tried at most 3 times
LLM_TIMEOUT_S = 1.0


@pytest.fixture(autouse=True)
def _llm_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Read by the embedded worker when the API starts (the `served` fixture).
    monkeypatch.setenv("MEMGRID_LLM_RETRIES", str(RETRIES))
    monkeypatch.setenv("MEMGRID_LLM_TIMEOUT", str(LLM_TIMEOUT_S))


async def _turn(
    client: httpx.AsyncClient, agent_id: str, content: str, **fields: Any
) -> dict[str, Any]:
    """One turn; returns the response with ``run`` (the run record as the API shows it)."""
    response = await client.post(
        f"/v1/agents/{agent_id}/messages",
        json={"messages": [{"role": "user", "content": content}], **fields},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    runs = await client.get("/v1/runs/", params={"agent_ids": [agent_id], "limit": 1})
    assert runs.status_code == 200, runs.text
    body["run"] = runs.json()[0]
    return body


async def _still_serves(served: Served, client: httpx.AsyncClient, agent_id: str) -> None:
    """The agent answers the next message normally once the model behaves."""
    served.model.policy = echo
    body = await _turn(client, agent_id, "still there?")
    assert body["stop_reason"]["stop_reason"] == "end_turn", body["stop_reason"]
    replies = [m["content"] for m in body["messages"] if m["message_type"] == "assistant_message"]
    assert replies == ["still there?"]
    assert body["run"]["status"] == "completed"


async def _scripted_turn(
    served: Served, client: httpx.AsyncClient, policy: Policy, content: str = "hi"
) -> tuple[str, dict[str, Any]]:
    """A new agent's turn with the model playing ``policy``: the agent's id and the response."""
    agent = await make_agent(client)
    served.model.policy = policy
    return agent["id"], await _turn(client, agent["id"], content)


def _stop(body: dict[str, Any]) -> tuple[str, str]:
    stop = body["stop_reason"]
    return stop["stop_reason"], stop["detail"] or ""


async def _ended(
    served: Served, client: httpx.AsyncClient, policy: Policy, stop_reason: str, naming: str = ""
) -> tuple[str, dict[str, Any], str]:
    """:func:`_scripted_turn`, which must end with ``stop_reason`` and a detail that says
    ``naming``: the agent's id, the response and the stop's detail."""
    agent_id, body = await _scripted_turn(served, client, policy)
    stop, detail = _stop(body)
    assert stop == stop_reason, (stop, detail)
    assert naming in detail, detail
    return agent_id, body, detail


# --- transient HTTP failures: retried a bounded number of times -------------------------------


async def test_retry_after_is_honoured_then_the_turn_succeeds(
    served: Served, client: httpx.AsyncClient
) -> None:
    agent = await make_agent(client)
    served.model.policy = faults_then(RateLimited(retry_after=1.0), then=say("after the wait"))
    started = time.monotonic()
    body = await _turn(client, agent["id"], "hi")
    elapsed = time.monotonic() - started
    assert _stop(body)[0] == "end_turn"
    assert len(served.model.requests) == 2
    # The jittered backoff alone waits at most 0.5 s before the first retry.
    assert 1.0 <= elapsed < 10.0
    assert body["run"]["status"] == "completed"


@pytest.mark.parametrize(
    "value", ["-1", "nan", "inf", "1e999", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"]
)
async def test_a_nonsensical_retry_after_falls_back_to_backoff(
    served: Served, client: httpx.AsyncClient, value: str
) -> None:
    agent = await make_agent(client)
    odd = (("retry-after", value), ("retry-after-ms", value))
    served.model.policy = faults_then(
        RateLimited(headers=odd), ServerError(503, headers=odd), then=say("made it")
    )
    started = time.monotonic()
    body = await _turn(client, agent["id"], "hi")
    assert _stop(body)[0] == "end_turn", body["stop_reason"]
    assert len(served.model.requests) == 3
    # The jittered backoff: at most 0.5 s, then 1 s.
    assert time.monotonic() - started < 10.0


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        (RateLimited(retry_after=0.01, message="Slow down (scripted)."), "Slow down"),
        (ServerError(500, "The engine broke (scripted)."), "The engine broke"),
        (ServerError(503, "Overloaded (scripted).", retry_after=0.01), "Overloaded"),
        (Slow(LLM_TIMEOUT_S * 10, then=say("too late")), "Timeout"),
        (CutStream(after_chunks=30, reply=say("never whole")), "Connection"),
    ],
    ids=["429", "500", "503", "timeout", "cut-body"],
)
async def test_a_model_that_keeps_failing_ends_the_run_with_llm_api_error(
    served: Served, client: httpx.AsyncClient, fault: Any, named: str
) -> None:
    agent = await make_agent(client)
    served.model.policy = always(fault)
    started = time.monotonic()
    body = await _turn(client, agent["id"], "hi")
    elapsed = time.monotonic() - started
    stop, detail = _stop(body)
    assert stop == "llm_api_error"
    assert named.lower() in detail.lower(), detail
    assert f"{RETRIES + 1} times" in detail, detail
    assert len(served.model.requests) == RETRIES + 1
    assert body["run"]["status"] == "failed"
    assert body["run"]["stop_reason"] == "llm_api_error"
    assert elapsed < 20.0
    await _still_serves(served, client, agent["id"])


async def test_a_timeout_is_retried_then_the_turn_succeeds(
    served: Served, client: httpx.AsyncClient
) -> None:
    agent = await make_agent(client)
    served.model.policy = faults_then(Slow(30.0, then=say("too late")), then=say("in time"))
    started = time.monotonic()
    body = await _turn(client, agent["id"], "hi")
    elapsed = time.monotonic() - started
    assert _stop(body)[0] == "end_turn"
    replies = [m["content"] for m in body["messages"] if m["message_type"] == "assistant_message"]
    assert replies == ["in time"]
    assert LLM_TIMEOUT_S <= elapsed < 10.0
    assert len(served.model.requests) == 2


# --- answers that are not chat completions ---------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [MalformedBody(), MalformedBody(b'{"object": "chat.completion", "choices": []}')],
    ids=["not-json", "no-choices"],
)
async def test_a_body_that_is_not_a_completion_ends_with_invalid_llm_response(
    served: Served, client: httpx.AsyncClient, body: MalformedBody
) -> None:
    agent_id, answer, detail = await _ended(served, client, always(body), "invalid_llm_response")
    assert "chat completion" in detail or "no choices" in detail, detail
    # A garbled answer may be a proxy's hiccup: retried like a 5xx, and as boundedly.
    assert len(served.model.requests) == RETRIES + 1
    assert answer["run"]["status"] == "failed"
    await _still_serves(served, client, agent_id)


async def test_one_garbled_body_is_retried(served: Served, client: httpx.AsyncClient) -> None:
    _, body = await _scripted_turn(
        served, client, faults_then(MalformedBody(), then=say("fine now"))
    )
    assert _stop(body)[0] == "end_turn"
    assert len(served.model.requests) == 2


# --- bad tool calls: answered as tool errors, then a named stop -----------------------------


@pytest.mark.parametrize(
    ("reply", "named"),
    [
        (malformed_tool_call("send_message"), "not valid JSON"),
        (tool_call("launch_rockets", count=3), "launch_rockets"),
        (tool_call("core_memory_append", label="human"), "content"),
    ],
    ids=["arguments-not-json", "unknown-tool", "arguments-missing"],
)
async def test_only_invalid_tool_calls_end_with_invalid_tool_call(
    served: Served, client: httpx.AsyncClient, reply: Any, named: str
) -> None:
    agent_id, body, _ = await _ended(served, client, always(reply), "invalid_tool_call", named)
    # Each invalid call was answered with a tool error the model saw, a bounded number of times.
    errors = [m for m in body["messages"] if m["message_type"] == "tool_return_message"]
    assert errors and all(m["status"] == "error" for m in errors)
    assert all(named in m["tool_return"] for m in errors)
    assert len(served.model.requests) == len(errors) <= 10
    # The model answered, badly: the run completed, and says why it stopped.
    assert (body["run"]["status"], body["run"]["stop_reason"]) == ("completed", "invalid_tool_call")
    await _still_serves(served, client, agent_id)


async def test_heartbeats_forever_end_at_the_step_limit(
    served: Served, client: httpx.AsyncClient
) -> None:
    agent = await make_agent(client)
    served.model.policy = always(
        tool_call("conversation_search", query="more", request_heartbeat=True)
    )
    body = await _turn(client, agent["id"], "think forever", max_steps=5)
    stop, detail = _stop(body)
    assert stop == "max_steps"
    assert "limit of 5 steps" in detail and "request's max_steps" in detail, detail
    assert len(served.model.requests) == 5
    assert body["usage"]["step_count"] == 5
    assert body["run"]["status"] == "completed"
    await _still_serves(served, client, agent["id"])


# --- huge outputs -----------------------------------------------------------------------------

HUGE = 2_000_000


@pytest.mark.parametrize(
    "reply", [text("x" * HUGE), say("y" * HUGE)], ids=["plain-text", "send-message"]
)
async def test_a_2mb_answer_ends_the_turn_and_the_agent_still_serves(
    served: Served, client: httpx.AsyncClient, reply: Any
) -> None:
    agent_id, body = await _scripted_turn(served, client, always(reply), "write a novel")
    assert _stop(body) == ("end_turn", "")
    replies = [m["content"] for m in body["messages"] if m["message_type"] == "assistant_message"]
    assert [len(r) for r in replies] == [HUGE]
    assert len(served.model.requests) == 1
    # The next turn's context cannot hold 2 MB (~500k tokens in a 128k window): the answer was
    # evicted to recall memory rather than bricking the agent.
    await _still_serves(served, client, agent_id)
    assert len(served.model.requests[-1].raw_json) < HUGE // 2


async def test_a_streamed_turn_of_a_failing_model_ends_with_the_stop_reason_then_done(
    served: Served, client: httpx.AsyncClient
) -> None:
    agent = await make_agent(client)
    served.model.policy = always(ServerError(502, "Bad gateway (scripted)."))
    body = {"messages": [{"role": "user", "content": "hi"}], "stream_tokens": True}
    frames = await sse_frames(client, f"/v1/agents/{agent['id']}/messages/stream", body)
    assert frames[-1] == "[DONE]"
    [stop] = [f for f in frames if isinstance(f, dict) and f["message_type"] == "stop_reason"]
    assert stop["stop_reason"] == "llm_api_error"
    assert "Bad gateway" in stop["detail"]
    assert len(served.model.requests) == RETRIES + 1
    await _still_serves(served, client, agent["id"])


async def test_a_flood_of_parallel_tool_calls_ends_named_and_the_agent_recovers(
    served: Served, client: httpx.AsyncClient
) -> None:
    agent = await make_agent(client)
    flood = [
        call("conversation_search", query=f"q{i}", request_heartbeat=True) for i in range(2000)
    ]
    served.model.policy = always(tool_calls(*flood))
    started = time.monotonic()
    body = await _turn(client, agent["id"], "search everything")
    stop, detail = _stop(body)
    # 2000 results do not fit the next step's window, even with every older message evicted.
    assert stop == "context_window_overflow_in_system_prompt", (stop, detail)
    assert "context window" in detail
    assert len(served.model.requests) == 1
    assert time.monotonic() - started < 30.0
    assert body["run"]["stop_reason"] == stop
    await _still_serves(served, client, agent["id"])


async def test_a_model_that_always_says_too_long_ends_named_with_its_message(
    served: Served, client: httpx.AsyncClient
) -> None:
    too_long = always(ContextTooLong("This model's maximum context length is 10."))
    agent_id, _, _ = await _ended(
        served,
        client,
        too_long,
        "context_window_overflow_in_system_prompt",
        "maximum context length is 10",
    )
    # Once as is, once after evicting what it could: never a loop.
    assert len(served.model.requests) == 2
    await _still_serves(served, client, agent_id)


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        (ServerError(401, "Incorrect API key (scripted).", "invalid_request_error"), "API_KEY"),
        (ServerError(404, "No such model (scripted).", "invalid_request_error"), "model"),
        (ServerError(400, "Invalid 'tools' (scripted).", "invalid_request_error"), "tools"),
    ],
    ids=["401", "404", "400"],
)
async def test_a_refusal_is_not_retried_and_says_what_to_fix(
    served: Served, client: httpx.AsyncClient, fault: ServerError, named: str
) -> None:
    agent_id, body, _ = await _ended(served, client, always(fault), "llm_api_error", named)
    assert len(served.model.requests) == 1
    assert body["run"]["status"] == "failed"
    await _still_serves(served, client, agent_id)
