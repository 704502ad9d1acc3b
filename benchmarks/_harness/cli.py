"""A benchmark's command line: the options several benchmarks take, and the run of its
measurement on a private redis-server (or a private Redis Cluster, ``--redis-cluster N``)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from _harness.processes import scratch
from _harness.runtime import quiet_logs
from orchestrator.cli._common import uvloop_wanted


def int_list(text: str) -> list[int]:
    """A comma-separated sweep: ``1,2,4`` or ``10,1_000,100_000``."""
    return [int(v.replace("_", "")) for v in text.split(",") if v.strip()]


# The options several benchmarks take: what each means is the same; its default is the
# benchmark's own.
SHARED: dict[str, tuple[Callable[[str], Any], str]] = {
    "agents": (int, "agents to create"),
    "turns": (int, "timed turns per row"),
    "warmup": (int, "untimed turns per row"),
    "latency": (float, "model seconds per request"),
    "lease_ms": (int, "worker --lease-ms"),
    "timeout": (float, "seconds to wait for a level's runs"),
    "redis_cluster": (int, "masters of a private Redis Cluster on loopback, 0: one redis-server"),
}


def options(doc: str, **defaults: Any) -> argparse.ArgumentParser:
    """A benchmark's parser, described by the first paragraph of ``doc``, with one option of
    :data:`SHARED` for each keyword (``lease_ms=10_000`` adds ``--lease-ms``, default 10000)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    for name, default in defaults.items():
        kind, what = SHARED[name]
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=kind, default=default, help=f"{what} ({default:g})")
    return parser


@dataclass(frozen=True)
class Scratch:
    """A temporary folder and the private Redis running in it: one redis-server, or the
    masters of a Redis Cluster."""

    folder: Path
    servers: tuple[subprocess.Popen[bytes], ...]  # one, or every master
    url: str  # what memgrid connects to (``redis+cluster://`` for a cluster)
    node_urls: tuple[str, ...]  # a plain URL of each server, in the order of ``servers``

    @property
    def redis(self) -> subprocess.Popen[bytes]:
        """The redis-server (a cluster's first master)."""
        return self.servers[0]

    @property
    def cluster(self) -> bool:
        """Whether it is a Redis Cluster."""
        return "+cluster://" in self.url


@contextmanager
def private_redis(
    prefix: str, masters: int = 0, *, unix_socket: bool = False, maxclients: int | None = None
) -> Iterator[Scratch]:
    """A temporary folder with one private redis-server (``masters`` 0) or a Redis Cluster of
    ``masters`` masters on loopback TCP (tests/_cluster.py's, no replicas, no persistence);
    all gone on the way out."""
    if not masters:
        with scratch(prefix, unix_socket=unix_socket, maxclients=maxclients) as (folder, p, url):
            yield Scratch(folder, (p,), url, (url,))
        return
    # tests/_cluster.py makes the test session's cluster too; the repository root goes on
    # sys.path for it (``python benchmarks/<name>.py`` puts only benchmarks/ there).
    root = str(Path(__file__).resolve().parents[2])
    if root not in sys.path:
        sys.path.append(root)
    from tests._cluster import cluster_ports, start_cluster

    options = {} if maxclients is None else {"maxclients": str(maxclients)}
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        cluster = start_cluster(Path(name), cluster_ports(masters), options=options)
        try:
            yield Scratch(Path(name), tuple(cluster.procs), cluster.url, tuple(cluster.node_urls))
        finally:
            cluster.close()


def run_on_redis(
    parser: argparse.ArgumentParser,
    measure: Callable[[argparse.Namespace, Scratch], Awaitable[None]],
    prefix: str,
    *,
    uvloop: bool = False,
    unix_socket: bool = False,
    maxclients: int | None = None,
) -> None:
    """Parse the arguments, quiet the runtime's logs and run ``measure`` with a private
    redis-server in a temporary folder (a Redis Cluster of N masters when the parser has
    ``--redis-cluster`` and it is N > 0; all gone on the way out), on uvloop when ``uvloop``
    and memgrid's processes would use it."""
    args = parser.parse_args()
    quiet_logs()
    masters = getattr(args, "redis_cluster", 0)
    if masters < 0 or 0 < masters < 3:
        parser.error("--redis-cluster: a Redis Cluster has at least 3 masters (0: one server)")
    with private_redis(prefix, masters, unix_socket=unix_socket, maxclients=maxclients) as redis:
        backend = {"use_uvloop": uvloop and uvloop_wanted()}
        anyio.run(measure, args, redis, backend_options=backend)
