"""Redis outages: every long-running memgrid process rides them out (issue #11).

- ``memgrid up --workers 2`` under load: the redis-server it started is SIGKILLed; ``up``
  restarts it on the same data (AOF), its workers and API stay the same processes, and every
  accepted message ends with exactly one completed run and one reply;
- ``memgrid serve`` (which owns the embedded passage engine and serves archival memory to the
  others) answers 503 with ``Retry-After`` naming the Redis URL while Redis is down, and
  recovers by itself;
- a ``memgrid worker`` whose Redis restarts mid-turn keeps running and finishes the turn;
- the archival RPC server answers again after a Redis restart.

Real processes, a real redis-server, the scripted model over HTTP. Nothing sleeps to wait for
work: the tests poll (with deadlines) for what they wait on.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.from_thread
import pytest
import redis

from bus import (
    connect,
    ensure_local_redis,
    find_redis_server,
    restart_local_redis_if_down,
    stop_local_redis,
)
from bus.local_redis import local_redis_dir

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own (AOF on), to kill and start again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                find_redis_server(os.environ.get("REDIS_SERVER")),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:  # BusyLoadingError included
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_a_client_reconnects_on_its_first_command_after_a_restart(
    own_redis: RedisServer,
) -> None:
    # Every pooled connection is dead after a restart: none of them may fail a command.
    client = connect(own_redis.url)
    try:
        async with anyio.create_task_group() as tg:  # several pooled connections
            for _ in range(4):
                tg.start_soon(client.blpop, ["nothing"], 0.2)
        own_redis.kill()
        own_redis.start()
        # A live process's loop runs through the outage and takes in the old connections' EOF.
        await anyio.sleep(0.05)
        for _ in range(4):
            assert await client.ping()
    finally:
        await client.aclose()


@pytest.mark.parametrize("address", ["unix", "tcp"])
def test_the_local_redis_restarts_on_the_same_address_and_data(
    tmp_path: Path, address: str
) -> None:
    # A home too deep for a unix socket path gets a TCP port instead.
    home = tmp_path / "home" if address == "unix" else tmp_path / ("d" * 60) / ("e" * 60)
    home.mkdir(parents=True)
    try:
        url = ensure_local_redis(home)
        assert url.startswith("unix://" if address == "unix" else "redis://127.0.0.1:")
        client = redis.Redis.from_url(url)
        try:
            client.set("kept", b"1")
            assert not restart_local_redis_if_down(home)  # it runs: nothing to do
            folder = local_redis_dir(home)
            killed = int((folder / "redis.pid").read_text())
            os.kill(killed, signal.SIGKILL)
            assert restart_local_redis_if_down(home)
            assert int((folder / "redis.pid").read_text()) != killed
            assert ensure_local_redis(home) == url  # clients of the old address reconnect
            assert client.get("kept") == b"1"  # the AOF brought the data back
        finally:
            client.close()
    finally:
        stop_local_redis(home)
