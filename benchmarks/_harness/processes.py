"""Processes of a benchmark: a private redis-server, the scripted model, ``memgrid serve``;
readers of their CPU time and memory in ``/proc``."""

from __future__ import annotations

import math
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from bus import find_redis_server

CLI = [sys.executable, "-m", "orchestrator.cli"]
_BENCHMARKS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(
    folder: Path, *, unix_socket: bool = False, maxclients: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """A private ``redis-server`` (no persistence, data under ``folder``), answering PING.

    Returns it and its URL: ``unix://...`` with ``unix_socket``, else ``redis://127.0.0.1:PORT``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [find_redis_server(os.environ.get("REDIS_SERVER"))]
    if unix_socket:
        sock = folder / "redis.sock"
        cmd += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
        url = f"unix://{sock}"
    else:
        port = free_port()
        cmd += ["--port", str(port), "--bind", "127.0.0.1"]
        url = f"redis://127.0.0.1:{port}"
    cmd += ["--dir", str(folder), "--save", "", "--appendonly", "no", "--daemonize", "no"]
    if maxclients is not None:
        cmd += ["--maxclients", str(maxclients)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            with redis.Redis.from_url(url) as probe:
                probe.ping()
            return proc, url
        except (redis.ConnectionError, FileNotFoundError):
            if time.monotonic() > deadline or proc.poll() is not None:
                stop(proc)
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.02)


@contextmanager
def redis_server(
    folder: Path, *, unix_socket: bool = False, maxclients: int | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """:func:`start_redis`, stopped on the way out."""
    proc, url = start_redis(folder, unix_socket=unix_socket, maxclients=maxclients)
    try:
        yield proc, url
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any], *, grace_s: float = 15.0, signalled: bool = False) -> None:
    """SIGCONT (a paused process cannot act on SIGTERM) and SIGTERM, unless ``signalled``
    already (a worker's second SIGTERM cancels its turns); wait up to ``grace_s``, then
    SIGKILL."""
    if proc.poll() is None and not signalled:
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` (a worker, say) with its stderr to ``log``, its stdout discarded."""
    with log.open("w") as err:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)


def start_printing_url(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, *, timeout_s: float = 30.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``cmd`` (stderr to ``log``), which prints its base URL on its first line."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("http"):
        stop(proc)
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{cmd[-1]!r}... printed {line!r}, not its URL:\n{tail}")
    return proc, line


def start_model(
    log: Path, policy: str = "agents.scripted.policies:echo", env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``memgrid scripted-model --policy POLICY`` (stderr to ``log``; ``benchmarks/`` on its
    ``PYTHONPATH`` for :mod:`_harness.policies`, ``env`` added); it and its base URL."""
    paths = [_BENCHMARKS, *filter(None, [os.environ.get("PYTHONPATH")])]
    full = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(paths)}
    cmd = [*CLI, "scripted-model", "--policy", policy, "--port", "0"]
    return start_printing_url(cmd, log, full)


@contextmanager
def scratch(
    prefix: str, *, unix_socket: bool = False, maxclients: int | None = None
) -> Iterator[tuple[Path, subprocess.Popen[bytes], str]]:
    """A temporary folder with a private redis-server in it: (folder, redis, its URL); both
    gone on the way out."""
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as name,
        redis_server(Path(name), unix_socket=unix_socket, maxclients=maxclients) as (proc, url),
    ):
        yield Path(name), proc, url


def memgrid_env(
    redis_url: str, home: Path, model_url: str, *, log_level: str | None = None
) -> dict[str, str]:
    """The environment of serve and worker processes: this one's, less any memgrid or OpenAI
    setting (but the log level), plus these."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MEMGRID_", "OPENAI_")) or k == "MEMGRID_LOG_LEVEL"
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        MEMGRID_REDIS_URL=redis_url,
        MEMGRID_HOME=str(home),
        OPENAI_BASE_URL=model_url,
        OPENAI_API_KEY="x",
        MEMGRID_EMBEDDING="hashing/384",
    )
    if log_level is not None:
        env["MEMGRID_LOG_LEVEL"] = log_level
    return env


@dataclass
class Stack:
    """The processes of one benchmark, stopped in reverse order by :meth:`close`.

    Each process's stdout and stderr go to ``<folder>/<name>.log``.
    """

    folder: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
        """Start ``cmd`` as ``name``; returns its pid."""
        with open(self.log_path(name), "wb") as log:
            proc = subprocess.Popen(
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self.procs[name] = proc
        return proc.pid

    def log_path(self, name: str) -> Path:
        """Where ``name``'s output goes."""
        return self.folder / f"{name}.log"

    def log_tail(self, name: str, chars: int = 4000) -> str:
        """The last ``chars`` characters of ``name``'s output."""
        path = self.log_path(name)
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def redis(self) -> str:
        """A private redis-server as ``redis``; returns its URL (no database number)."""
        proc, url = start_redis(self.folder / "redis")
        self.procs["redis"] = proc
        return url

    def model(self, policy: str, env: dict[str, str] | None = None) -> str:
        """:func:`start_model` as ``model``; returns its base URL."""
        proc, url = start_model(self.log_path("model"), policy, env)
        self.procs["model"] = proc
        return url

    def stop(self, name: str, timeout: float = 20.0) -> None:
        """SIGTERM, wait, then SIGKILL."""
        proc = self.procs.pop(name, None)
        if proc is not None:
            stop(proc, grace_s=timeout)

    def close(self) -> None:
        """Stop every process, the latest started first."""
        for name in reversed(list(self.procs)):
            self.stop(name)


def start_api(stack: Stack, env: dict[str, str], cmd: list[str], port: int) -> str:
    """Start ``cmd`` (a ``memgrid serve --port PORT``) as ``serve``; its URL once healthy."""
    stack.start("serve", cmd, env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/v1/health/", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        code = stack.procs["serve"].poll()
        if code is not None or time.monotonic() > deadline:
            raise RuntimeError(f"memgrid serve not ready ({code}):\n{stack.log_tail('serve')}")
        time.sleep(0.05)


@contextmanager
def serve_stack(
    folder: Path,
    *,
    policy: str = "agents.scripted.policies:echo",
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[Stack, str]]:
    """Redis, the scripted model and ``memgrid serve`` with its worker; yields the API URL."""
    stack = Stack(folder)
    try:
        env = memgrid_env(f"{stack.redis()}/0", folder / "home", stack.model(policy))
        env.update(extra_env or {})
        port = free_port()
        yield stack, start_api(stack, env, [*CLI, "serve", "--port", str(port)], port)
    finally:
        stack.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (its exited threads included); NaN once
    it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return math.nan
    if fields[0] == "Z":
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in bytes; empty once it is gone."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out
