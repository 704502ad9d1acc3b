"""Helpers shared by CLI commands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import anyio

from bus import RedisUnavailable
from storage.errors import StorageError

if TYPE_CHECKING:
    from agents.runtime import Runtime

__all__ = ("UsageError", "with_runtime")

T = TypeVar("T")


class UsageError(Exception):
    """A user mistake: printed as one line, exit code 2."""


def with_runtime(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``work`` with a runtime from the environment; storage and Redis errors become
    one-line usage errors."""

    async def main() -> T:
        from orchestrator.runtime import open_runtime

        async with open_runtime() as rt:
            return await work(rt)

    try:
        return anyio.run(main)
    except (StorageError, RedisUnavailable) as exc:
        raise UsageError(str(exc)) from exc
