"""The chaos suite's processes: a private redis-server, the scripted model, the archival owner,
``memgrid worker`` processes and a ``memgrid serve`` API, each a subprocess in a session of its
own so that its whole process group can be signalled. :meth:`Procs.aclose` kills and reaps
whatever is left, whatever happened before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import IO, Any

import anyio
import httpx
import redis.asyncio as aioredis
from anyio.abc import Process

from bus import connect, find_redis_server
from bus import keys as bus_keys

__all__ = ("ChaosFailure", "Procs", "free_port", "reap", "wait_for")

MEMGRID = (sys.executable, "-m", "orchestrator.cli")


class ChaosFailure(AssertionError):
    """The system under chaos did something it must not (or did not recover in time)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_for(
    check: Callable[[], Awaitable[object]],
    *,
    within: float,
    what: str,
    interval: float = 0.1,
    alive: Process | None = None,
    log: Callable[[], str] | None = None,
) -> Any:
    """Call ``check`` until it returns something true and return that; :class:`ChaosFailure`
    after ``within`` seconds or once ``alive`` has exited, with ``log()`` in the message."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if alive is not None and alive.returncode is not None:
            raise _failure(f"process exited with {alive.returncode} waiting for {what}", log)
        if time.monotonic() > deadline:
            raise _failure(f"timed out after {within:g}s waiting for {what}", log)
        await anyio.sleep(interval)


def _failure(message: str, log: Callable[[], str] | None) -> ChaosFailure:
    return ChaosFailure(f"{message}\n{log()}" if log else message)


class Procs:
    """Every subprocess of one chaos run, with its log under ``folder/logs``."""

    def __init__(self, folder: Path, *, lease_ms: int) -> None:
        self.folder = folder
        self.logs = folder / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis_dir = folder / "redis"
        self.redis_dir.mkdir(exist_ok=True)
        self.home = folder / "home"
        self.home.mkdir(exist_ok=True)
        self.lease_ms = lease_ms
        self.redis_port = free_port()
        self.api_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.model_url = ""
        self.procs: dict[str, Process] = {}  # the current process of each name
        self._all: list[Process] = []  # every process started, restarted ones included
        self.down: set[str] = set()  # killed on purpose, not (yet) started again
        self.workers: list[str] = []  # live worker names, oldest first
        self._started = 0
        self._files: list[IO[bytes]] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMGRID_", "OPENAI_"))}
        env.update(
            MEMGRID_REDIS_URL=self.redis_url,
            MEMGRID_HOME=str(self.home),
            OPENAI_BASE_URL=self.model_url,
            OPENAI_API_KEY="chaos",
            MEMGRID_EMBEDDING="hashing/384",
            MEMGRID_LOG_LEVEL="WARNING",
            MEMGRID_API_URL=self.api_url,
        )
        return env

    def log_tail(self, name: str, chars: int = 2500) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    async def _spawn(
        self, name: str, argv: list[str], stdout: int | IO[bytes] | None = None
    ) -> Process:
        log = (self.logs / f"{name}.log").open("ab")
        self._files.append(log)
        proc = await anyio.open_process(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log if stdout is None else stdout,
            stderr=log,
            env=self.env(),
            start_new_session=True,
        )
        self.procs[name] = proc
        self.down.discard(name)
        self._all.append(proc)
        return proc

    # --- redis ---------------------------------------------------------------------------

    async def start_redis(self) -> None:
        """redis-server with AOF on, its own dir and port; the same dir and port on a restart."""
        argv = [
            find_redis_server(os.environ.get("REDIS_SERVER")),
            "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--dir", str(self.redis_dir), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--daemonize", "no",
        ]  # fmt: skip
        proc = await self._spawn("redis", argv)

        async def answers() -> bool:
            client = connect(self.redis_url)
            try:
                return bool(await client.ping())
            except OSError:
                return False
            except Exception:  # redis' ConnectionError / BusyLoadingError
                return False
            finally:
                await client.aclose()

        await wait_for(answers, within=30, what="redis-server to answer", alive=proc)

    async def kill_redis(self) -> None:
        await self._kill("redis", signal.SIGKILL)

    # --- the scripted model and the archival owner ---------------------------------------

    async def start_model(self, policy: str) -> None:
        argv = [*MEMGRID, "scripted-model", "--policy", policy]
        proc = await self._spawn("model", argv, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        with anyio.fail_after(30):
            line = b""
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive(1)
                line += chunk
        self.model_url = line.decode().strip()
        if not self.model_url.startswith("http"):
            raise ChaosFailure(f"scripted model printed {self.model_url!r}, not its URL")

    async def start_archival_owner(self, redis: aioredis.Redis) -> None:
        """A process that only owns the embedded passage engine: workers and the API come and
        go under chaos, the engine's owner does not (taking it over is another test's topic)."""
        argv = [sys.executable, "-m", "tests.chaos._owner"]
        proc = await self._spawn("archival-owner", argv)

        async def serving() -> bool:
            return bool(await redis.exists(bus_keys.archival_requests()))

        await wait_for(serving, within=60, what="the archival owner", alive=proc)

    # --- workers and the API -------------------------------------------------------------

    async def start_worker(self, redis: aioredis.Redis) -> str:
        self._started += 1
        name = f"w{self._started:03d}"
        argv = [
            *MEMGRID, "worker", "--worker-id", name, "--concurrency", "16",
            "--lease-ms", str(self.lease_ms), "--drain-seconds", "5",
        ]  # fmt: skip
        proc = await self._spawn(name, argv)

        async def up() -> bool:
            return bool(await redis.exists(bus_keys.worker_health(name)))

        await wait_for(up, within=60, what=f"worker {name} to start", alive=proc)
        self.workers.append(name)
        return name

    async def start_api(self) -> None:
        argv = [*MEMGRID, "serve", "--no-worker", "--port", str(self.api_port)]
        proc = await self._spawn("api", argv)

        async def healthy() -> bool:
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"{self.api_url}/v1/health/")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(healthy, within=60, what="the API to serve", alive=proc)

    async def kill_worker(self, name: str) -> None:
        self.workers.remove(name)
        await self._kill(name, signal.SIGKILL)

    async def kill_api(self) -> None:
        await self._kill("api", signal.SIGKILL)

    def pause(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        with contextlib.suppress(ProcessLookupError):  # killed while paused
            os.killpg(self.procs[name].pid, signal.SIGCONT)

    def exited(self) -> dict[str, int]:
        """Processes that should be running but are not, with their exit codes."""
        wanted = ["redis", "model", "archival-owner", "api", *self.workers]
        return {
            n: code
            for n in wanted
            if n in self.procs
            and n not in self.down
            and (code := self.procs[n].returncode) is not None
        }

    async def _kill(self, name: str, sig: int) -> None:
        proc = self.procs[name]
        self.down.add(name)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        with anyio.fail_after(30):
            await proc.wait()

    async def aclose(self) -> None:
        await reap(self._all, self._files)


async def reap(procs: Iterable[Process], files: Iterable[IO[bytes]]) -> None:
    """Kill the process group of each of ``procs`` still running (SIGKILL also ends a process
    left SIGSTOPped, and a ``memgrid up`` with its children), wait for each (15 s at most),
    then close ``files``; shielded from cancellation. Raises :class:`ChaosFailure` naming the
    processes that outlived SIGKILL, once all are reaped."""
    survivors: list[int] = []
    with anyio.CancelScope(shield=True):
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with anyio.move_on_after(15):
                await proc.wait()
            if proc.returncode is None:
                survivors.append(proc.pid)
            await proc.aclose()
        for file in files:
            file.close()
    if survivors:
        raise ChaosFailure(f"processes {survivors} still ran 15 s after SIGKILL")
