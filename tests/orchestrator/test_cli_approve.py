"""``memgrid send`` shows an approval request; ``memgrid approve`` answers it (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agents.scripted import ThreadedScriptedModel
from tests._util import approval_policy
from tests.orchestrator._cli import cli_env, memgrid, served_by

_MAKE_AGENT = """
import anyio
from agents.manage import AgentSpec, BlockSpec, create_agent
from orchestrator.bootstrap import open_runtime
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


served = served_by(approval_policy)


@pytest.fixture
def env(redis_url: str, served: ThreadedScriptedModel, tmp_path: Path) -> dict[str, str]:
    env = cli_env(redis_url, served.base_url, tmp_path / "home")
    made = subprocess.run(
        [sys.executable, "-c", _MAKE_AGENT], env=env, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    return env


def _human(env: dict[str, str]) -> str:
    shown = memgrid(env, "agents", "show", "careful", "--json")
    assert shown.returncode == 0, shown.stderr
    [block] = json.loads(shown.stdout)["blocks"]
    value: str = block.get("value", "")  # an empty value is left out
    return value


# The two steps: memgrid's arguments, what it prints, and the human block after it.
_SEND_THEN_APPROVE = [
    (
        ("send", "careful", "remember that I like tea"),
        (
            "-> waiting for approval: core_memory_append(",
            "(memgrid approve careful | --deny)",
            "[stop: requires_approval]",
        ),
        "",
    ),
    (
        ("approve", "careful"),
        (
            "approving core_memory_append",
            "<- ok: Appended to block 'human'",
            "agent: after approval: Appended to block 'human'",
        ),
        "likes tea",
    ),
]


def test_send_shows_the_request_and_approve_runs_it(env: dict[str, str]) -> None:
    for args, lines, human in _SEND_THEN_APPROVE:
        done = memgrid(env, *args)
        assert done.returncode == 0, done.stderr
        for line in lines:
            assert line in done.stdout, (args, done.stdout)
        assert _human(env) == human, args

    again = memgrid(env, "approve", "careful")
    assert again.returncode == 2
    assert "careful is not waiting for an approval" in again.stderr
    assert "Traceback" not in again.stderr


def test_deny_with_a_reason_as_json(env: dict[str, str]) -> None:
    assert memgrid(env, "send", "careful", "remember that I like tea").returncode == 0
    denied = memgrid(env, "approve", "careful", "--deny", "--reason", "not now", "--json")
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
