"""pytest fixtures for the scripted model, registered for every pytest run by memgrid's
``pytest11`` entry point (``memgrid-scripted``): installing memgrid is enough.

- ``scripted_model``: a :class:`~agents.scripted.server.ScriptedModel` serving in the
  test's event loop (default policy :func:`~agents.scripted.policies.echo`); set
  ``scripted_model.policy`` in the test.
- ``function_model``: the same policies in-process, with no server
  (:class:`~agents.scripted.inprocess.FunctionModel`): hand it to a runtime as its ``llm``.
- ``scripted_client``: a real ``openai.AsyncOpenAI`` bound to it (``max_retries=0``).
- ``scripted_model_thread``: a model on its own thread, for sync tests and subprocesses
  (a test that blocks its event loop cannot be answered by ``scripted_model``).
- ``scripted_model_env``: ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` pointing at the
  threaded model, for code that reads the environment.

A policy that raises is a bug in the test's script: the client gets a 500 and the fixture
fails the test at teardown with :class:`~agents.scripted.errors.PolicyFailed`, unless the test
cleared ``model.policy_errors``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from agents.scripted.errors import PolicyFailed
from agents.scripted.inprocess import FunctionModel
from agents.scripted.policies import echo
from agents.scripted.server import ScriptedModel, ThreadedScriptedModel

# Every pytest run where memgrid is installed loads this plugin: one without pytest-asyncio
# must still start (the async fixtures then need an async plugin of the user's choice).
try:
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # pragma: no cover - memgrid's own test runs have it
    async_fixture = pytest.fixture  # type: ignore[assignment]  # same call shape, other overloads

__all__ = (
    "function_model",
    "scripted_client",
    "scripted_model",
    "scripted_model_env",
    "scripted_model_thread",
)


@pytest.fixture
def function_model() -> Iterator[FunctionModel]:
    """The scripted model in-process (``echo``); fails the test if its policy raised."""
    model = FunctionModel(echo)
    yield model
    if model.policy_errors:
        raise PolicyFailed(model.policy_errors)


@async_fixture
async def scripted_model() -> AsyncIterator[ScriptedModel]:
    """A scripted model on loopback in the test's event loop, answering with ``echo``."""
    model = ScriptedModel(echo)
    await model.start()
    try:
        yield model
    finally:
        await model.aclose()
    if model.policy_errors:
        raise PolicyFailed(model.policy_errors)


@async_fixture
async def scripted_client(scripted_model: ScriptedModel) -> AsyncIterator[openai.AsyncOpenAI]:
    """The real async OpenAI SDK pointed at ``scripted_model``, without retries."""
    client = openai.AsyncOpenAI(base_url=scripted_model.base_url, api_key="scripted", max_retries=0)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def scripted_model_thread() -> Iterator[ThreadedScriptedModel]:
    """A scripted model serving from its own thread (policy: ``echo``)."""
    threaded = ScriptedModel.start_in_thread(echo)
    try:
        yield threaded
    finally:
        threaded.stop()
    if threaded.model.policy_errors:
        raise PolicyFailed(threaded.model.policy_errors)


@pytest.fixture
def scripted_model_env(
    scripted_model_thread: ThreadedScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> ThreadedScriptedModel:
    """``scripted_model_thread`` with ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` set to it."""
    monkeypatch.setenv("OPENAI_BASE_URL", scripted_model_thread.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "scripted")
    return scripted_model_thread
