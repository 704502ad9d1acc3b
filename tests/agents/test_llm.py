"""The LLM client against the scripted model over real HTTP: handles, parsing, retries, errors."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from agents.llm import (
    ContextWindowExceeded,
    LLMClient,
    LLMRejected,
    LLMResponse,
    LLMSettings,
    LLMUnavailable,
    model_name,
)
from agents.manage import AgentSpec, create_agent
from agents.runtime import Runtime
from agents.scripted import (
    ContextTooLong,
    CutStream,
    RateLimited,
    Reply,
    ScriptedModel,
    ServerError,
    Slow,
    Usage,
    always,
    call,
    faults_then,
    malformed_tool_call,
    say,
    text,
    tool_calls,
)
from agents.scripted.policies import DEFAULT_MALFORMED_ARGUMENTS
from tests._util import SEND_MESSAGE_TOOL

HELLO = [{"role": "user", "content": "hello"}]


@contextlib.asynccontextmanager
async def _client(scripted_model: ScriptedModel, **settings: Any) -> AsyncIterator[LLMClient]:
    """A client on ``model`` with fast backoff; ``settings`` override the defaults."""
    options: dict[str, Any] = {
        "base_url": scripted_model.base_url,
        "api_key": "test",
        "timeout_s": 10.0,
        "max_retries": 2,
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.05,
        **settings,
    }
    client = LLMClient(LLMSettings(**options))
    try:
        yield client
    finally:
        await client.aclose()


# --- handles and parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handle", "sent"),
    [
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("ollama/llama3.1:8b", "llama3.1:8b"),
        ("vllm/meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
        # Unknown prefixes are part of the model's name (vLLM serves "org/model").
        ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
        ("scripted", "scripted"),
    ],
)
def test_model_name_strips_only_known_provider_prefixes(handle: str, sent: str) -> None:
    assert model_name(handle) == sent


async def test_handles_reach_the_endpoint_as_model_names(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = always(text("ok"))
    async with _client(scripted_model) as client:
        await client.chat("openai/gpt-4o-mini", HELLO)
        await client.chat("Qwen/Qwen2.5-7B-Instruct", HELLO)
    assert [r.model for r in scripted_model.requests] == ["gpt-4o-mini", "Qwen/Qwen2.5-7B-Instruct"]


async def test_tool_calls_thoughts_and_usage_are_parsed(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = always(
        tool_calls(
            call("send_message", message="Hi Bob", id="call_a"),
            call("core_memory_append", label="human", content="Name: Bob", id="call_b"),
            thought="The user said their name.",
        )
    )
    async with _client(scripted_model) as client:
        response = await client.chat(
            "openai/gpt-4o-mini", HELLO, [SEND_MESSAGE_TOOL], max_tokens=64
        )
    assert response.content == "The user said their name."
    assert [(c.id, c.name) for c in response.tool_calls] == [
        ("call_a", "send_message"),
        ("call_b", "core_memory_append"),
    ]
    assert json.loads(response.tool_calls[1].arguments) == {
        "label": "human",
        "content": "Name: Bob",
    }
    assert response.finish_reason == "tool_calls"
    assert response.prompt_tokens > 0 and response.completion_tokens > 0
    # The tools, an "auto" tool choice and the token cap went out on the wire.
    sent = scripted_model.requests[0].raw
    assert sent["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in sent["tools"]] == ["send_message"]
    assert sent["max_tokens"] == 64


async def test_reported_usage_is_taken_as_is(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = always(
        Reply(content="plain words", usage=Usage(prompt_tokens=1234, completion_tokens=56))
    )
    async with _client(scripted_model) as client:
        response = await client.chat("scripted", HELLO)
    assert (response.prompt_tokens, response.completion_tokens) == (1234, 56)
    assert response.content == "plain words"
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    # Without tools the request carries neither tools nor a tool choice.
    assert "tools" not in scripted_model.requests[0].raw
    assert "tool_choice" not in scripted_model.requests[0].raw


async def test_malformed_tool_call_json_comes_back_verbatim(scripted_model: ScriptedModel) -> None:
    # The step loop (not the client) answers the model with a tool error; see test_loop.py.
    scripted_model.policy = always(malformed_tool_call("send_message"))
    async with _client(scripted_model) as client:
        response = await client.chat("scripted", HELLO, [SEND_MESSAGE_TOOL])
    [only] = response.tool_calls
    assert only.name == "send_message"
    assert only.arguments == DEFAULT_MALFORMED_ARGUMENTS
    assert len(scripted_model.requests) == 1


async def _timed_chat(client: LLMClient) -> tuple[LLMResponse, float]:
    """``client.chat`` of :data:`HELLO`: the response, and how long it took in seconds."""
    started = time.monotonic()
    response = await client.chat("scripted", HELLO)
    return response, time.monotonic() - started


# --- retries -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault", [RateLimited(retry_after=0.3), ServerError(503, retry_after=0.3)], ids=["429", "503"]
)
async def test_retry_after_is_honoured(
    scripted_model: ScriptedModel, fault: RateLimited | ServerError
) -> None:
    scripted_model.policy = faults_then(fault, then=text("ok"))
    async with _client(scripted_model, backoff_cap_s=1.0) as client:
        response, elapsed = await _timed_chat(client)
    assert response.content == "ok"
    assert len(scripted_model.requests) == 2
    # The jittered backoff alone would wait at most backoff_base_s (0.01 s).
    assert elapsed >= 0.3


async def test_an_absurd_retry_after_is_capped(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = faults_then(RateLimited(retry_after=30.0), then=text("ok"))
    # The cap on a server's Retry-After is three times backoff_cap_s: 0.3 s here.
    async with _client(scripted_model, backoff_cap_s=0.1) as client:
        with anyio.fail_after(10):
            response, elapsed = await _timed_chat(client)
    assert response.content == "ok"
    assert 0.3 <= elapsed < 10


async def test_server_errors_are_retried_until_success(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = faults_then(
        ServerError(500), ServerError(502, "bad gateway"), ServerError(503), then=text("ok")
    )
    async with _client(scripted_model, max_retries=3) as client:
        response = await client.chat("scripted", HELLO)
    assert response.content == "ok"
    assert len(scripted_model.requests) == 4


async def test_exhausted_retries_raise_unavailable_naming_the_error(
    scripted_model: ScriptedModel,
) -> None:
    scripted_model.policy = always(
        ServerError(503, "The engine is currently overloaded (scripted).")
    )
    async with _client(scripted_model, max_retries=2) as client:
        with pytest.raises(LLMUnavailable) as raised:
            await client.chat("scripted", HELLO)
    message = str(raised.value)
    assert "3 times" in message
    assert "InternalServerError" in message
    assert "currently overloaded" in message
    assert len(scripted_model.requests) == 3  # the first try and two retries


async def test_exhausted_rate_limit_retries_raise_unavailable(
    scripted_model: ScriptedModel,
) -> None:
    scripted_model.policy = always(RateLimited(retry_after=0.01, message="Slow down (scripted)."))
    async with _client(scripted_model, max_retries=1) as client:
        with pytest.raises(LLMUnavailable, match=r"RateLimitError.*Slow down"):
            await client.chat("scripted", HELLO)
    assert len(scripted_model.requests) == 2


async def test_a_cut_response_is_retried(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = faults_then(
        CutStream(after_chunks=20, reply=text("lost")), then=text("ok")
    )
    async with _client(scripted_model) as client:
        response = await client.chat("scripted", HELLO)
    assert response.content == "ok"
    assert len(scripted_model.requests) == 2


async def test_a_slow_reply_times_out_and_is_retried(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = faults_then(Slow(5.0, then=text("too late")), then=text("in time"))
    async with _client(scripted_model, timeout_s=0.5) as client:
        response, elapsed = await _timed_chat(client)
    assert response.content == "in time"
    assert len(scripted_model.requests) == 2
    assert 0.5 <= elapsed < 5.0
    # The client hung up on the slow request instead of waiting for it.
    with anyio.fail_after(5):
        await scripted_model.wait_until(lambda: scripted_model.abandoned == 1)


async def test_a_request_timeout_status_is_retried(scripted_model: ScriptedModel) -> None:
    # 408 is a timeout reported by the server or a proxy in front of it: transient.
    scripted_model.policy = faults_then(
        ServerError(408, "Request timed out (scripted).", "timeout"), then=text("ok")
    )
    async with _client(scripted_model) as client:
        response = await client.chat("scripted", HELLO)
    assert response.content == "ok"
    assert len(scripted_model.requests) == 2


async def test_timeouts_on_every_try_raise_unavailable(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = always(Slow(5.0, then=text("too late")))
    async with _client(scripted_model, timeout_s=0.5, max_retries=1) as client:
        started = time.monotonic()
        with pytest.raises(LLMUnavailable, match="APITimeoutError"):
            await client.chat("scripted", HELLO)
        elapsed = time.monotonic() - started
    assert len(scripted_model.requests) == 2
    assert 1.0 <= elapsed < 5.0


# --- errors that retrying cannot fix -------------------------------------------------------


async def test_context_length_error_is_raised_at_once(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = always(ContextTooLong())
    async with _client(scripted_model, max_retries=3) as client:
        with pytest.raises(ContextWindowExceeded, match="maximum context length"):
            await client.chat("scripted", HELLO)
    assert len(scripted_model.requests) == 1


async def test_an_oversized_prompt_is_refused_by_the_window(scripted_model: ScriptedModel) -> None:
    scripted_model.models["tiny"] = 50
    async with _client(scripted_model, max_retries=3) as client:
        with pytest.raises(ContextWindowExceeded, match="50 tokens"):
            await client.chat("tiny", [{"role": "user", "content": "word " * 400}])
    assert len(scripted_model.requests) == 1


async def test_context_errors_are_recognised_by_their_wording(
    scripted_model: ScriptedModel,
) -> None:
    # vLLM and others answer a plain 400 with no error code, only OpenAI's wording.
    scripted_model.policy = always(
        ServerError(
            400,
            "This model's maximum context length is 4096 tokens. However, you requested "
            "5000 tokens. Please reduce the length of the messages.",
            type="BadRequestError",
        )
    )
    async with _client(scripted_model) as client:
        with pytest.raises(ContextWindowExceeded):
            await client.chat("scripted", HELLO)
    assert len(scripted_model.requests) == 1


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            ServerError(401, "Incorrect API key provided.", "invalid_request_error"),
            r"refused our key.*Incorrect API key.*OPENAI_API_KEY",
        ),
        (
            ServerError(403, "You are not allowed to use this model.", "permission_error"),
            r"refused our key.*not allowed",
        ),
        (
            ServerError(404, "The model `gpt-9` does not exist.", "invalid_request_error"),
            r"model 'gpt-4o-mini' not found.*does not exist.*OPENAI_BASE_URL",
        ),
        (
            ServerError(400, "Invalid value for 'tool_choice'.", "invalid_request_error"),
            r"refused the request: Invalid value for 'tool_choice'",
        ),
        (
            ServerError(422, "Unprocessable request.", "invalid_request_error"),
            r"refused the request: Unprocessable request",
        ),
    ],
)
async def test_rejections_are_not_retried(
    scripted_model: ScriptedModel, fault: ServerError, expected: str
) -> None:
    scripted_model.policy = always(fault)
    async with _client(scripted_model, max_retries=3) as client:
        with pytest.raises(LLMRejected, match=expected):
            await client.chat("openai/gpt-4o-mini", HELLO)
    assert len(scripted_model.requests) == 1


# --- settings and endpoints ----------------------------------------------------------------


def test_settings_from_the_environment() -> None:
    settings = LLMSettings.from_env(
        {
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "OPENAI_API_KEY": "sk-test",
            "MEMGRID_LLM_TIMEOUT": "7.5",
            "MEMGRID_LLM_RETRIES": "9",
        }
    )
    assert settings.base_url == "http://127.0.0.1:9/v1"
    assert settings.api_key == "sk-test"
    assert (settings.timeout_s, settings.max_retries) == (7.5, 9)
    defaults = LLMSettings.from_env({"OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""})
    assert defaults.base_url is None and defaults.api_key is None
    assert (defaults.timeout_s, defaults.max_retries) == (120.0, 4)


@pytest.mark.parametrize(
    "environ", [{"MEMGRID_LLM_TIMEOUT": "soon"}, {"MEMGRID_LLM_RETRIES": "2.5"}]
)
def test_bad_settings_name_the_variables(environ: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"MEMGRID_LLM_TIMEOUT.*MEMGRID_LLM_RETRIES"):
        LLMSettings.from_env(environ)


async def test_an_agent_may_name_its_own_endpoint(
    runtime: Runtime, scripted_model: ScriptedModel
) -> None:
    scripted_model.policy = always(say("from the default endpoint"))
    async with ScriptedModel.serve(always(say("from the agent's endpoint"))) as own:
        default = await create_agent(runtime, AgentSpec(name="plain", model="openai/scripted"))
        special = await create_agent(
            runtime,
            AgentSpec(name="special", model="openai/gpt-4o-mini", model_endpoint=own.base_url),
        )
        first = await runtime.llm.for_agent(default).chat(default.model, HELLO)
        second = await runtime.llm.for_agent(special).chat(special.model, HELLO)
        assert runtime.llm.for_agent(special) is runtime.llm.for_agent(special)
    assert json.loads(first.tool_calls[0].arguments)["message"] == "from the default endpoint"
    assert json.loads(second.tool_calls[0].arguments)["message"] == "from the agent's endpoint"
    assert [r.model for r in scripted_model.requests] == ["scripted"]
    assert [r.model for r in own.requests] == ["gpt-4o-mini"]


async def test_many_calls_in_flight_spread_over_small_pools(scripted_model: ScriptedModel) -> None:
    # One SDK client per 4 connections (httpcore scans its whole pool per request); together
    # they carry max_connections calls at once, and a quiet process uses only the first.
    scripted_model.policy = always(Slow(seconds=0.5, then=text("ok")))
    async with _client(scripted_model, max_connections=40) as client:
        await client.chat("scripted", HELLO)
        await client.chat("scripted", HELLO)
        assert sum(sdk is not None for sdk in client._clients) == 1
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(client.chat, "scripted", HELLO)
        assert time.perf_counter() - started < 1.4  # all 40 at once, not 4 at a time
        assert sum(sdk is not None for sdk in client._clients) == 10
        assert client._in_flight == [0] * 10


def test_completions_are_read_leniently_where_servers_differ() -> None:
    from agents._completion import Unparsable, parse

    body = {
        "id": "x",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "thinking "}, {"text": "aloud"}],
                    "tool_calls": [
                        # an object instead of a JSON string, and no id
                        {"type": "function", "function": {"name": "f", "arguments": {"a": 1}}},
                        {"type": "function", "id": "c2", "function": {"name": "g"}},
                    ],
                },
            }
        ],
        # no usage at all
    }
    parsed = parse(json.dumps(body).encode())
    assert parsed.content == "thinking aloud" and parsed.finish_reason == "tool_calls"
    assert [(c.id, c.name, json.loads(c.arguments or "{}")) for c in parsed.tool_calls] == [
        ("call_0", "f", {"a": 1}),
        ("c2", "g", {}),
    ]
    assert (parsed.prompt_tokens, parsed.completion_tokens) == (0, 0)
    # Not errors of their own: the client retries them (see test_model_faults.py).
    with pytest.raises(Unparsable, match="no choices"):
        parse(b'{"choices": []}')
    with pytest.raises(Unparsable, match="gateway error"):
        parse(b"<html>gateway error</html>")


async def test_a_refused_connection_is_counted_as_one_whatever_the_transport_calls_it() -> None:
    """The SDK's aiohttp transport raises a refused connection as ``httpx2.ConnectTimeout``:
    the client still says nobody listens, fails fast, and counts it as a connection error."""
    import socket

    from agents import metrics

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = LLMClient(LLMSettings(base_url=f"http://127.0.0.1:{port}/v1", max_retries=4))
    started = time.monotonic()
    try:
        with pytest.raises(LLMUnavailable, match="cannot reach the model endpoint") as failed:
            await client.chat("m", [{"role": "user", "content": "hi"}])
    finally:
        await client.aclose()
    assert time.monotonic() - started < 5  # no backoff: one quick retry
    assert failed.value.__cause__ is not None
    assert metrics.error_kind(failed.value.__cause__) == "connection"
