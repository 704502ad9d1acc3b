"""``memgrid blocks ...``: the shared memory block registry."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

import msgspec

from orchestrator.cli._common import with_runtime

__all__ = ("register",)


def register(subparsers: Any) -> None:
    blocks = subparsers.add_parser("blocks", help="shared memory blocks")
    sub = blocks.add_subparsers(dest="blocks_command", metavar="ACTION", required=True)

    create = sub.add_parser("create", help="create a block")
    create.add_argument("label")
    create.add_argument("--value", default="")
    create.add_argument("--limit", type=int, default=5000)
    create.add_argument("--description", default="")
    create.add_argument("--read-only", action="store_true")
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=_create)

    listing = sub.add_parser("list", help="list blocks")
    listing.add_argument("--label", default=None)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)

    show = sub.add_parser("show", help="show a block and the agents attached to it")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)

    history = sub.add_parser("history", help="every version of a block: who, when, what")
    history.add_argument("id")
    history.add_argument("--json", action="store_true")
    history.set_defaults(handler=_history)

    for action, attached in (("attach", True), ("detach", False)):
        cmd = sub.add_parser(
            action, help=f"{action} a block {'to' if attached else 'from'} an agent"
        )
        cmd.add_argument("id")
        cmd.add_argument("agent", help="agent name or id")
        cmd.set_defaults(handler=_attach if attached else _detach)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _create(args: argparse.Namespace) -> int:
    from storage.blocks import new_block

    block = new_block(
        args.label,
        args.value,
        limit=args.limit,
        description=args.description,
        read_only=args.read_only,
        metadata={"shared": "true"},
    )
    created = with_runtime(lambda rt: rt.blocks.create(block, editor="cli"))
    if args.json:
        print(json.dumps(msgspec.to_builtins(created), indent=2))
    else:
        print(f"created block {created.label} ({created.id})")
    return 0


def _list(args: argparse.Namespace) -> int:
    blocks = with_runtime(lambda rt: rt.blocks.list(label=args.label))
    if args.json:
        print(json.dumps(msgspec.to_builtins(blocks), indent=2))
        return 0
    for block in blocks:
        print(f"{block.id}  {block.label:<16} v{block.version}  {len(block.value)}/{block.limit}")
    if not blocks:
        print("no blocks")
    return 0


def _show(args: argparse.Namespace) -> int:
    async def work(rt: Any) -> tuple[Any, list[str]]:
        block = await rt.blocks.get(args.id)
        agents = [
            a.name
            for a in await rt.agents.list()
            if a.id in await rt.blocks.attached_agents(args.id)
        ]
        return block, agents

    block, agents = with_runtime(work)
    if args.json:
        print(json.dumps({**msgspec.to_builtins(block), "agents": agents}, indent=2))
        return 0
    print(f"{block.label} ({block.id}) v{block.version}, {len(block.value)}/{block.limit} chars")
    print(f"  attached to: {', '.join(agents) or 'no agent'}")
    for line in block.value.splitlines() or [""]:
        print(f"    {line}")
    return 0


def _history(args: argparse.Namespace) -> int:
    edits = with_runtime(lambda rt: rt.blocks.history(args.id))
    if args.json:
        print(json.dumps(msgspec.to_builtins(edits), indent=2))
        return 0
    for edit in edits:
        value = edit.value if len(edit.value) <= 120 else edit.value[:119] + "…"
        print(f"v{edit.version:<4} {_when(edit.at)}  {edit.editor}")
        print(f"      {value!r}")
    return 0


def _attach(args: argparse.Namespace) -> int:
    from agents.manage import attach_block

    async def work(rt: Any) -> Any:
        agent = await rt.agents.resolve(args.agent)
        return await attach_block(rt, agent.id, args.id)

    agent = with_runtime(work)
    print(f"attached {args.id} to {agent.name}")
    return 0


def _detach(args: argparse.Namespace) -> int:
    from agents.manage import detach_block

    async def work(rt: Any) -> Any:
        agent = await rt.agents.resolve(args.agent)
        return await detach_block(rt, agent.id, args.id)

    agent = with_runtime(work)
    print(f"detached {args.id} from {agent.name}")
    return 0
