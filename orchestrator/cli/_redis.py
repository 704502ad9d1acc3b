"""``memgrid redis start|stop|url``: the local redis-server of this MEMGRID_HOME."""

from __future__ import annotations

import argparse
from typing import Any

from bus import BusSettings, RedisUnavailable
from orchestrator.cli._common import UsageError

__all__ = ("register",)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "redis", help="start, stop or locate the local redis-server"
    )
    parser.add_argument("action", choices=("start", "stop", "url"))
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from bus import resolve_redis_url, stop_local_redis

    settings = BusSettings.from_env()
    if args.action == "stop":
        if settings.redis_url:
            raise UsageError("MEMGRID_REDIS_URL is set: memgrid does not manage that Redis")
        print("stopped" if stop_local_redis(settings.home) else "not running")
        return 0
    try:
        print(resolve_redis_url(settings))
    except RedisUnavailable as exc:
        raise UsageError(str(exc)) from exc
    return 0
