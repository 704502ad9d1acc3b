"""The ``memgrid`` command line.

Each subcommand lives in its own module with ``register(subparsers)``; handlers return an exit
code. User mistakes end with a one-line message and exit code 2, never a traceback.

A command stops the local redis-server it used when no other memgrid process uses it any more,
unless told to keep it (``--keep-redis``, ``MEMGRID_KEEP_REDIS=1``, ``memgrid redis start``);
a kept server is announced once, with how to stop it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from orchestrator.cli._common import UsageError

__all__ = ("UsageError", "announce_kept", "build_parser", "main")

# Modules under orchestrator.cli that each register one or more subcommands.
_COMMAND_MODULES = (
    "_redis",
    "_models",
    "_doctor",
    "_scripted",
    "_agents",
    "_approve",
    "_blocks",
    "_memory",
    "_sources",
    "_worker",
    "_run",
    "_demo",
    "_serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memgrid",
        description="MemGPT-style stateful agents as async workers on Redis Streams.",
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default), ERROR")
    parser.add_argument(
        "--keep-redis",
        action="store_true",
        help="leave the local redis-server running after this command (MEMGRID_KEEP_REDIS=1); "
        "`memgrid redis stop` stops it",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"orchestrator.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"orchestrator.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from orchestrator.logs import configure_logging  # structlog: not needed for --help

    configure_logging(args.log_level)
    if args.keep_redis:
        os.environ["MEMGRID_KEEP_REDIS"] = "1"  # and for the processes this one starts
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        print(f"memgrid: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        _leave_local_redis()


def _leave_local_redis() -> None:
    """Stop the local Redis this command used, unless others use it or it is kept."""
    if "bus.local_redis" not in sys.modules:
        return  # this command never touched the local Redis (and need not import redis now)
    from bus import BusSettings, RedisUnavailable, leave_local_redis

    try:
        left = leave_local_redis(keep=BusSettings.from_env().keep_redis)
    except (RedisUnavailable, OSError) as exc:
        print(f"memgrid: could not stop the local Redis: {exc}", file=sys.stderr)
        return
    for url, outcome in left:
        if outcome == "kept now":
            announce_kept(url)


def announce_kept(url: str) -> None:
    """Say once that a local Redis keeps running, and how to stop it."""
    print(
        f"memgrid: the local Redis at {url} keeps running; stop it with `memgrid redis stop`",
        file=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
