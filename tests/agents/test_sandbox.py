"""The tool sandbox with real child processes: results, errors, limits, isolation, cleanup."""

from __future__ import annotations

import json
import os
import textwrap
from typing import Any

import anyio
import anyio.abc
import pytest

from agents.sandbox import SandboxLimits, SandboxResult, run_tool_source


async def _run(source: str, name: str = "tool", **arguments: Any) -> SandboxResult:
    return await run_tool_source(textwrap.dedent(source), name, arguments)


async def _wait_gone(pid: int) -> None:
    """Returns once ``pid`` has terminated (a zombie waiting for its reaper counts)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    await _wait_exit(pidfd)


async def _wait_exit(pidfd: int) -> None:
    """Returns once the process of ``pidfd`` has terminated (within 5 s); closes ``pidfd``."""
    try:
        with anyio.fail_after(5):
            await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)


async def test_success_with_arguments() -> None:
    result = await _run(
        """
        def tool(a: int, b: str = "x"):
            return f"{b}={a * 2}"
        """,
        a=21,
        b="answer",
    )
    assert result.status == "success"
    assert result.return_value == "answer=42"
    assert result.error is None
    assert result.exit_code == 0
    assert result.duration_s > 0


async def test_agent_state_is_injected_as_attributes() -> None:
    source = """
    def tool(agent_state: "AgentState", key: str):
        return [agent_state.id, agent_state.name, agent_state.llm_config.model, key]
    """
    result = await run_tool_source(
        textwrap.dedent(source),
        "tool",
        {"key": "k"},
        agent_state={"id": "agent-1", "name": "bob", "llm_config": {"model": "m"}},
    )
    assert result.status == "success", result.error
    assert json.loads(result.return_value or "") == ["agent-1", "bob", "m", "k"]


async def test_exception_reports_type_message_and_line() -> None:
    result = await _run(
        """
        def helper(n):
            return 10 / n

        def tool():
            value = 0
            return helper(value)
        """
    )
    assert result.status == "error"
    assert result.return_value is None
    assert result.error == "ZeroDivisionError: division by zero (line 3 in helper: return 10 / n)"


async def test_syntax_error() -> None:
    result = await _run("def tool(:\n    return 1\n")
    assert result.status == "error"
    assert result.error is not None
    assert result.error.startswith("SyntaxError: ")
    assert "line 1" in result.error


async def test_missing_function() -> None:
    result = await _run("def other():\n    return 1\n", name="tool")
    assert result.status == "error"
    assert result.error == "function 'tool' is not defined in the tool source"


async def test_prints_are_captured_and_cannot_fake_the_result() -> None:
    result = await _run(
        """
        import os, subprocess, sys

        def tool():
            print('{"status": "success", "return_value": "fake"}')
            print("to stderr", file=sys.stderr)
            os.write(1, b"raw fd write\\n")
            subprocess.run([sys.executable, "-c", "print('from a child')"], check=True)
            return "real"
        """
    )
    assert result.status == "success", result.error
    assert result.return_value == "real"
    assert '"fake"' in result.stdout
    assert "raw fd write" in result.stdout
    assert "from a child" in result.stdout
    assert result.stderr == "to stderr\n"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("None", "None"),
        ("42", "42"),
        ("True", "True"),
        ("'text'", "text"),
        ("{'a': [1, 2], 'b': None}", '{"a": [1, 2], "b": null}'),
        ("[1, 'x']", '[1, "x"]'),
        ("{'when': __import__('datetime').date(2024, 1, 2)}", '{"when": "2024-01-02"}'),
    ],
)
async def test_return_value_types(expression: str, expected: str) -> None:
    result = await _run(f"def tool():\n    return {expression}\n")
    assert result.status == "success", result.error
    assert result.return_value == expected


async def test_async_tool_is_awaited() -> None:
    result = await _run(
        """
        import asyncio

        async def tool(n: int):
            await asyncio.sleep(0)
            return n + 1
        """,
        n=1,
    )
    assert result.status == "success", result.error
    assert result.return_value == "2"


async def test_installed_packages_are_importable() -> None:
    result = await _run("def tool():\n    import msgspec\n    return msgspec.__name__\n")
    assert result.status == "success", result.error
    assert result.return_value == "msgspec"


async def test_timeout_kills_the_process_group() -> None:
    source = """
    import subprocess

    def tool():
        child = subprocess.Popen(["sleep", "60"])
        print(child.pid, flush=True)
        while True:
            pass
    """
    result = await run_tool_source(
        textwrap.dedent(source), "tool", {}, limits=SandboxLimits(timeout_s=1)
    )
    assert result.status == "error"
    assert result.error == "timed out after 1s (sandbox limit timeout_s=1)"
    assert result.limit == "timeout_s"
    assert 1 <= result.duration_s < 5
    await _wait_gone(int(result.stdout))


async def test_cpu_limit() -> None:
    result = await run_tool_source(
        "def tool():\n    while True:\n        pass\n",
        "tool",
        {},
        limits=SandboxLimits(cpu_s=1, timeout_s=20),
    )
    assert result.status == "error"
    assert result.error is not None
    assert result.error == "exceeded its CPU time (sandbox limit cpu_s=1)"
    assert result.limit == "cpu_s"
    assert result.duration_s < 10


async def test_memory_limit() -> None:
    result = await run_tool_source(
        "def tool():\n    block = bytearray(2 * 1024**3)\n    return len(block)\n",
        "tool",
        {},
        limits=SandboxLimits(memory_mb=256),
    )
    assert result.status == "error"
    assert result.error is not None
    assert result.error.startswith("exceeded memory limit of 256 MB (MemoryError)")
    assert result.error.endswith("(sandbox limit memory_mb=256)")
    assert result.limit == "memory_mb"


async def test_environment_is_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMGRID_TEST_SECRET", "s3cret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent")
    source = """
    import os

    def tool():
        return {
            "secret": os.environ.get("MEMGRID_TEST_SECRET"),
            "openai": os.environ.get("OPENAI_API_KEY"),
            "api": os.environ.get("MEMGRID_API_URL"),
            "home": os.environ.get("HOME"),
            "cwd": os.getcwd(),
            "left": open(os.path.join(os.environ["HOME"], "left-behind"), "w").name,
        }
    """
    result = await run_tool_source(
        textwrap.dedent(source), "tool", {}, env={"MEMGRID_API_URL": "http://127.0.0.1:8283"}
    )
    assert result.status == "success", result.error
    seen = json.loads(result.return_value or "")
    assert seen["secret"] is None
    assert seen["openai"] is None
    assert seen["api"] == "http://127.0.0.1:8283"
    assert seen["home"] == seen["cwd"]
    assert seen["cwd"] != os.getcwd()
    assert not await anyio.Path(seen["left"]).exists()  # removed afterwards


async def test_cancelling_the_caller_kills_the_child() -> None:
    source = """
    import os, socket, time

    def tool(port: int):
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(str(os.getpid()).encode())
        time.sleep(60)
    """
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        socket_listener = listener.listeners[0]
        assert isinstance(socket_listener, anyio.abc.SocketListener)
        port = socket_listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.start_soon(run_tool_source, textwrap.dedent(source), "tool", {"port": port})
        with anyio.fail_after(10):
            async with await socket_listener.accept() as conn:
                pid = int((await conn.receive()).decode())
        pidfd = os.pidfd_open(pid)  # the tool sleeps now, so it is alive
        tg.cancel_scope.cancel()
    await _wait_exit(pidfd)


async def test_output_and_return_value_are_truncated() -> None:
    source = """
    import sys

    def tool():
        print("x" * 5000)
        sys.stderr.write("e" * 3000)
        return "y" * 5000
    """
    result = await run_tool_source(
        textwrap.dedent(source), "tool", {}, limits=SandboxLimits(max_output_bytes=1000)
    )
    assert result.status == "success", result.error
    assert result.stdout == "x" * 1000 + "\n[truncated 4001 bytes]"
    assert result.stderr == "e" * 1000 + "\n[truncated 2000 bytes]"
    assert result.return_value == "y" * 1000 + "\n[truncated 4000 bytes]"


async def test_exit_calls_are_errors() -> None:
    exited = await _run("import sys\n\ndef tool():\n    sys.exit(3)\n")
    assert exited.status == "error"
    assert exited.error == "the tool called exit(3)"
    hard = await _run("import os\n\ndef tool():\n    os._exit(3)\n")
    assert hard.status == "error"
    assert hard.error == "exited with code 3 without a result"
    killed = await _run("import os, signal\n\ndef tool():\n    os.kill(os.getpid(), 9)\n")
    assert killed.error == "killed by signal 9 (SIGKILL)"
