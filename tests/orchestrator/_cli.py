"""The CLI as a user runs it: real subprocesses, real Redis, the scripted model over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.scripted import (
    ChatRequest,
    Outcome,
    ScriptedModel,
    ThreadedScriptedModel,
    say,
    tool_call,
)


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
    return say(f"You said: {said}")


@pytest.fixture
def served() -> Iterator[ThreadedScriptedModel]:
    with ScriptedModel.start_in_thread(name_policy) as model:
        yield model


def memgrid(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``memgrid ARGS`` as a user runs it: a subprocess with ``env`` and no terminal."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def env(redis_url: str, served: ThreadedScriptedModel, tmp_path: Path) -> dict[str, str]:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    return {
        **os.environ,
        "MEMGRID_REDIS_URL": redis_url,
        "MEMGRID_HOME": str(tmp_path / "home"),
        "OPENAI_BASE_URL": served.base_url,
        "OPENAI_API_KEY": "test-key",
        "MEMGRID_EMBEDDING": "hashing/384",
    }
