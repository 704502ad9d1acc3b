"""``memgrid redis start|stop|url``: the local redis-server of this MEMGRID_HOME.

``start`` starts it (or finds it running) and keeps it running after the command, until
``stop``; ``url`` prints where it runs and starts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from bus import BusSettings, RedisUnavailable
from orchestrator.cli._common import UsageError, command

__all__ = ("register",)


def register(subparsers: Any) -> None:
    parser = command(
        subparsers,
        "redis",
        _run,
        "start (and keep running), stop or locate the local redis-server",
        description="start: start the local redis-server and keep it running after this "
        "command; stop: shut it down (data kept in its AOF); url: print where it runs.",
    )
    parser.add_argument("action", choices=("start", "stop", "url"))


def _run(args: argparse.Namespace) -> int:
    from bus import ensure_local_redis, running_local_redis, stop_local_redis

    settings = BusSettings.from_env()
    if settings.redis_url:
        if args.action == "url":
            print(settings.redis_url)
            return 0
        raise UsageError("MEMGRID_REDIS_URL is set: memgrid does not manage that Redis")
    if args.action == "stop":
        print("stopped" if stop_local_redis(settings.home) else "not running")
        return 0
    if args.action == "url":
        url = running_local_redis(settings.home)
        if url is None:
            print(
                f"memgrid: no local Redis runs for MEMGRID_HOME={settings.home}; "
                "`memgrid redis start` starts one that keeps running",
                file=sys.stderr,
            )
            return 1
        print(url)
        return 0
    try:
        print(ensure_local_redis(settings.home, settings.redis_server))
    except RedisUnavailable as exc:
        raise UsageError(str(exc)) from exc
    os.environ["MEMGRID_KEEP_REDIS"] = "1"  # main() marks it kept (announced once) on the way out
    return 0
