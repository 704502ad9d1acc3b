"""Fixtures for agent tests: a scripted model over real HTTP and a runtime on real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from agents.llm import LLMSettings
from agents.runtime import LLMPool, Runtime
from agents.scripted import ScriptedModel, echo


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    async with ScriptedModel.serve(echo) as served:
        yield served


@pytest.fixture
async def runtime(redis_client: aioredis.Redis, model: ScriptedModel) -> AsyncIterator[Runtime]:
    settings = LLMSettings(
        base_url=model.base_url, api_key="test", timeout_s=10, max_retries=2, backoff_base_s=0.01
    )
    rt = Runtime(redis=redis_client, llm=LLMPool(settings))
    try:
        yield rt
    finally:
        await rt.aclose()
