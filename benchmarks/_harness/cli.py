"""A benchmark's command line: the options several benchmarks take, and the run of its
measurement on a private redis-server."""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Awaitable, Callable
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
    """A temporary folder and the private redis-server running in it."""

    folder: Path
    redis: subprocess.Popen[bytes]
    url: str


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
    redis-server in a temporary folder (both gone on the way out), on uvloop when ``uvloop``
    and memgrid's processes would use it."""
    args = parser.parse_args()
    quiet_logs()
    with scratch(prefix, unix_socket=unix_socket, maxclients=maxclients) as (folder, proc, url):
        backend = {"use_uvloop": uvloop and uvloop_wanted()}
        anyio.run(measure, args, Scratch(folder, proc, url), backend_options=backend)
