"""Chat completions through the real openai SDK: tool calls, content, streaming, policies."""

from __future__ import annotations

import json

import anyio
import anyio.lowlevel
import openai
import pytest

from agents.scripted import (
    ChatRequest,
    ContextTooLong,
    Outcome,
    PolicyFailed,
    Reply,
    ScriptedModel,
    Usage,
    call,
    estimate_tokens,
    say,
    sequence,
    text,
    tool_call,
    tool_calls,
)
from tests._util import SEND_MESSAGE_TOOL

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "archival_memory_search",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}
MODEL = "gpt-4o-mini"


async def test_echo_answers_through_send_message(
    scripted_client: openai.AsyncOpenAI,
) -> None:
    completion = await scripted_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "persona"}, {"role": "user", "content": "hi"}],
        tools=[SEND_MESSAGE_TOOL],  # type: ignore[list-item]
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert choice.message.content is None
    (tool,) = choice.message.tool_calls or []
    assert tool.type == "function"
    assert tool.id.startswith("call_")
    assert tool.function.name == "send_message"
    assert json.loads(tool.function.arguments) == {"message": "hi"}
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_tool_call_round_trip_and_inspection(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    def policy(request: ChatRequest) -> Outcome:
        result = request.last_tool_result
        if result is None:
            query = request.last_user_text or ""
            return tool_call("archival_memory_search", query=query, thought="Look it up.")
        return say(f"{result.name} found {result.content}")

    scripted_model.policy = policy
    messages: list[dict[str, object]] = [
        {"role": "system", "content": "You are Sam."},
        {"role": "user", "content": json.dumps({"type": "user_message", "message": "tea?"})},
    ]
    tools = [SEND_MESSAGE_TOOL, SEARCH_TOOL]
    first = await scripted_client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
    )
    message = first.choices[0].message
    assert message.content == "Look it up."
    (tool,) = message.tool_calls or []
    assert json.loads(tool.function.arguments) == {"query": "tea?"}
    messages.append(message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": tool.id, "content": "green tea"})
    second = await scripted_client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
    )
    (reply,) = second.choices[0].message.tool_calls or []
    assert json.loads(reply.function.arguments) == {
        "message": "archival_memory_search found green tea"
    }

    first_request, second_request = scripted_model.requests
    assert first_request.system_prompt == "You are Sam."
    assert first_request.tool_names == {"send_message", "archival_memory_search"}
    assert first_request.offers("send_message")
    assert first_request.last_role == "user"
    assert second_request.last_role == "tool"
    assert [c.function.name for c in second_request.tool_calls_made()] == ["archival_memory_search"]
    assert [m.role for m in second_request.since_last_user()] == ["assistant", "tool"]
    assert second_request.raw["model"] == MODEL


async def test_plain_content_and_list_content(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    completion = await scripted_client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "plain "}, {"type": "text", "text": "words"}],
            }
        ],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content == "plain words"
    assert choice.message.tool_calls is None
    assert scripted_model.requests[0].messages[0].text == "plain words"


async def test_parallel_calls_usage_override_and_finish_reason(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    scripted_model.policy = sequence(
        tool_calls(call("a", x=1, id="call_fixed"), call("b", {"id": "arg"})),
        Reply(
            content="cut", finish_reason="length", usage=Usage(prompt_tokens=7, completion_tokens=3)
        ),
    )
    first = await scripted_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "go"}]
    )
    calls = first.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_fixed", "a", {"x": 1}),
        (calls[1].id, "b", {"id": "arg"}),
    ]
    second = await scripted_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "go"}]
    )
    assert second.choices[0].finish_reason == "length"
    assert second.usage is not None
    assert (second.usage.prompt_tokens, second.usage.completion_tokens) == (7, 3)
    assert second.usage.total_tokens == 10


