"""Tool calls per second through the sandbox, by isolation level (issue #17's cost).

Each row runs the same trivial tool (``def tool(n): return n + 1``) ``--calls`` times one at
a time, the rows taking turns call by call (so a noisy neighbour slows them alike), then the
same number 8 at a time, row after row, and reports calls/s and the median latency. Rows:
the bare child process (what the sandbox did before #17: rlimits, a new session, no cgroup,
no user, no namespaces), then what this host offers (pids cgroup, tool user, mount namespace),
then with the network policies ``none`` and ``api`` (a network namespace, plus the relay).
Usage: ``python benchmarks/sandbox.py [--calls N]`` (as root for the isolated rows).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import anyio

from agents.sandbox import Isolation, default_isolation, run_tool_source

_SOURCE = "def tool(n):\n    return n + 1\n"
_ENV = {"MEMGRID_API_URL": "http://127.0.0.1:9/v1"}  # the relay's target; never called


async def _one(isolation: Isolation, network: Any, latencies: list[float]) -> None:
    started = time.perf_counter()
    result = await run_tool_source(
        _SOURCE, "tool", {"n": 1}, isolation=isolation, network=network, env=_ENV
    )
    latencies.append(time.perf_counter() - started)
    if result.return_value != "2":
        raise RuntimeError(f"the tool failed: {result.error} {result.stderr}")


async def _row(
    isolation: Isolation, network: Any, calls: int, parallel: int
) -> tuple[float, float]:
    latencies: list[float] = []
    limiter = anyio.Semaphore(parallel)

    async def limited() -> None:
        async with limiter:
            await _one(isolation, network, latencies)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(calls):
            tg.start_soon(limited)
    elapsed = time.perf_counter() - started
    return calls / elapsed, statistics.median(latencies) * 1000


async def main(calls: int) -> None:
    host = await default_isolation()
    rows = [
        ("bare child process (before #17)", Isolation(), "all"),
        ("host isolation, network all", host, "all"),
        ("host isolation, network none", host, "none"),
        ("host isolation, network api", host, "api"),
    ]
    print(f"host: {host}")
    sequential: list[list[float]] = [[] for _ in rows]
    for _, isolation, network in rows:
        await _one(isolation, network, [])  # warm the page cache
    for _ in range(calls):
        for (_, isolation, network), latencies in zip(rows, sequential, strict=True):
            await _one(isolation, network, latencies)
    print("| isolation | calls/s (1 at a time) | p50 ms | calls/s (8 at a time) | p50 ms |")
    print("|---|---:|---:|---:|---:|")
    for (name, isolation, network), latencies in zip(rows, sequential, strict=True):
        seq, seq_ms = len(latencies) / sum(latencies), statistics.median(latencies) * 1000
        par, par_ms = await _row(isolation, network, calls, 8)
        print(f"| {name} | {seq:.1f} | {seq_ms:.0f} | {par:.1f} | {par_ms:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    anyio.run(main, parser.parse_args().calls)
