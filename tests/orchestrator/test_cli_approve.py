"""``memgrid send`` shows an approval request; ``memgrid approve`` answers it (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.scripted import ScriptedModel, ThreadedScriptedModel
from tests._util import approval_policy

_MAKE_AGENT = """
import anyio
from agents.manage import AgentSpec, BlockSpec, create_agent
from orchestrator.runtime import open_runtime
from storage.records import RequiresApproval

async def main() -> None:
    async with open_runtime() as rt:
        await create_agent(rt, AgentSpec(
            name="careful",
            model="openai/scripted",
            memory_blocks=[BlockSpec(label="human", value="")],
            tool_rules=[RequiresApproval(tool_name="core_memory_append")],
        ))

anyio.run(main)
"""


@pytest.fixture
def served() -> Iterator[ThreadedScriptedModel]:
    with ScriptedModel.start_in_thread(approval_policy) as model:
        yield model


@pytest.fixture
def env(redis_url: str, served: ThreadedScriptedModel, tmp_path: Path) -> dict[str, str]:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    env = {
        **os.environ,
        "MEMGRID_REDIS_URL": redis_url,
        "MEMGRID_HOME": str(tmp_path / "home"),
        "OPENAI_BASE_URL": served.base_url,
        "OPENAI_API_KEY": "test-key",
        "MEMGRID_EMBEDDING": "hashing/384",
    }
    made = _run(env, "-c", _MAKE_AGENT)
    assert made.returncode == 0, made.stderr
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _memgrid(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _run(env, "-m", "orchestrator.cli", *args)


def _human(env: dict[str, str]) -> str:
    shown = _memgrid(env, "agents", "show", "careful", "--json")
    assert shown.returncode == 0, shown.stderr
    [block] = json.loads(shown.stdout)["blocks"]
    value: str = block.get("value", "")  # an empty value is left out
    return value


def test_send_shows_the_request_and_approve_runs_it(env: dict[str, str]) -> None:
    sent = _memgrid(env, "send", "careful", "remember that I like tea")
    assert sent.returncode == 0, sent.stderr
    assert "-> waiting for approval: core_memory_append(" in sent.stdout
    assert "(memgrid approve careful | --deny)" in sent.stdout
    assert "[stop: requires_approval]" in sent.stdout
    assert _human(env) == ""

    approved = _memgrid(env, "approve", "careful")
    assert approved.returncode == 0, approved.stderr
    assert "approving core_memory_append" in approved.stdout
    assert "<- ok: Appended to block 'human'" in approved.stdout
    assert "agent: after approval: Appended to block 'human'" in approved.stdout
    assert _human(env) == "likes tea"

    again = _memgrid(env, "approve", "careful")
    assert again.returncode == 2
    assert "careful is not waiting for an approval" in again.stderr
    assert "Traceback" not in again.stderr


def test_deny_with_a_reason_as_json(env: dict[str, str]) -> None:
    assert _memgrid(env, "send", "careful", "remember that I like tea").returncode == 0
    denied = _memgrid(env, "approve", "careful", "--deny", "--reason", "not now", "--json")
    assert denied.returncode == 0, denied.stderr
    response = json.loads(denied.stdout)
    returned = next(m for m in response["messages"] if m["message_type"] == "tool_return_message")
    assert returned["status"] == "error"
    replies = [
        m["content"] for m in response["messages"] if m["message_type"] == "assistant_message"
    ]
    assert replies == ["after approval: the user denied the call to core_memory_append: not now"]
    assert response["stop_reason"]["stop_reason"] == "end_turn"
    assert _human(env) == ""