async def test_stream_tool_call_deltas_and_usage(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    long_message = "a fairly long message that needs several argument fragments"
    scripted_model.policy = sequence(say(long_message, thought="Thinking out loud here."))
    stream = await scripted_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello"}],
        tools=[SEND_MESSAGE_TOOL],  # type: ignore[list-item]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "Thinking out loud here."
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id is not None
    assert deltas[0].function is not None
    assert deltas[0].function.name == "send_message"
    assert all(d.id is None and d.index == 0 for d in deltas[1:])
    assert len(deltas) > 3
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(arguments) == {"message": long_message}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"
    assert not any(finishes[:-1])
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.prompt_tokens == estimate_tokens(scripted_model.requests[0])


async def test_stream_helper_reassembles_the_completion(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    scripted_model.policy = sequence(
        tool_calls(call("a", q="one" * 10), call("send_message", message="two" * 10))
    )
    async with scripted_client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        completion = await stream.get_final_completion()
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    calls = message.tool_calls or []
    assert [c.function.name for c in calls] == ["a", "send_message"]
    assert json.loads(calls[1].function.arguments) == {"message": "two" * 10}
    assert completion.usage is None  # not asked for


async def test_stream_without_usage_has_no_usage_field(
    scripted_client: openai.AsyncOpenAI,
) -> None:
    stream = await scripted_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "plain text reply"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "plain text reply"
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_context_length_error_from_policy_and_window(
    scripted_client: openai.AsyncOpenAI,
) -> None:
    async with (
        ScriptedModel.serve(
            sequence(ContextTooLong(), then=text("fine")), models={"tiny": 50}
        ) as model,
        openai.AsyncOpenAI(base_url=model.base_url, api_key="x", max_retries=0) as client,
    ):
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "short"}]
            )
        assert raised.value.status_code == 400
        assert raised.value.code == "context_length_exceeded"
        assert raised.value.type == "invalid_request_error"
        assert raised.value.param == "messages"
        assert "maximum context length is 128000 tokens" in raised.value.message

        # Over the model's window: refused without asking the policy.
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "x" * 400}]
            )
        assert raised.value.code == "context_length_exceeded"
        tokens = estimate_tokens(model.requests[-1])
        assert f"is 50 tokens. However, your messages resulted in {tokens}" in str(
            raised.value.message
        )
        ok = await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "x"}]
        )
        assert ok.choices[0].message.content == "fine"


async def test_sequence_order_exhaustion_and_policy_failure() -> None:
    steps = sequence(text("one"), text("two"))
    async with (
        ScriptedModel.serve(steps) as model,
        openai.AsyncOpenAI(base_url=model.base_url, api_key="x", max_retries=0) as client,
    ):
        answers = []
        for _ in range(2):
            done = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "?"}]
            )
            answers.append(done.choices[0].message.content)
        assert answers == ["one", "two"]
        assert steps.remaining == 0
        with pytest.raises(openai.InternalServerError) as raised:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "?"}]
            )
        assert "SequenceExhausted" in raised.value.message
        assert raised.value.code == "policy_error"
    assert len(model.policy_errors) == 1
    assert "asked for reply #3" in str(PolicyFailed(model.policy_errors))


async def test_sequence_then_cycle_and_async_policy(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    async def slow_policy(request: ChatRequest) -> Outcome:
        await anyio.lowlevel.checkpoint()
        return text(f"async {len(request.messages)}")

    scripted_model.policy = sequence(text("a"), slow_policy, then=text("rest"))
    got = []
    for _ in range(4):
        done = await scripted_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "?"}]
        )
        got.append(done.choices[0].message.content)
    assert got == ["a", "async 1", "rest", "rest"]

    scripted_model.policy = sequence(text("x"), text("y"), cycle=True)
    got = []
    for _ in range(3):
        done = await scripted_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "?"}]
        )
        got.append(done.choices[0].message.content)
    assert got == ["x", "y", "x"]
    with anyio.fail_after(5):
        recorded = await scripted_model.wait_for_requests(7)
    assert len(recorded) == 7


async def test_policy_returning_garbage_is_a_policy_error() -> None:
    def bad_policy(request: ChatRequest) -> Outcome:
        return "not a reply"  # type: ignore[return-value]

    async with (
        ScriptedModel.serve(bad_policy) as model,
        openai.AsyncOpenAI(base_url=model.base_url, api_key="x", max_retries=0) as client,
    ):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "?"}]
            )
    (error,) = model.policy_errors
    assert isinstance(error, TypeError)
