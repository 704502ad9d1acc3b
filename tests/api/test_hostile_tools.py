"""Hostile tools registered over the REST API, called by an agent, run by the server's worker.

The server runs as root (as in CI) with ``MEMGRID_SANDBOX_NETWORK=api``, a 3 s wall clock,
32 processes per call, and 256 MB for the two memory bombs (per-tool limits). Each hostile
tool must come back to the model as a tool error naming the limit (or be contained silently),
leave the host as it was (the tool user's process count and free memory back to baseline),
and the same agent must answer the next message.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from agents._sandbox_host import count_processes
from agents.sandbox import limit_violations
from agents.scripted import ChatRequest, Outcome, ScriptedModel, say, tool_call
from orchestrator.api import ApiSettings
from tests._util import readable_folder
from tests.agents.test_sandbox_isolation import (
    _MEMORY_SLACK_MB,
    BOMB,
    DETACHED,
    ESCAPE,
    SNOOP,
    SPREAD_MEMORY,
    _back_to,
    _gone,
    _greeter,
    _kill_uid,
    _mem_available_mb,
)
from tests.api.conftest import loopback_socket, make_agent, model_env, say_to, serve_api

TOOLS = {
    "endless_loop": "def endless_loop():\n    while True:\n        pass\n",
    "memory_bomb": "def memory_bomb():\n    return len(bytearray(4 * 1024**3))\n",
    "fork_bomb": BOMB.replace("def tool(", "def fork_bomb("),
    "spread_memory": SPREAD_MEMORY.replace("def tool(", "def spread_memory("),
    "detached": DETACHED.replace("def tool(", "def detached("),
    "snoop": SNOOP.replace("def tool(", "def snoop("),
    "escape": ESCAPE.replace("def tool(", "def escape("),
    "many_files": "def many_files():\n    return len([open('/dev/null') for _ in range(5000)])\n",
    "reach": (
        "def reach(other: int):\n    import socket\n    try:\n"
        "        socket.create_connection(('127.0.0.1', other), timeout=2).close()\n"
        "        return 'connected'\n    except OSError as exc:\n"
        "        return type(exc).__name__\n"
    ),
    "reach_api": (
        "def reach_api():\n    import os, urllib.request\n"
        "    url = os.environ['MEMGRID_API_URL'] + '/v1/tools/'\n"
        "    with urllib.request.urlopen(url, timeout=5) as response:\n"
        "        return response.status\n"
    ),
    "roll_dice": "def roll_dice(sides: int):\n    return f'rolled {sides}'\n",
}


def _policy(request: ChatRequest) -> Outcome:
    """The user message is ``{"tool": name, "args": {...}}``: call it, then report its result."""
    try:
        wanted = json.loads(request.last_user_text or "")
    except ValueError:
        wanted = None
    if isinstance(wanted, dict) and "tool" in wanted and request.last_role == "user":
        return tool_call(wanted["tool"], wanted.get("args", {}), request_heartbeat=True)
    result = request.last_tool_result  # the tool's answer, or a heartbeat after it
    return say(f"{result.name} said: {result.content}" if result else "nothing to do")


@pytest.fixture
def secret_home() -> Iterator[Path]:
    """``MEMGRID_HOME`` outside /tmp (the sandbox replaces /tmp anyway), world-readable."""
    with readable_folder(".memgrid-home-hostile-") as folder:
        (folder / "canary.txt").write_text("canary-home-91c2")
        (folder / "canary.txt").chmod(0o644)
        yield folder


@pytest.fixture
async def client(
    redis_client: aioredis.Redis,
    redis_url: str,
    secret_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    default_tool_env: str,
) -> AsyncIterator[httpx.AsyncClient]:
    sock = loopback_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with ScriptedModel.serve(_policy) as model:
        model_env(monkeypatch, model.base_url)
        for name, value in {
            "OPENAI_API_KEY": "sk-server-secret-5d1e",
            "MEMGRID_HOME": str(secret_home),
            "MEMGRID_API_URL": url,
            "MEMGRID_SANDBOX_NETWORK": "api",
            "MEMGRID_SANDBOX_TIMEOUT_S": "3",
            "MEMGRID_SANDBOX_MAX_PROCESSES": "32",
            "MEMGRID_SANDBOX_TOOL_LIMITS": (
                '{"memory_bomb": {"memory_mb": 256}, "spread_memory": {"memory_mb": 256}}'
            ),
        }.items():
            monkeypatch.setenv(name, value)
        settings = ApiSettings(redis_url=redis_url, run_timeout_s=30)
        async with (
            serve_api(settings, sock),
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            yield http


async def _call(client: httpx.AsyncClient, agent_id: str, tool: str, **args: Any) -> dict[str, Any]:
    result = await say_to(client, agent_id, json.dumps({"tool": tool, "args": args}))
    returns = [
        m
        for m in result["messages"]
        if m["message_type"] == "tool_return_message" and m["name"] == tool
    ]
    assert len(returns) == 1, result["messages"]
    reply: dict[str, Any] = returns[0]
    return reply


def _message(reply: dict[str, Any]) -> str:
    text: str = json.loads(reply["tool_return"])["message"]
    return text


@pytest.mark.timeout(120)
async def test_hostile_tools_are_contained_through_the_api(
    client: httpx.AsyncClient, secret_home: Path
) -> None:
    for source in TOOLS.values():
        created = await client.put("/v1/tools/", json={"source_code": textwrap.dedent(source)})
        assert created.status_code == 200, created.text
    agent = await make_agent(client, tools=list(TOOLS))
    tool_uid = pwd.getpwnam("memgrid-tool").pw_uid
    baseline = count_processes(tool_uid)
    memory = _mem_available_mb()
    counted = limit_violations()
    try:
        await _contained(client, agent["id"], secret_home)
        await _back_to(tool_uid, baseline)
        assert _mem_available_mb() > memory - _MEMORY_SLACK_MB
    finally:
        _kill_uid(tool_uid)
    now = limit_violations()  # what the worker's health record reports
    for limit in ("timeout_s", "memory_mb", "max_processes", "max_open_files"):
        assert now.get(limit, 0) > counted.get(limit, 0), (limit, now)


async def _contained(client: httpx.AsyncClient, agent_id: str, home: Path) -> None:
    async def still_serving() -> None:
        assert _message(await _call(client, agent_id, "roll_dice", sides=20)) == "rolled 20"

    loop = await _call(client, agent_id, "endless_loop")
    assert loop["status"] == "error"
    assert _message(loop).endswith("timed out after 3s (sandbox limit timeout_s=3)")
    await still_serving()

    bomb = await _call(client, agent_id, "memory_bomb")
    assert bomb["status"] == "error"
    assert "(sandbox limit memory_mb=256)" in _message(bomb)  # the tool's own limit

    spread = await _call(client, agent_id, "spread_memory")  # 8 x 150 MB over 8 processes
    assert spread["status"] == "error"
    assert _message(spread).startswith("the tool's processes together ran out of memory")

    forks = await _call(client, agent_id, "fork_bomb")
    assert forks["status"] == "error"
    assert "(sandbox limit max_processes=32)" in _message(forks)
    await still_serving()

    detached = await _call(client, agent_id, "detached")
    assert detached["status"] == "success", _message(detached)
    assert await _gone(int(_message(detached)))

    snooped = await _call(client, agent_id, "snoop", server_pid=os.getpid(), home=str(home))
    seen = json.loads(_message(snooped))
    assert seen["server_env"] == "PermissionError"
    assert seen["canary"] == "FileNotFoundError"
    assert "sk-server-secret" not in _message(snooped)
    assert "canary-home" not in _message(snooped)

    token = f"memgrid-escape-{os.urandom(4).hex()}"
    targets = [str(home / token), f"/tmp/{token}", f"/var/tmp/{token}", str(Path.cwd() / token)]
    await _call(client, agent_id, "escape", targets=targets)
    assert [t for t in targets if await asyncio.to_thread(os.path.exists, t)] == []

    files = await _call(client, agent_id, "many_files")
    assert files["status"] == "error"
    assert "(sandbox limit max_open_files=256)" in _message(files)

    async with _greeter(b"other") as other:
        reached = await _call(client, agent_id, "reach", other=other)
    assert _message(reached) == "ConnectionRefusedError"
    api = await _call(client, agent_id, "reach_api")  # the relay lets the API through
    assert (api["status"], _message(api)) == ("success", "200")
    await still_serving()
