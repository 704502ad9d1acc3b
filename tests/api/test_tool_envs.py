"""Tools bring their dependencies: Letta's ``pip_requirements``, installed in a sandbox
environment built once per requirement set, through the real API, worker and sandbox.

The environments of this module live under its own ``MEMGRID_HOME`` outside ``/tmp`` (so the
sandbox must bind them back into the home it hides from tools); building one runs pip against
the package index, once per set for the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from agents._sandbox_host import exposed_paths
from agents.scripted import ChatRequest, Outcome, Policy, ScriptedModel, say, tool_call
from agents.tool_envs import READY, ToolEnvs
from orchestrator.api import ApiSettings
from tests._util import readable_folder
from tests.api.conftest import loopback_socket, make_agent, model_env, say_to, serve_api

REPO = Path(__file__).resolve().parents[2]
SIX = [{"name": "six", "version": "1.16.0"}]
BAD = [{"name": "memgrid-no-such-package-4f1c", "version": "1.0"}]
SIX_TOOL = (
    "def six_version() -> str:\n"
    '    """The versions of six and letta_client this tool imports."""\n'
    "    import six, letta_client\n"
    "    return f'six {six.__version__}, letta-client {letta_client.__version__}'\n"
)
BAD_TOOL = (
    "def needs_missing() -> str:\n"
    '    """Imports a package that does not exist."""\n'
    "    return 'unreachable'\n"
)


def _policy(request: ChatRequest) -> Outcome:
    """The user message names a tool: call it, then say what it returned."""
    text = request.last_user_text or ""
    if request.last_role == "user" and text.isidentifier():  # not the heartbeat after it
        return tool_call(text, {}, request_heartbeat=True)
    result = request.last_tool_result
    return say(f"{result.name}: {result.content}" if result else "nothing")


CALLBACK_TOOL = (
    "def my_name(agent_state) -> str:\n"
    '    """The name of this agent, asked of the API with letta-client."""\n'
    "    from letta_client import Letta\n"
    "    return Letta().agents.retrieve(agent_state.id).name\n"
)


@pytest.fixture
def policy() -> Policy:
    return _policy


@pytest.fixture(scope="module")
def shared_home() -> Iterator[Path]:
    """One ``MEMGRID_HOME`` for the module, outside /tmp, holding the environments."""
    with readable_folder(".memgrid-home-envs-") as folder:
        yield folder


@pytest.fixture
def memgrid_home(shared_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEMGRID_HOME", str(shared_home))
    monkeypatch.delenv("MEMGRID_SANDBOX_ENVS")  # the default: MEMGRID_HOME/sandbox-envs
    monkeypatch.delenv("MEMGRID_REDIS_URL", raising=False)
    return shared_home


async def _tool(client: httpx.AsyncClient, source: str, reqs: list[Any]) -> dict[str, Any]:
    response = await client.put(
        "/v1/tools/", json={"source_code": source, "pip_requirements": reqs}
    )
    assert response.status_code == 200, response.text
    tool: dict[str, Any] = response.json()
    return tool


def _tool_return(result: dict[str, Any]) -> dict[str, Any]:
    returns = [m for m in result["messages"] if m["message_type"] == "tool_return_message"]
    assert len(returns) == 2, result  # the tool's, then send_message's
    return returns[0]


@pytest.mark.timeout(300)
async def test_a_tools_requirements_are_installed_once_and_reused(
    client: httpx.AsyncClient, shared_home: Path
) -> None:
    tool = await _tool(client, SIX_TOOL, SIX)
    assert tool["pip_requirements"] == SIX
    fetched = (await client.get(f"/v1/tools/{tool['id']}")).json()
    assert fetched["pip_requirements"] == SIX
    agent = await make_agent(client, tool_ids=[tool["id"]])

    first = _tool_return(await say_to(client, agent["id"], "six_version"))
    assert first["status"] == "success", first
    assert json.loads(first["tool_return"])["message"] == "six 1.16.0, letta-client 1.12.1"
    envs = [p for p in (shared_home / "sandbox-envs").iterdir() if p.is_dir()]
    assert len(envs) == 1, envs
    marker = envs[0] / READY
    built_at = marker.stat().st_mtime_ns
    assert json.loads(marker.read_text()) == ["letta-client==1.12.1", "six==1.16.0"]

    # A second call, and another worker's builder on the same folder, reuse the environment.
    second = _tool_return(await say_to(client, agent["id"], "six_version"))
    assert json.loads(second["tool_return"])["message"] == "six 1.16.0, letta-client 1.12.1"
    started = time.perf_counter()
    other = ToolEnvs(shared_home / "sandbox-envs")
    assert await other.python_for(["six==1.16.0"]) == str(envs[0] / "bin" / "python")
    assert time.perf_counter() - started < 1
    assert other.builds == 0
    assert marker.stat().st_mtime_ns == built_at
    assert [p for p in (shared_home / "sandbox-envs").iterdir() if p.is_dir()] == envs


@pytest.mark.timeout(180)
async def test_a_package_pip_cannot_install_is_a_tool_error_naming_it(
    client: httpx.AsyncClient,
) -> None:
    tool = await _tool(client, BAD_TOOL, BAD)
    agent = await make_agent(client, tool_ids=[tool["id"]])
    result = await say_to(client, agent["id"], "needs_missing")
    returned = _tool_return(result)
    assert returned["status"] == "error"
    assert "memgrid-no-such-package-4f1c==1.0" in returned["tool_return"]
    assert "No matching distribution" in returned["tool_return"], returned
    # The agent carries on and said what happened.
    said = [m for m in result["messages"] if m["message_type"] == "assistant_message"]
    assert "No matching distribution" in said[-1]["content"]


@pytest.mark.parametrize(
    ("reqs", "field"),
    [
        ([{"name": "--index-url=http://evil"}], ["body", "pip_requirements[0]", "name"]),
        ([{"name": "six", "version": "1.0 --pre"}], ["body", "pip_requirements[0]", "version"]),
        ([{"name": "six"}, {"name": "git+https://x/y"}], ["body", "pip_requirements[1]", "name"]),
    ],
)
async def test_requirements_pip_would_misread_are_refused(
    client: httpx.AsyncClient, reqs: list[Any], field: list[str]
) -> None:
    response = await client.put(
        "/v1/tools/", json={"source_code": SIX_TOOL, "pip_requirements": reqs}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == field


@pytest.mark.timeout(120)
async def test_two_builders_of_one_set_build_it_once(tmp_path: Path) -> None:
    first, second = ToolEnvs(tmp_path, base=()), ToolEnvs(tmp_path, base=())
    found: list[str] = []
    async with anyio.create_task_group() as tg:
        for envs in (first, second):  # two workers' builders, each with its own locks
            tg.start_soon(_append, found, envs)
    assert len(found) == 2 and found[0] == found[1]
    assert first.builds + second.builds == 1
    check = await anyio.run_process([found[0], "-c", "import six; print(six.__version__)"])
    assert check.stdout.decode().strip() == "1.16.0"


async def _append(found: list[str], envs: ToolEnvs) -> None:
    found.append(await envs.python_for(["six==1.16.0"]))


def test_an_environment_under_a_hidden_home_is_bound_back_alone(tmp_path: Path) -> None:
    home = Path("/srv/memgrid-home-x")  # not under /tmp: that one is private as a whole
    python = str(home / "sandbox-envs" / "abc" / "bin" / "python")
    pairs = exposed_paths(python, ("/tmp",), False, (str(home),))
    assert (str(home), str(home / "sandbox-envs" / "abc")) in pairs
    in_tmp = str(tmp_path / "sandbox-envs" / "abc" / "bin" / "python")
    assert ("", str(tmp_path / "sandbox-envs" / "abc")) in exposed_paths(
        in_tmp, ("/tmp",), False, (str(tmp_path),)
    )


@pytest.mark.timeout(120)
async def test_a_tool_calls_back_with_letta_client_and_no_arguments(
    redis_client: aioredis.Redis,
    redis_url: str,
    memgrid_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    default_tool_env: str,
) -> None:
    """Under ``MEMGRID_API_KEY``, ``Letta()`` inside a tool finds the API and its key."""
    monkeypatch.setenv("MEMGRID_SANDBOX_ENVS", str(Path(default_tool_env).parents[2]))
    sock = loopback_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with ScriptedModel.serve(_policy) as model:
        model_env(monkeypatch, model.base_url)
        monkeypatch.setenv("MEMGRID_API_URL", url)
        monkeypatch.setenv("MEMGRID_API_KEY", "key-7d2e")
        settings = ApiSettings(redis_url=redis_url, api_key="key-7d2e", run_timeout_s=60)
        headers = {"Authorization": "Bearer key-7d2e"}
        async with (
            serve_api(settings, sock),
            httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client,
        ):
            tool = await _tool(client, CALLBACK_TOOL, [])
            agent = await make_agent(client, name="quinn", tool_ids=[tool["id"]])
            returned = _tool_return(await say_to(client, agent["id"], "my_name"))
    assert returned["status"] == "success", returned
    assert json.loads(returned["tool_return"])["message"] == "quinn"


@pytest.mark.timeout(120)
async def test_memgrid_serve_tells_its_embedded_workers_tools_where_it_is(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path, default_tool_env: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    async with ScriptedModel.serve(_policy) as model:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMGRID_", "OPENAI_"))}
        env.update(
            PYTHONPATH=str(REPO),
            MEMGRID_HOME=str(tmp_path / "home"),
            MEMGRID_REDIS_URL=redis_url,
            MEMGRID_SANDBOX_ENVS=str(Path(default_tool_env).parents[2]),
            MEMGRID_EMBEDDING="hashing/384",
            OPENAI_BASE_URL=model.base_url,
            OPENAI_API_KEY="test",
        )
        command = [sys.executable, "-m", "orchestrator.cli", "serve", "--port", str(port)]
        with (tmp_path / "serve.log").open("w+b") as log:
            async with await anyio.open_process(command, env=env, stdout=log, stderr=log) as proc:
                try:
                    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                        with anyio.fail_after(60):
                            while True:
                                with contextlib.suppress(httpx.TransportError):
                                    if (await client.get("/v1/health/")).status_code == 200:
                                        break
                                assert proc.returncode is None, log.read()
                                await anyio.sleep(0.2)
                        tool = await _tool(client, CALLBACK_TOOL, [])
                        agent = await make_agent(client, name="remy", tool_ids=[tool["id"]])
                        returned = _tool_return(await say_to(client, agent["id"], "my_name"))
                finally:
                    proc.terminate()
                    with anyio.move_on_after(30):
                        await proc.wait()
                    if proc.returncode is None:
                        proc.kill()
    assert returned["status"] == "success", returned
    assert json.loads(returned["tool_return"])["message"] == "remy"


async def test_without_the_default_environment_tools_still_run_on_memgrids_interpreter(
    tmp_path: Path,
) -> None:
    """A machine with no package index cannot build the default environment (letta-client):
    a tool that asks for nothing still runs, on memgrid's own interpreter; one that asks for
    packages is told it cannot have them."""
    from agents.sandbox import SandboxSettings
    from agents.tools.registry import SandboxRunner
    from storage.records import Agent, Tool

    envs = ToolEnvs(tmp_path / "envs", base=["memgrid-no-such-package-anywhere==0.0.1"])
    runner = SandboxRunner(SandboxSettings(), envs=envs)
    agent = Agent(id="agent-1", name="a", system="s", model="m", embedding="hashing/8")
    plain = Tool(
        id="tool-1",
        name="double",
        source_code=(
            "def double(x: int) -> int:\n"
            '    """Twice.\n\n    Args:\n        x: n\n    """\n'
            "    return 2 * x\n"
        ),
    )
    with anyio.fail_after(120):
        text, ok = await runner(plain, {"x": 21}, agent)
        assert ok and "42" in text, text
        needy = msgspec_replace(plain, pip_requirements=[{"name": "six", "version": "1.16.0"}])
        text, ok = await runner(needy, {"x": 1}, agent)
    assert not ok and "memgrid-no-such-package-anywhere" in text


def msgspec_replace(tool: Any, **fields: Any) -> Any:
    import msgspec

    from storage.records import Tool

    data = {**msgspec.to_builtins(tool), **fields}
    return msgspec.convert(data, Tool)
