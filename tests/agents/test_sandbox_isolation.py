"""Hostile tools against the sandbox's isolation, with real child processes, as root.

Every fork bomb here runs with a cap the test checks first (a pids cgroup, or RLIMIT_NPROC for
an unprivileged tool user), a wall-clock bound, and a kill of what is left in ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgspec
import pytest

from agents._sandbox_host import count_processes, probe
from agents.runtime import Runtime
from agents.sandbox import (
    Isolation,
    SandboxLimits,
    SandboxResult,
    SandboxSettings,
    default_isolation,
    limit_violations,
    run_tool_source,
)
from agents.worker import Worker, WorkerSettings
from bus import keys as bus_keys
from tests._util import readable_folder


async def _run(source: str, *, limits: SandboxLimits | None = None, **kw: Any) -> SandboxResult:
    arguments = kw.pop("arguments", {})
    return await run_tool_source(
        textwrap.dedent(source), "tool", arguments, limits=limits or SandboxLimits(), **kw
    )


# Other work shares the machine: free memory may drift by this much without a tool's doing.
# A leftover memory bomb (4 GB here) would still show.
_MEMORY_SLACK_MB = 1024


def _mem_available_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no MemAvailable in /proc/meminfo")


async def _back_to(uid: int, baseline: int) -> None:
    """Waits until ``uid`` runs no more processes than ``baseline`` (5 s deadline)."""
    with anyio.fail_after(5):
        # No event tells when another user's processes are reaped: poll, with the deadline.
        while count_processes(uid) > baseline:  # noqa: ASYNC110
            await anyio.sleep(0.05)


def _kill_uid(uid: int) -> None:
    """Last-resort cleanup of a failed test: kills whatever the tool user still runs."""
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if entry.stat().st_uid == uid:
                        os.kill(int(entry.name), signal.SIGKILL)


async def _gone(pid: int) -> bool:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        with anyio.move_on_after(5):
            await anyio.wait_readable(pidfd)
            return True
        return False
    finally:
        os.close(pidfd)


async def _capped() -> list[Isolation]:
    """The isolations whose fork-bomb cap holds here: the probed one (a pids cgroup) and the
    fallback without a cgroup (an unprivileged user under RLIMIT_NPROC)."""
    probed = await default_isolation()
    assert os.geteuid() == 0, "these tests prove the caps hold for root; run them as root"
    assert probed.cgroup is not None, "the CI host offers a pids cgroup"
    assert probed.uid is not None
    fallback = Isolation(uid=probed.uid, gid=probed.gid, mountns=probed.mountns)
    return [probed, fallback]


FORK_300 = """
import os, time

def tool():
    pids = []
    try:
        for _ in range(300):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            pids.append(pid)
    finally:
        for pid in pids:
            os.kill(pid, 9)
    return len(pids)
"""


async def test_a_tool_cannot_start_300_processes() -> None:
    result = await _run(FORK_300, limits=SandboxLimits(timeout_s=20))
    assert result.status == "error", "300 forks were allowed"
    assert result.limit == "max_processes"
    assert result.error is not None
    assert result.error.endswith("(sandbox limit max_processes=64)")


BOMB = """
import os, time

def tool():
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.01)
"""


@pytest.mark.timeout(60)
async def test_unbounded_fork_bomb_is_contained_and_the_host_recovers() -> None:
    before = limit_violations().get("max_processes", 0)
    for isolation in await _capped():
        assert isolation.uid is not None
        baseline = count_processes(isolation.uid)
        memory = _mem_available_mb()
        try:
            limits = SandboxLimits(timeout_s=3, max_processes=32)
            result = await _run(BOMB, limits=limits, isolation=isolation)
            assert result.status == "error"
            assert result.error is not None
            if isolation.cgroup is not None:
                assert result.limit == "max_processes", result.error
                assert "timed out after 3s" in result.error
            else:  # RLIMIT_NPROC leaves no record of refused forks: the wall clock ends it
                assert result.limit == "timeout_s", result.error
            await _back_to(isolation.uid, baseline)
            assert _mem_available_mb() > memory - _MEMORY_SLACK_MB
        finally:
            _kill_uid(isolation.uid)
    assert limit_violations().get("max_processes", 0) > before


DETACHED = """
import os, time

def tool():
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(w, str(os.getpid()).encode())
            time.sleep(60)
        os._exit(0)
    os.close(w)
    return int(os.read(r, 32))
"""


async def test_a_detached_grandchild_does_not_outlive_the_call() -> None:
    result = await _run(DETACHED)
    assert result.status == "success", result.error
    grandchild = int(result.return_value or "0")
    try:
        assert await _gone(grandchild), "the setsid grandchild outlived the call"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(grandchild, signal.SIGKILL)


SNOOP = """
import os

