"""``memgrid approve``: answer a run stopped with ``requires_approval``."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from agents.letta_messages import Event, StopReason
from orchestrator.cli._agents import _letta_response, _turn
from orchestrator.cli._common import UsageError, print_json, with_runtime

if TYPE_CHECKING:
    from agents.runtime import Runtime

__all__ = ("register",)


def register(subparsers: Any) -> None:
    approve = subparsers.add_parser(
        "approve", help="approve (or --deny) the tool calls an agent is waiting on"
    )
    approve.add_argument("name", help="agent name or id")
    approve.add_argument("--deny", action="store_true", help="deny the calls instead")
    approve.add_argument("--reason", default=None, help="why; the agent sees it")
    approve.add_argument("--json", action="store_true", help="print a Letta-shaped response")
    approve.set_defaults(handler=_approve)


def _approve(args: argparse.Namespace) -> int:
    decision = json.dumps({"approve": not args.deny, "reason": args.reason})

    async def work(rt: Runtime) -> list[Event]:
        agent = await rt.agents.resolve(args.name)
        if not agent.pending_approval:
            raise UsageError(f"{agent.name} is not waiting for an approval")
        if not args.json:
            verb = "denying" if args.deny else "approving"
            calls = ", ".join(call.name for call in agent.pending_approval)
            print(f"{verb} {calls}", flush=True)
        return await _turn(rt, agent.id, decision, live=not args.json, role="approval")

    events = with_runtime(work)
    if args.json:
        print_json(_letta_response(events))
    stop = next((e for e in events if isinstance(e, StopReason)), None)
    return 0 if stop is not None and stop.stop_reason != "error" else 1
