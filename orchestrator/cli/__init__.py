"""The ``memgrid`` command line.

Each subcommand lives in its own module with ``register(subparsers)``; handlers return an exit
code. User mistakes end with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from orchestrator.cli._common import UsageError

__all__ = ("main",)

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
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        print(f"memgrid: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
