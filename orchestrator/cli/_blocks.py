"""``memgrid blocks ...``: the shared memory block registry."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import msgspec

from orchestrator.cli._common import actions, command, emit, print_json, with_runtime

__all__ = ("print_value", "register")


def register(subparsers: Any) -> None:
    sub = actions(subparsers, "blocks", "shared memory blocks")

    create = command(sub, "create", _create, "create a block", json_flag=True)
    create.add_argument("label")
    create.add_argument("--value", default="")
    create.add_argument("--limit", type=int, default=5000)
    create.add_argument("--description", default="")
    create.add_argument("--read-only", action="store_true")
    listing = command(sub, "list", _list, "list blocks", json_flag=True)
    listing.add_argument("--label", default=None)
    show = command(sub, "show", _show, "show a block and the agents attached to it", json_flag=True)
    show.add_argument("id")
    history = command(
        sub, "history", _history, "every version of a block: who, when, what", json_flag=True
    )
    history.add_argument("id")

    for action, attached in (("attach", True), ("detach", False)):
        way = "to" if attached else "from"
        cmd = command(sub, action, _attach_or_detach, f"{action} a block {way} an agent")
        cmd.add_argument("id")
        cmd.add_argument("agent", help="agent name or id")


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
    emit(args, created, lambda: [f"created block {created.label} ({created.id})"])
    return 0


def _list(args: argparse.Namespace) -> int:
    blocks = with_runtime(lambda rt: rt.blocks.list(label=args.label))
    if args.json:
        print_json(blocks)
        return 0
    for block in blocks:
        print(f"{block.id}  {block.label:<16} v{block.version}  {len(block.value)}/{block.limit}")
    if not blocks:
        print("no blocks")
    return 0


def print_value(value: str, indent: str, empty: str = "") -> None:
    """A block's value line by line under ``indent`` (``empty`` stands for no value)."""
    for line in value.splitlines() or [empty]:
        print(f"{indent}{line}")


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
        print_json({**msgspec.to_builtins(block), "agents": agents})
        return 0
    print(f"{block.label} ({block.id}) v{block.version}, {len(block.value)}/{block.limit} chars")
    print(f"  attached to: {', '.join(agents) or 'no agent'}")
    print_value(block.value, "    ")
    return 0


def _history(args: argparse.Namespace) -> int:
    edits = with_runtime(lambda rt: rt.blocks.history(args.id))
    if args.json:
        print_json(edits)
        return 0
    for edit in edits:
        value = edit.value if len(edit.value) <= 120 else edit.value[:119] + "…"
        print(f"v{edit.version:<4} {_when(edit.at)}  {edit.editor}")
        print(f"      {value!r}")
    return 0


def _attach_or_detach(args: argparse.Namespace) -> int:
    from agents.manage import attach_block, detach_block

    attach = args.blocks_command == "attach"

    async def work(rt: Any) -> Any:
        agent = await rt.agents.resolve(args.agent)
        return await (attach_block if attach else detach_block)(rt, agent.id, args.id)

    done = "attached {} to {}" if attach else "detached {} from {}"
    print(done.format(args.id, with_runtime(work).name))
    return 0
