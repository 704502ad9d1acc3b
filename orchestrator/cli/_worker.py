"""``memgrid worker``, ``memgrid up`` and ``memgrid dlq``."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from typing import Any

import anyio

from orchestrator.cli._common import UsageError, actions, command, print_json, run
from storage.errors import RuntimeFailure, UserError

__all__ = ("DEFAULT_METRICS_PORT", "register")

DEFAULT_METRICS_PORT = 9464  # `memgrid up`'s first worker; the next ones count up from it


def register(subparsers: Any) -> None:
    worker = subparsers.add_parser("worker", help="run agents' turns from the bus")
    worker.add_argument("--concurrency", type=int, default=64, help="agents at once (64)")
    worker.add_argument("--burst", action="store_true", help="exit when there is no more work")
    worker.add_argument("--check", action="store_true", help="exit 0 if a worker is alive")
    worker.add_argument("--worker-id", default=None)
    worker.add_argument("--lease-ms", type=int, default=10_000, help="lease time (10000 ms)")
    worker.add_argument("--max-attempts", type=int, default=5)
    worker.add_argument(
        "--dead-letter-cap",
        type=int,
        default=100_000,
        help="dead letters kept; older ones are dropped, counted and logged (100000)",
    )
    worker.add_argument(
        "--drain-seconds", type=float, default=30.0, help="grace period on SIGTERM (30 s)"
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this port, 0 for any free one (MEMGRID_METRICS_PORT)",
    )
    worker.add_argument(
        "--metrics-host",
        default=None,
        help="address for the metrics (MEMGRID_METRICS_HOST, 127.0.0.1)",
    )
    worker.add_argument(
        "--metrics-fallback",
        action="store_true",
        help="if --metrics-port is taken, serve on a free port instead of failing (memgrid up)",
    )
    worker.set_defaults(handler=_worker)

    up = subparsers.add_parser(
        "up", help="start Redis (when local), supervised workers and the REST API"
    )
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--concurrency", type=int, default=64, help="per worker (64)")
    up.add_argument("--no-api", dest="api", action="store_false", help="do not serve the REST API")
    up.add_argument("--host", default=None, help="API address to bind (MEMGRID_API_HOST)")
    up.add_argument("--port", type=int, default=None, help="API port (MEMGRID_API_PORT, 8283)")
    up.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="first worker's metrics port, the next ones follow (MEMGRID_METRICS_PORT, 9464)",
    )
    up.add_argument(
        "--no-metrics", dest="metrics", action="store_false", help="workers serve no metrics"
    )
    up.set_defaults(handler=_up)

    sub = actions(subparsers, "dlq", "messages that kept failing")
    command(sub, "list", _dlq_list, "list dead letters", json_flag=True)
    retry = command(sub, "retry", _dlq_retry, "put a dead letter back in its agent's inbox")
    retry.add_argument("id")


def _env_port() -> int | None:
    raw = os.environ.get("MEMGRID_METRICS_PORT")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise UsageError(
            f"MEMGRID_METRICS_PORT={raw!r} is not a port: set it to a number (9464) or unset it"
        ) from None


def _check_port(port: int, flag: str = "--metrics-port") -> None:
    if not 0 <= port <= 65535:
        raise UsageError(f"{flag} must be between 0 (any free port) and 65535")


def _guard(main: Any) -> Any:
    try:
        return run(main)
    except (UserError, RuntimeFailure) as exc:  # what a user or operator can act on
        raise UsageError(str(exc)) from exc


def _worker(args: argparse.Namespace) -> int:
    if args.check:
        return int(_guard(lambda: _check(args.worker_id)))
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if args.dead_letter_cap < 1:
        raise UsageError("--dead-letter-cap must be at least 1 (dead letters to keep)")
    metrics_port = _env_port() if args.metrics_port is None else args.metrics_port
    if metrics_port is not None:
        _check_port(metrics_port)
    metrics_host = args.metrics_host or os.environ.get("MEMGRID_METRICS_HOST") or "127.0.0.1"

    async def main() -> int:
        from agents.worker import Worker, WorkerSettings
        from orchestrator.bootstrap import open_runtime

        settings = WorkerSettings(
            concurrency=args.concurrency,
            burst=args.burst,
            lease_ms=args.lease_ms,
            max_attempts=args.max_attempts,
            dead_letter_cap=args.dead_letter_cap,
            **({"worker_id": args.worker_id} if args.worker_id else {}),
        )
        if metrics_port is not None:
            _serve_metrics(
                settings.worker_id, metrics_host, metrics_port, fallback=args.metrics_fallback
            )
        async with open_runtime(own_archival=True) as rt:
            worker = Worker(rt, settings)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_on_signals, worker, args.drain_seconds)
                await worker.run()
                tg.cancel_scope.cancel()
        return 0

    return int(_guard(main))


def _serve_metrics(worker_id: str, host: str, port: int, *, fallback: bool) -> None:
    from agents import metrics

    try:
        try:
            bound_host, bound_port = metrics.serve(port, host)
        except OSError:
            if not fallback or port == 0:
                raise
            # Under `memgrid up` a taken port (another memgrid on this host) must not stop
            # the worker: any free port does, and the line below says which.
            bound_host, bound_port = metrics.serve(0, host)
    except OSError as exc:
        raise UsageError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}); "
            "pick another --metrics-port (or MEMGRID_METRICS_PORT), 0 for any free one"
        ) from exc
    print(
        f"memgrid worker {worker_id}: metrics at http://{bound_host}:{bound_port}/metrics",
        file=sys.stderr,
        flush=True,
    )


async def _on_signals(worker: Any, drain_s: float) -> None:
    # The handlers stay installed through the drain: under `memgrid up`, Ctrl-C reaches a
    # worker twice (the terminal's SIGINT, then the supervisor's SIGTERM), and the default
    # action of the second one would kill it mid-step.
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            print(
                f"memgrid worker {worker.id}: stopping (finishing current steps)", file=sys.stderr
            )
            worker.stop()
            break
        await anyio.sleep(drain_s)
    worker.cancel()


async def _check(worker_id: str | None) -> int:
    from agents.runs import live_workers
    from bus import BusSettings, connect, resolve_redis_url

    url = await anyio.to_thread.run_sync(resolve_redis_url, BusSettings.from_env())
    redis = connect(url)
    try:
        alive = await live_workers(redis)
    finally:
        await redis.aclose()
    host = socket.gethostname()
    if worker_id:
        mine = [w for w in alive if w.get("worker_id") == worker_id]
    else:
        mine = [w for w in alive if w.get("host") == host]
    for w in mine:
        print(f"alive: {w['worker_id']} (pid {w['pid']}, {w['busy']} busy, {w['runs']} runs)")
    if not mine:
        print("no live worker", file=sys.stderr)
    return 0 if mine else 1


def _up(args: argparse.Namespace) -> int:
    from orchestrator.api import ApiSettings, ApiSettingsError
    from orchestrator.supervisor import ApiOptions, supervise

    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    api = None
    if args.api:
        try:
            settings = ApiSettings.from_env()
        except ApiSettingsError as exc:
            raise UsageError(str(exc)) from exc
        port = settings.port if args.port is None else args.port
        if not 0 < port <= 65535:
            raise UsageError("--port must be between 1 and 65535")
        api = ApiOptions(host=args.host or settings.host, port=port)
    metrics_base: int | None = None
    if args.metrics:
        metrics_base = args.metrics_port if args.metrics_port is not None else _env_port()
        metrics_base = DEFAULT_METRICS_PORT if metrics_base is None else metrics_base
        _check_port(metrics_base)
        if metrics_base and metrics_base + args.workers - 1 > 65535:
            raise UsageError(f"--metrics-port leaves no room for {args.workers} workers' ports")
    return int(
        _guard(
            lambda: supervise(
                workers=args.workers,
                concurrency=args.concurrency,
                api=api,
                metrics_port=metrics_base,
            )
        )
    )


def _dlq_list(args: argparse.Namespace) -> int:
    async def main() -> list[dict[str, Any]]:
        from bus.streams import list_dead_letters
        from orchestrator.bootstrap import open_runtime

        async with open_runtime() as rt:
            return await list_dead_letters(rt.redis)

    rows = _guard(main)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no dead letters")
    for row in rows:
        print(f"{row['id']}  agent {row.get('agent_id')}  run {row.get('run_id')}")
        print(f"    {row.get('error')} (attempts: {row.get('attempts')})")
    return 0


def _dlq_retry(args: argparse.Namespace) -> int:
    import msgspec

    async def main() -> str:
        from agents.runs import retry_dead_letter
        from orchestrator.bootstrap import open_runtime

        async with open_runtime() as rt:
            try:
                submitted = await retry_dead_letter(rt.redis, args.id)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise UsageError(f"dead letter {args.id} cannot be retried: {exc}") from exc
            return submitted.run_id

    run_id = _guard(main)
    print(f"requeued run {run_id}")
    return 0
