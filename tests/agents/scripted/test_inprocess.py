"""The in-process scripted model: the HTTP model's answers and errors, with no server."""

from __future__ import annotations

import msgspec
import pytest
import redis.asyncio as aioredis

from agents.letta_messages import AssistantMessage
from agents.llm import (
    ContextWindowExceeded,
    LLMClient,
    LLMInvalidResponse,
    LLMRejected,
    LLMSettings,
    LLMUnavailable,
)
from agents.loop import run_turn
from agents.manage import AgentSpec, create_agent
from agents.model import ChatModel, ModelPool
from agents.runtime import Runtime
from agents.scripted import (
    ContextTooLong,
    CutStream,
    FunctionModel,
    MalformedBody,
    Outcome,
    RateLimited,
    ScriptedModel,
    ServerError,
    Slow,
    always,
    say,
    sequence,
)
from bus.envelopes import InboxMessage
from storage.records import Agent
from tests.agents._streams import ANSWER, HELLO, Sink

TOOLS = [
    {
        "type": "function",
        "function": {"name": "send_message", "parameters": {"type": "object"}},
    }
]


def test_it_is_a_model_pool_whose_agents_share_it() -> None:
    model = FunctionModel()
    pool: ModelPool = model
    agent = Agent(id="agent-1", name="a", system="", model="openai/x", embedding="hashing/384")
    chat: ChatModel = pool.for_agent(msgspec.structs.replace(agent, model_endpoint="http://x/v1"))
    assert chat is model and pool.endpoint is None


async def test_answers_and_streams_equal_the_http_models(scripted_model: ScriptedModel) -> None:
    scripted_model.policy = always(ANSWER)
    local = FunctionModel(always(ANSWER))
    client = LLMClient(LLMSettings(base_url=scripted_model.base_url, max_retries=0))
    http_sink, local_sink = Sink(), Sink()
    try:
        over_http = await client.chat("openai/scripted", HELLO, TOOLS)
        streamed_over_http = await client.stream("openai/scripted", HELLO, TOOLS, sink=http_sink)
    finally:
        await client.aclose()
    in_process = await local.chat("openai/scripted", HELLO, TOOLS)
    streamed = await local.stream("openai/scripted", HELLO, TOOLS, sink=local_sink)
    assert in_process == over_http == streamed == streamed_over_http
    assert local_sink.attempts == http_sink.attempts  # the same chunks, one attempt
    # The policy saw the request the server sees: the body the client posts.
    assert [r.raw for r in local.requests] == [r.raw for r in scripted_model.requests]


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        (RateLimited(retry_after=5), LLMUnavailable, "rate limited"),
        (ServerError(503, "overloaded"), LLMUnavailable, "overloaded"),
        (ServerError(401, "bad key", "invalid_request_error"), LLMRejected, "bad key"),
        (ContextTooLong(), ContextWindowExceeded, "maximum context length"),
        (MalformedBody(), LLMInvalidResponse, "not a chat completion"),
        (CutStream(after_chunks=3, reply=say("lost")), LLMUnavailable, "cut"),
        (Slow(0.01, then=ServerError(500, "late")), LLMUnavailable, "late"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_faults_raise_what_the_http_client_raises_after_its_retries(
    fault: Outcome, error: type[Exception], words: str, streamed: bool
) -> None:
    model = FunctionModel(always(fault))
    answer = (
        model.stream("scripted", HELLO, sink=Sink()) if streamed else model.chat("scripted", HELLO)
    )
    with pytest.raises(error, match=words):
        await answer
    assert len(model.requests) == 1  # no retries in-process


async def test_an_oversized_prompt_is_refused_before_the_policy() -> None:
    model = FunctionModel(always(say("never")), default_context_window=10)
    with pytest.raises(ContextWindowExceeded, match="maximum context length is 10 tokens"):
        await model.chat("unlisted", [{"role": "user", "content": "x" * 400}])


async def test_a_policy_that_raises_is_kept_for_the_fixture_to_report() -> None:
    model = FunctionModel(sequence(say("only one")))
    await model.chat("scripted", HELLO)
    with pytest.raises(LLMUnavailable, match="SequenceExhausted"):
        await model.chat("scripted", HELLO)
    assert [type(e).__name__ for e in model.policy_errors] == ["SequenceExhausted"]


async def test_a_runtime_runs_turns_on_it_with_no_server(redis_client: aioredis.Redis) -> None:
    model = FunctionModel(always(say("Hello from in here.")))
    rt = Runtime(redis=redis_client, llm=model)
    agent = await create_agent(rt, AgentSpec(name="local"))
    replies = [
        event
        async for event in run_turn(rt, agent.id, [InboxMessage(content="hi")])
        if isinstance(event, AssistantMessage)
    ]
    assert [event.content for event in replies] == ["Hello from in here."]
    assert model.requests[0].last_user_text == "hi"
