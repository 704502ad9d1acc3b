"""The runtime of agent tests, on real Redis, with the model the test names.

A test that takes ``scripted_model`` runs its runtime against the scripted model over real HTTP
through the ``openai`` SDK (retries, timeouts, the wire); any other gets ``function_model``,
the same policies in-process with no server. Both fixtures come from the scripted model's
pytest plugin (``agents.scripted.pytest_plugin``); the runtime is
:func:`tests._util.scripted_runtime` on that model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from agents.runtime import Runtime
from agents.scripted import FunctionModel, ScriptedModel
from tests._util import scripted_runtime


@pytest.fixture
def llm(request: pytest.FixtureRequest) -> ScriptedModel | FunctionModel:
    """The runtime's model: ``scripted_model`` when the test takes it, else ``function_model``.

    A sync fixture: pytest-asyncio sets up ``scripted_model`` here, outside the test's loop.
    """
    if "scripted_model" in request.fixturenames:
        served: ScriptedModel = request.getfixturevalue("scripted_model")
        return served
    function_model: FunctionModel = request.getfixturevalue("function_model")
    return function_model


@pytest.fixture
async def runtime(
    redis_client: aioredis.Redis, llm: ScriptedModel | FunctionModel
) -> AsyncIterator[Runtime]:
    async with scripted_runtime(redis_client, llm) as rt:
        yield rt