def tool(server_pid: int, home: str):
    found = {"uid": os.getuid(), "env": dict(os.environ)}
    paths = {
        "server_env": "/proc/%d/environ" % server_pid,
        "canary": os.path.join(home, "canary.txt"),
        "shadow": "/etc/shadow",
    }
    for name, path in paths.items():
        try:
            with open(path, "rb") as f:
                found[name] = f.read().decode("utf-8", "replace")
        except OSError as exc:
            found[name] = type(exc).__name__
    try:
        found["home_listing"] = os.listdir(home)
    except OSError as exc:
        found["home_listing"] = type(exc).__name__
    return found
"""


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A world-readable folder outside /tmp (which the sandbox replaces anyway)."""
    with readable_folder(".memgrid-home-test-") as folder:
        yield folder


async def test_a_tool_cannot_read_the_servers_environment_or_home(outside_tmp: Path) -> None:
    home = outside_tmp
    (home / "canary.txt").write_text("canary-7f3a")
    (home / "canary.txt").chmod(0o644)  # even world-readable files in the home stay hidden
    result = await _run(SNOOP, arguments={"server_pid": os.getpid(), "home": str(home)},
                        hide=(str(home),))  # fmt: skip
    assert result.status == "success", result.error
    seen = json.loads(result.return_value or "{}")
    assert "canary-7f3a" not in (result.return_value or "")
    assert "OPENAI_API_KEY" not in seen["env"]
    assert seen["uid"] != 0
    assert seen["server_env"] == "PermissionError"
    assert seen["shadow"] == "PermissionError"
    assert seen["canary"] == "FileNotFoundError"
    # An empty tmpfs covers MEMGRID_HOME; under /tmp (a CI clone there) it is simply not in
    # the call's private /tmp. Either way the tool sees none of it.
    assert seen["home_listing"] in ([], "FileNotFoundError")


ESCAPE = """
import os

def tool(targets: list):
    wrote = []
    for path in targets:
        try:
            with open(path, "w") as f:
                f.write("escaped")
            wrote.append(path)
        except OSError:
            pass
    return wrote
"""


async def test_writes_outside_the_private_tmp_do_not_reach_the_host(tmp_path: Path) -> None:
    token = f"memgrid-escape-{os.getpid()}-{os.urandom(4).hex()}"
    home = tmp_path / "home"
    home.mkdir()
    targets = [
        str(home / token),
        str(Path.cwd() / token),
        f"/tmp/{token}",
        f"/var/tmp/{token}",
        f"/dev/shm/{token}",
        f"/etc/{token}",
        f"/{token}",
    ]
    try:
        result = await _run(ESCAPE, arguments={"targets": targets}, hide=(str(home),))
        assert result.status == "success", result.error
        wrote = json.loads(result.return_value or "[]")
        assert set(wrote) <= {f"/tmp/{token}", f"/var/tmp/{token}", f"/dev/shm/{token}"}
        assert [t for t in targets if await anyio.Path(t).exists()] == []
    finally:
        for target in targets:
            with contextlib.suppress(OSError):
                os.unlink(target)


async def test_thousands_of_open_files_hit_the_descriptor_limit() -> None:
    source = """
    def tool():
        files = [open("/dev/null") for _ in range(5000)]
        return len(files)
    """
    result = await _run(source)
    assert result.status == "error"
    assert result.limit == "max_open_files"
    assert result.error is not None
    assert result.error.startswith("OSError: [Errno 24] Too many open files")
    assert result.error.endswith("(sandbox limit max_open_files=256)")


REACH = """
import os, socket, urllib.parse

def tool(other: int):
    api = urllib.parse.urlsplit(os.environ["MEMGRID_API_URL"])
    found = {}
    for name, address in {"api": (api.hostname, api.port), "other": ("127.0.0.1", other)}.items():
        try:
            with socket.create_connection(address, timeout=3) as conn:
                found[name] = conn.recv(16).decode()
        except OSError as exc:
            found[name] = type(exc).__name__
    return found
"""


@contextlib.asynccontextmanager
async def _greeter(greeting: bytes) -> AsyncIterator[int]:
    """A TCP listener on loopback that says ``greeting`` to each connection; yields its port."""

    async def greet(conn: anyio.abc.SocketStream) -> None:
        async with conn:
            await conn.send(greeting)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, greet)
        inner = listener.listeners[0]
        assert isinstance(inner, anyio.abc.SocketListener)
        yield inner.extra(anyio.abc.SocketAttribute.local_port)
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        ("all", {"api": "api", "other": "other"}),
        ("api", {"api": "api", "other": "ConnectionRefusedError"}),
        ("none", {"api": "ConnectionRefusedError", "other": "ConnectionRefusedError"}),
    ],
)
async def test_network_policy(network: Any, expected: dict[str, str]) -> None:
    async with _greeter(b"api") as api_port, _greeter(b"other") as other_port:
        result = await _run(
            REACH,
            arguments={"other": other_port},
            env={"MEMGRID_API_URL": f"http://127.0.0.1:{api_port}/v1"},
            network=network,
        )
    assert result.status == "success", result.error
    assert json.loads(result.return_value or "{}") == expected


