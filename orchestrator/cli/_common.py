"""Helpers shared by CLI commands."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import msgspec

from storage.errors import RuntimeFailure, UserError

if TYPE_CHECKING:
    from agents.runtime import Runtime

__all__ = (
    "UsageError",
    "actions",
    "command",
    "emit",
    "print_json",
    "run",
    "uvloop_wanted",
    "with_runtime",
)

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    """``anyio.run(main)`` on uvloop when it is installed, unless ``MEMGRID_UVLOOP=0``."""
    return anyio.run(main, backend_options={"use_uvloop": uvloop_wanted()})


def uvloop_wanted() -> bool:
    """Whether long-running processes run on uvloop: installed, and not MEMGRID_UVLOOP=0."""
    if os.environ.get("MEMGRID_UVLOOP", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return importlib.util.find_spec("uvloop") is not None


class UsageError(UserError):
    """A user mistake: printed as one line, exit code 2."""


def with_runtime(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``work`` with a runtime from the environment; storage and Redis errors become
    one-line usage errors."""

    async def main() -> T:
        from orchestrator.bootstrap import open_runtime

        async with open_runtime() as rt:
            return await work(rt)

    try:
        return run(main)
    except (UserError, RuntimeFailure) as exc:  # what a user or operator can act on
        raise UsageError(str(exc)) from exc


def actions(parent: Any, name: str, help: str) -> Any:
    """The command ``name`` of ``parent`` whose ACTION (``args.<name>_command``) is required;
    returns the subparsers action that :func:`command` adds the actions to."""
    parser = parent.add_parser(name, help=help)
    return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)


def command(
    parent: Any,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    help: str,
    *,
    json_flag: bool | str = False,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """The subcommand ``name`` of ``parent`` (a subparsers action), run by ``handler``.

    With ``json_flag`` it takes ``--json`` (a string is that flag's help); the caller adds
    the rest of its arguments to the parser returned.
    """
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help, description=description)
    if json_flag:
        flag_help = json_flag if isinstance(json_flag, str) else None
        parser.add_argument("--json", action="store_true", help=flag_help)
    parser.set_defaults(handler=handler)
    return parser


def print_json(data: Any, *, ensure_ascii: bool = True) -> None:
    """What ``--json`` prints: ``data`` (records, lists, dicts) as indented JSON."""
    print(json.dumps(msgspec.to_builtins(data), indent=2, ensure_ascii=ensure_ascii))


def emit(args: argparse.Namespace, data: Any, lines: Callable[[], Iterable[str]]) -> None:
    """``data`` as JSON when the command was given ``--json``, else the ``lines`` for people."""
    if args.json:
        print_json(data)
    else:
        for line in lines():
            print(line)
