"""``memgrid run WORKFLOW.yaml [--input TEXT | --inputs DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from orchestrator.cli._common import UsageError, run

__all__ = ("register",)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="apply a YAML workflow and run inputs through it")
    parser.add_argument("workflow", type=Path)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--input", default=None, help="one message for the entry agent")
    group.add_argument("--inputs", type=Path, default=None, help="a folder: one message a file")
    parser.add_argument("--check", action="store_true", help="validate only; apply nothing")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds (600)")
    parser.set_defaults(handler=_run)


def _read_inputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    if args.input is not None:
        return [("input", args.input)]
    if args.inputs is None:
        return []
    if not args.inputs.is_dir():
        raise UsageError(f"--inputs {args.inputs}: not a folder")
    items = []
    for file in sorted(p for p in args.inputs.iterdir() if p.is_file()):
        try:
            items.append((file.name, file.read_text()))
        except UnicodeDecodeError:
            items.append((file.name, file.read_bytes().decode("utf-8", errors="replace")))
    if not items:
        raise UsageError(f"--inputs {args.inputs}: the folder has no files")
    return items


def _run(args: argparse.Namespace) -> int:
    from agents.rules import validate_rules
    from orchestrator.workflow import WorkflowError, load_workflow

    try:
        workflow = load_workflow(args.workflow, check_rules=validate_rules)
    except WorkflowError as exc:
        for problem in exc.problems:
            print(f"{exc.path}: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); nothing was applied", file=sys.stderr)
        return 2
    inputs = _read_inputs(args)
    if args.check:
        print(f"{args.workflow}: ok ({len(workflow.agents)} agents, {len(workflow.blocks)} blocks)")
        return 0

    async def main() -> int:
        from orchestrator.apply import apply_workflow
        from orchestrator.bootstrap import open_runtime
        from orchestrator.workflow_inputs import run_inputs

        async with open_runtime(own_archival=True) as rt:
            applied = await apply_workflow(rt, workflow)
            print(
                f"workflow {workflow.name}: "
                + ", ".join(
                    [f"created {c}" for c in applied.created]
                    + [f"updated {u}" for u in applied.updated]
                )
            )
            if not inputs:
                return 0
            reports = await run_inputs(rt, applied, workflow.entry, inputs, timeout_s=args.timeout)
        print()
        print(f"{'input':<28} {'stop':<12} {'steps':>5} {'runs caused':>11}  reply")
        for report in reports:
            run = report.entry_run
            reply = (run.replies[-1] if run.replies else "").replace("\n", " ")
            print(
                f"{report.input_name[:28]:<28} {run.stop_reason or run.status:<12} "
                f"{run.usage.step_count:>5} {len(report.runs):>11}  {reply[:60]}"
            )
        from agents.letta_messages import FAILED_STOPS

        failed = [
            r
            for r in reports
            if r.entry_run.status != "completed" or r.entry_run.stop_reason in FAILED_STOPS
        ]
        return 1 if failed else 0

    from storage.errors import RuntimeFailure, UserError

    try:
        return int(run(main))
    except (UserError, RuntimeFailure) as exc:  # what a user or operator can act on
        raise UsageError(str(exc)) from exc
