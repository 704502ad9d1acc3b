"""Helpers shared by tests of several packages (fixtures live in the conftest files)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis

from agents.gate import ToolGate
from agents.llm import LLMSettings
from agents.runtime import LLMPool, Runtime
from agents.scripted import ChatRequest, Outcome, ScriptedModel, say, tool_call

__all__ = ("SEND_MESSAGE_TOOL", "approval_policy", "scripted_runtime")

# The send_message tool as a client would declare it to a chat completions endpoint.
SEND_MESSAGE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "send_message",
        "description": "Send a message to the user.",
        "parameters": {
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
        },
    },
}


@asynccontextmanager
async def scripted_runtime(
    redis: aioredis.Redis, model: ScriptedModel, *, gate: ToolGate | None = None
) -> AsyncIterator[Runtime]:
    """A runtime on ``redis`` whose model is ``model`` over HTTP (short timeouts and backoff),
    with ``gate`` as its tool gate when given; closed on the way out."""
    settings = LLMSettings(
        base_url=model.base_url, api_key="test", timeout_s=10, max_retries=2, backoff_base_s=0.01
    )
    rt = Runtime(redis=redis, llm=LLMPool(settings))
    if gate is not None:
        rt.gate = gate
    try:
        yield rt
    finally:
        await rt.aclose()


def approval_policy(request: ChatRequest, *, moved_on: bool = False) -> Outcome:
    """A model for tools that need approval: "remember..." calls ``core_memory_append``; after
    an approved call's heartbeat it says "after approval: <the tool's message>". With
    ``moved_on``, a user message that follows a tool result (a denial, say) gets "moved on;
    the edit said: <the tool's message>". Anything else: "ok"."""
    last = request.last_message
    said = last.text if last is not None else ""
    result = request.last_tool_result
    if '"type": "heartbeat"' in said and result is not None:
        return say(f"after approval: {json.loads(result.content)['message']}")
    if last is not None and last.role == "user" and "remember" in said:
        return tool_call("core_memory_append", label="human", content="likes tea")
    if moved_on and result is not None and last is not None and last.role == "user":
        return say(f"moved on; the edit said: {json.loads(result.content)['message']}")
    return say("ok")
