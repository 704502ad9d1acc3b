"""Fixtures for agent tests: a runtime on real Redis whose model is the scripted model over
real HTTP (``model``, from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from agents.runtime import Runtime
from agents.scripted import ScriptedModel
from tests._util import scripted_runtime


@pytest.fixture
async def runtime(redis_client: aioredis.Redis, model: ScriptedModel) -> AsyncIterator[Runtime]:
    async with scripted_runtime(redis_client, model) as rt:
        yield rt
