"""``memgrid up``: the local Redis (when embedded), N supervised workers, the REST API, and
Ctrl-C to stop.

The supervisor process also opens the embedded passage engine and serves archival memory to
its workers and the API (they cannot open it themselves: it is one process only). Each worker
is a ``memgrid worker`` subprocess and the API a ``memgrid serve --no-worker`` subprocess; one
that exits on its own is restarted with backoff. On SIGINT/SIGTERM every child gets SIGTERM
(workers finish their current step and release their leases, the API finishes its requests)
and is killed after a grace period.

With the local Redis (``MEMGRID_REDIS_URL`` unset) the supervisor also watches the redis-server
of ``MEMGRID_HOME`` and starts it again, on the same data and address, whenever it dies; every
process rides out the gap (see :class:`bus.Outage`).

Workers get ``MEMGRID_API_URL`` pointing at the API (unless it is set already), so that tools
calling the REST API from the tool sandbox reach this server.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from functools import partial

import anyio
import anyio.abc
import msgspec
import structlog

from bus import BusSettings, RedisUnavailable, describe, restart_local_redis_if_down
from orchestrator.api.settings import DEFAULT_PORT
from orchestrator.bootstrap import open_runtime
from storage.settings import StorageSettings

__all__ = (
    "ApiOptions",
    "keep_local_redis",
    "run_api_process",
    "run_supervised",
    "run_worker_process",
    "supervise",
)

log = structlog.get_logger("memgrid.supervisor")
_GRACE_S = 35.0
_REDIS_CHECK_S = 0.5


class ApiOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Where ``memgrid up`` serves the REST API.

    Attributes:
        host: address to bind.
        port: port to bind.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT

    @property
    def url(self) -> str:
        """The base URL that local clients (and tools) use."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


async def run_supervised(
    name: str,
    command: Sequence[str],
    stopping: anyio.Event,
    *,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``command`` until ``stopping``, restarting it with backoff whenever it exits.

    On ``stopping`` the child gets SIGTERM, and SIGKILL after a grace period.
    """
    backoff = 0.5
    while not stopping.is_set():
        started = time.monotonic()
        async with await anyio.open_process(
            list(command), stdin=None, stdout=None, stderr=None, env=dict(env) if env else None
        ) as proc:
            print(f"{name} started (pid {proc.pid})", flush=True)
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
            print(f"{name} stopped", flush=True)
            return
        print(f"{name} exited with {code}; restarting", flush=True)
        log.warning("child_exited", name=name, code=code)
        backoff = 0.5 if time.monotonic() - started > 30 else min(backoff * 2, 30.0)
        with anyio.move_on_after(backoff):
            await stopping.wait()


async def run_worker_process(
    index: int,
    concurrency: int,
    stopping: anyio.Event,
    *,
    env: Mapping[str, str] | None = None,
    metrics_port: int | None = None,
) -> None:
    """Run one `memgrid worker` subprocess until ``stopping``, restarting it if it dies.

    ``metrics_port``: where it serves its Prometheus metrics (0: any free port); none if None.
    """
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
    if metrics_port is not None:  # the worker prints where it serves them
        command += ["--metrics-port", str(metrics_port), "--metrics-fallback"]
    await run_supervised(f"worker {index}", command, stopping, env=env)


async def run_api_process(api: ApiOptions, stopping: anyio.Event) -> None:
    """Run `memgrid serve --no-worker` (the REST API) until ``stopping``, restarting it."""
    command = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "serve",
        "--no-worker",
        "--host",
        api.host,
        "--port",
        str(api.port),
    ]
    await run_supervised("api", command, stopping)


async def keep_local_redis(
    settings: BusSettings, stopping: anyio.Event, *, every_s: float = _REDIS_CHECK_S
) -> None:
    """Until ``stopping``, start the local redis-server again whenever it has died.

    It restarts on the same data (AOF) and address, so the clients of every memgrid process
    reconnect to it. A server that cannot be started is tried again, with backoff: ``up``
    itself never exits over Redis.
    """
    backoff = every_s
    while not stopping.is_set():
        with anyio.move_on_after(backoff):
            await stopping.wait()
        if stopping.is_set():
            return
        try:
            restarted = await anyio.to_thread.run_sync(
                restart_local_redis_if_down, settings.home, settings.redis_server
            )
        except RedisUnavailable as exc:
            print(f"memgrid up: cannot restart Redis: {exc}", flush=True)
            log.error("redis_restart_failed", error=str(exc))
            backoff = min(backoff * 2, 10.0)
            continue
        backoff = every_s
        if restarted:
            print("memgrid up: Redis had stopped; restarted it on the same data", flush=True)
            log.warning("redis_restarted", home=str(settings.home))


async def supervise(
    *,
    workers: int,
    concurrency: int,
    api: ApiOptions | None = None,
    metrics_port: int | None = None,
) -> int:
    """Run until Ctrl-C / SIGTERM.

    Args:
        workers: how many worker processes.
        concurrency: agents each worker runs at once.
        api: where to serve the REST API; ``None`` serves none.
        metrics_port: the first worker's metrics port (the next ones count up; 0: any free
            port each); ``None``: no metrics.
    """
    stopping = anyio.Event()
    worker_env: dict[str, str] | None = None
    if api is not None and not os.environ.get("MEMGRID_API_URL"):
        worker_env = {**os.environ, "MEMGRID_API_URL": api.url}
    bus_settings = BusSettings.from_env()
    async with open_runtime(own_archival=True) as rt:
        passages = StorageSettings.from_env().describe_passages()
        print(
            f"memgrid up: Redis at {describe(rt.redis)}; passages in {passages}; "
            f"starting {workers} workers",
            flush=True,
        )
        async with anyio.create_task_group() as tg:
            if not bus_settings.redis_url:  # the local Redis is ours to keep running
                tg.start_soon(keep_local_redis, bus_settings, stopping)
            for index in range(workers):
                port = metrics_port + index if metrics_port else metrics_port
                tg.start_soon(
                    partial(
                        run_worker_process,
                        index,
                        concurrency,
                        stopping,
                        env=worker_env,
                        metrics_port=port,
                    )
                )
            if api is not None:
                print(
                    f"memgrid up: serving the API at {api.url} (docs: {api.url}/schema)",
                    flush=True,
                )
                tg.start_soon(run_api_process, api, stopping)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    print("memgrid up: stopping workers...", flush=True)
                    stopping.set()
                    break
    print("memgrid up: stopped", flush=True)
    return 0
