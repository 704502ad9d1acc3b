"""``memgrid doctor``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from orchestrator.cli._common import command, emit, run

if TYPE_CHECKING:
    from orchestrator.doctor import Check

__all__ = ("register",)

_MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def register(subparsers: Any) -> None:
    command(subparsers, "doctor", _run, "check Redis, Qdrant, embedder and model", json_flag=True)


def _run(args: argparse.Namespace) -> int:
    from orchestrator.doctor import run_checks

    checks = run(run_checks)
    emit(args, checks, lambda: _lines(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0


def _lines(checks: list[Check]) -> Iterator[str]:
    for check in checks:
        yield f"[{_MARK[check.status]}] {check.part:<9} {check.detail}"
        if check.fix and check.status != "ok":
            yield f"{'':17}fix: {check.fix}"
