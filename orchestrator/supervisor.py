"""``memgrid up``: the local Redis (when embedded), N supervised workers, and Ctrl-C to stop.

The supervisor process also opens the embedded passage engine and serves archival memory to
its workers (they cannot open it themselves: it is one process only). A worker that exits on
its own is restarted with backoff; on SIGINT/SIGTERM every worker gets SIGTERM (they finish
their current step and release their leases) and is killed after a grace period.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import anyio
import anyio.abc
import structlog

from orchestrator.runtime import open_runtime

__all__ = ("run_worker_process", "supervise")

log = structlog.get_logger("memgrid.supervisor")
_GRACE_S = 35.0


async def run_worker_process(index: int, concurrency: int, stopping: anyio.Event) -> None:
    """Run one `memgrid worker` subprocess until ``stopping``, restarting it if it dies."""
    backoff = 0.5
    while not stopping.is_set():
        command = [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "worker",
            "--worker-id",
            f"up-{os.getpid()}-{index}",
            "--concurrency",
            str(concurrency),
        ]
        started = time.monotonic()
        async with await anyio.open_process(command, stdin=None, stdout=None, stderr=None) as proc:
            print(f"worker {index} started (pid {proc.pid})", flush=True)
            async with anyio.create_task_group() as tg:

                async def forward_stop(process: anyio.abc.Process = proc) -> None:
                    await stopping.wait()
                    process.send_signal(signal.SIGTERM)
                    with anyio.move_on_after(_GRACE_S):
                        await process.wait()
                        return
                    process.kill()

                tg.start_soon(forward_stop)
                code = await proc.wait()
                tg.cancel_scope.cancel()
        if stopping.is_set():
            print(f"worker {index} stopped", flush=True)
            return
        print(f"worker {index} exited with {code}; restarting", flush=True)
        log.warning("worker_exited", index=index, code=code)
        backoff = 0.5 if time.monotonic() - started > 30 else min(backoff * 2, 30.0)
        await anyio.sleep(backoff)


async def supervise(*, workers: int, concurrency: int) -> int:
    """Run until Ctrl-C / SIGTERM."""
    stopping = anyio.Event()
    async with open_runtime(own_archival=True) as rt:
        url = rt.redis.connection_pool.connection_kwargs.get(
            "path"
        ) or rt.redis.connection_pool.connection_kwargs.get("host")
        print(f"memgrid up: Redis at {url}; starting {workers} workers", flush=True)
        async with anyio.create_task_group() as tg:
            for index in range(workers):
                tg.start_soon(run_worker_process, index, concurrency, stopping)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    print("memgrid up: stopping workers...", flush=True)
                    stopping.set()
                    break
    print("memgrid up: stopped", flush=True)
    return 0
