"""Helpers shared by CLI commands."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import anyio

from storage.errors import RuntimeFailure, UserError

if TYPE_CHECKING:
    from agents.runtime import Runtime

__all__ = ("UsageError", "run", "uvloop_wanted", "with_runtime")

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
        from orchestrator.runtime import open_runtime

        async with open_runtime() as rt:
            return await work(rt)

    try:
        return run(main)
    except (UserError, RuntimeFailure) as exc:  # what a user or operator can act on
        raise UsageError(str(exc)) from exc
