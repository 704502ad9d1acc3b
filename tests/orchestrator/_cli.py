"""The CLI as a user runs it: real subprocesses, real Redis, the scripted model over HTTP.

``memgrid`` (from :mod:`tests._util`) runs the command; ``env`` is the shell it runs in."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agents.scripted import (
    ChatRequest,
    Outcome,
    Policy,
    ScriptedModel,
    ThreadedScriptedModel,
    say,
    text,
    tool_call,
)
from tests._cluster import sync_client
from tests._util import memgrid

__all__ = ("cli_env", "env", "memgrid", "name_policy", "served", "served_by")


def name_policy(request: ChatRequest) -> Outcome:
    """Learns and corrects the user's name, like the course's memory agent."""
    last = request.last_message
    said = last.text if last is not None else ""
    if last is not None and last.role == "tool":
        return say("Noted!")
    if any(m.role == "user" and "call a ghost" in m.text for m in request.messages):
        return tool_call("ghost_tool", request_heartbeat=True)  # invalid in every step
    if '"type": "heartbeat"' in said:
        return say("Got it, I will remember that.")
    if "my name is actually" in said.lower():
        new = said.rsplit(" ", 1)[-1].strip(".!")
        old = request.system_prompt.split("Name: ", 1)[1].split()[0]
        return tool_call(
            "core_memory_replace",
            label="human",
            old_content=f"Name: {old}",
            new_content=f"Name: {new}",
            request_heartbeat=True,
        )
    if "my name is" in said.lower():
        name = said.rsplit(" ", 1)[-1].strip(".!")
        return tool_call(
            "core_memory_append", label="human", content=f"Name: {name}", request_heartbeat=True
        )
    if not request.offers("send_message"):  # a letta_v1 agent answers in plain text
        return text(f"You said: {said}")
    return say(f"You said: {said}")


def served_by(policy: Policy) -> Callable[[], Iterator[ThreadedScriptedModel]]:
    """A ``served`` fixture: the scripted model on a thread of its own, answering ``policy``
    (a test module overrides the default with ``served = served_by(its_policy)``)."""

    @pytest.fixture
    def served() -> Iterator[ThreadedScriptedModel]:
        with ScriptedModel.start_in_thread(policy) as model:
            yield model

    return served


served = served_by(name_policy)


@pytest.fixture
def env(redis_url: str, served: ThreadedScriptedModel, tmp_path: Path) -> dict[str, str]:
    return cli_env(redis_url, served.base_url, tmp_path / "home")


def cli_env(redis_url: str, model_url: str, home: Path, **extra: str) -> dict[str, str]:
    """This environment pointed at ``redis_url`` (flushed now) and the model at ``model_url``,
    hashing embeddings, ``MEMGRID_HOME=home``, and ``extra``."""
    client = sync_client(redis_url)
    client.flushall()
    client.close()
    return {
        **os.environ,
        "MEMGRID_REDIS_URL": redis_url,
        "MEMGRID_HOME": str(home),
        "OPENAI_BASE_URL": model_url,
        "OPENAI_API_KEY": "test-key",
        "MEMGRID_EMBEDDING": "hashing/384",
        **extra,
    }