async def test_the_tool_user_is_created_on_first_use() -> None:
    name = f"mg-test-{os.urandom(3).hex()}"
    try:
        isolation = await anyio.to_thread.run_sync(probe, SandboxSettings(user=name, cgroup="off"))
        entry = pwd.getpwnam(name)
        assert isolation.uid == entry.pw_uid != 0
        assert entry.pw_shell.endswith("nologin")
        assert any("pids cgroup" in note for note in isolation.notes)
    finally:
        await anyio.run_process(["userdel", name], check=False)


async def test_the_worker_health_record_counts_limit_violations(runtime: Runtime) -> None:
    await _run("def tool():\n    while True:\n        pass\n", limits=SandboxLimits(timeout_s=0.5))
    worker = Worker(runtime, WorkerSettings(block_ms=50))
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        key = bus_keys.worker_health(worker.id)
        with anyio.fail_after(10):
            while not (raw := await runtime.redis.get(key)):  # noqa: ASYNC110 (no event)
                await anyio.sleep(0.02)
        worker.stop()
        worker.cancel()
    health = json.loads(raw)
    assert health["sandbox_limits"] == limit_violations()
    assert health["sandbox_limits"]["timeout_s"] >= 1


async def test_a_file_larger_than_the_limit_is_refused() -> None:
    source = """
    def tool():
        with open("big", "wb") as f:
            f.write(b"x" * (3 * 1024 * 1024))
    """
    result = await _run(source, limits=SandboxLimits(max_file_mb=1))
    assert result.status == "error"
    assert result.limit == "max_file_mb"
    assert result.error is not None
    assert result.error.startswith("OSError: [Errno 27] File too large")
    assert result.error.endswith("(sandbox limit max_file_mb=1)")


@pytest.mark.parametrize("network", ["all", "api"])
async def test_an_interpreter_that_cannot_start_raises_oserror(network: Any) -> None:
    with pytest.raises(FileNotFoundError):
        await _run(
            "def tool():\n    return 1\n",
            python="/nonexistent/python",
            network=network,
            env={"MEMGRID_API_URL": "http://127.0.0.1:9"},
        )


SPREAD_MEMORY = """
import os

def tool():
    children = []
    for _ in range(8):
        pid = os.fork()
        if pid == 0:
            block = b"x" * (150 * 1024 * 1024)  # touched, so it is resident
            os._exit(0 if block else 1)
        children.append(pid)
    return [os.waitpid(pid, 0)[1] for pid in children]
"""


async def test_memory_holds_for_the_call_not_per_process() -> None:
    isolation = await default_isolation()
    assert isolation.memory_cgroup is not None, "the CI host offers a memory cgroup"
    memory = _mem_available_mb()
    result = await _run(SPREAD_MEMORY, limits=SandboxLimits(memory_mb=256, timeout_s=20))
    assert result.status == "error", f"8 x 150 MB fit in 256 MB: {result.return_value}"
    assert result.limit == "memory_mb"
    assert result.error is not None
    assert result.error.startswith("the tool's processes together ran out of memory")
    assert result.error.endswith("(sandbox limit memory_mb=256)")
    assert _mem_available_mb() > memory - _MEMORY_SLACK_MB


def _linked_venv(venv: Path) -> Path:
    """A venv made of links to this one (no install); returns its interpreter."""
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(os.path.realpath(sys.executable))
    (venv / "pyvenv.cfg").write_text((Path(sys.prefix) / "pyvenv.cfg").read_text())
    lib = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    lib.mkdir(parents=True)
    site = Path(msgspec.__file__).parent.parent
    (lib / "site-packages").symlink_to(site)
    return venv / "bin" / "python"


async def test_an_interpreter_under_tmp_still_runs(tmp_path: Path) -> None:
    """A checkout (and its .venv) under /tmp, as CI clones may be, must not vanish under the
    call's private /tmp (pytest's folder under /tmp is 0700, too)."""
    venv = tmp_path / "venv"
    python = _linked_venv(venv)
    source = "def tool():\n    import sys, msgspec\n    return sys.prefix\n"
    result = await _run(source, python=str(python))
    assert result.status == "success", (result.error, result.stderr)
    assert result.return_value == str(venv)
