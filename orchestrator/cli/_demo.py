"""``memgrid demo``: the main job on the embedded defaults."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli._common import UsageError, run
from storage.errors import RuntimeFailure, UserError

__all__ = ("register",)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run the demo on the embedded defaults")
    parser.add_argument(
        "which",
        nargs="?",
        default="recruiting",
        choices=("recruiting", "memory"),
        help="recruiting (default): the multi-agent pipeline; memory: one agent's memory tiers",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--model", default=None, help="model handle when a real model is set")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.which == "memory":
            from orchestrator.demo_memory import run_demo

            return run(lambda: run_demo(model_handle=args.model))
        from orchestrator.demo_recruiting import run_recruiting_demo

        if args.model:
            import os

            os.environ["MEMGRID_MODEL"] = args.model
        return run(lambda: run_recruiting_demo(workers=args.workers))
    except (UserError, RuntimeFailure) as exc:  # what a user or operator can act on
        raise UsageError(str(exc)) from exc
