"""``memgrid doctor``."""

from __future__ import annotations

import argparse
import json
from typing import Any

import msgspec

from orchestrator.cli._common import run

__all__ = ("register",)

_MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("doctor", help="check Redis, Qdrant, embedder and model")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from orchestrator.doctor import run_checks

    checks = run(run_checks)
    if args.json:
        print(json.dumps(msgspec.to_builtins(checks), indent=2))
    else:
        for check in checks:
            print(f"[{_MARK[check.status]}] {check.part:<9} {check.detail}")
            if check.fix and check.status != "ok":
                print(f"{'':17}fix: {check.fix}")
    return 1 if any(c.status == "fail" for c in checks) else 0
