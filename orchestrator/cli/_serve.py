"""``memgrid serve``: the Letta-compatible REST API on uvicorn."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from orchestrator.cli._common import UsageError, uvloop_wanted

if TYPE_CHECKING:
    from orchestrator.api import ApiSettings

__all__ = ("register",)


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve", help="serve the Letta-compatible REST API (default 127.0.0.1:8283)"
    )
    serve.add_argument("--host", default=None, help="address to bind (MEMGRID_API_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (MEMGRID_API_PORT, 8283)")
    workers = serve.add_mutually_exclusive_group()
    workers.add_argument(
        "--with-worker",
        dest="worker",
        action="store_true",
        default=None,
        help="run a worker in this process (the default; MEMGRID_SERVE_WORKER=0 turns it off)",
    )
    workers.add_argument(
        "--no-worker",
        dest="worker",
        action="store_false",
        help="only serve the API; separate `memgrid worker` processes run the agents",
    )
    serve.add_argument(
        "--concurrency", type=int, default=64, help="agents the embedded worker runs at once"
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        dest="cors_origins",
        help="allow this origin (repeatable; MEMGRID_API_CORS_ORIGINS); CORS is off otherwise",
    )
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import msgspec
    import uvicorn

    from orchestrator.api import ApiSettings, ApiSettingsError, create_app
    from storage.errors import RuntimeFailure, UserError

    try:
        settings = ApiSettings.from_env()
    except ApiSettingsError as exc:
        raise UsageError(str(exc)) from exc
    changes: dict[str, Any] = {"worker_concurrency": args.concurrency}
    if args.host:
        changes["host"] = args.host
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            raise UsageError("--port must be between 0 and 65535")
        changes["port"] = args.port
    if args.worker is not None:
        changes["worker"] = args.worker
    if args.cors_origins:
        changes["cors_origins"] = tuple(args.cors_origins)
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    settings = msgspec.structs.replace(settings, **changes)
    if settings.worker and settings.port and not os.environ.get("MEMGRID_API_URL"):
        # The embedded worker's tools call back here (letta-client inside a tool).
        host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        os.environ["MEMGRID_API_URL"] = f"http://{host}:{settings.port}"
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        lifespan="on",
        loop="uvloop" if uvloop_wanted() else "asyncio",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=15,
    )
    app = config.app

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                print(_banner(app, settings, self.servers), flush=True)

    try:
        _Server(config).run()
    except (UserError, RuntimeFailure) as exc:  # what a user or operator can act on
        raise UsageError(str(exc)) from exc
    return 0


def _banner(app: Any, settings: ApiSettings, servers: list[Any]) -> str:
    """What `memgrid serve` says once it listens: where (the dashboard, the API, its docs),
    the Redis and passages."""
    from bus import describe
    from storage.settings import StorageSettings

    port = settings.port
    for server in servers:
        for sock in server.sockets or ():
            port = sock.getsockname()[1]  # the real one, also when asked for port 0
    url = f"http://{settings.host}:{port}"
    worker = (
        f"a worker runs in this process ({settings.worker_concurrency} agents at once)"
        if settings.worker
        else "no worker in this process: run `memgrid worker` processes (or `memgrid up`)"
    )
    return "\n".join(
        (
            f"memgrid serve: the dashboard at {url}/ and the Letta-compatible API at {url} "
            f"(docs: {url}/schema)",
            f"memgrid serve: Redis at {describe(app.state.api.rt.redis)}; passages in "
            f"{StorageSettings.from_env().describe_passages()}",
            f"memgrid serve: {worker}; Ctrl-C to stop",
        )
    )
