"""``memgrid agents ...``, ``memgrid send`` and ``memgrid chat``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import msgspec

from agents.letta_messages import (
    FAILED_STOPS,
    Event,
    StopReason,
    UsageStatistics,
    event_encoder,
    iso,
)
from orchestrator.cli._blocks import print_value
from orchestrator.cli._common import actions, command, print_json, with_runtime
from orchestrator.render import note_workers_model, print_event

if TYPE_CHECKING:  # the runtime pulls in the model client: imported when a command runs
    from agents.runtime import Runtime
    from storage.records import Agent

__all__ = ("register",)

T = TypeVar("T")


def register(subparsers: Any) -> None:
    sub = actions(subparsers, "agents", "create, list, show and delete agents")

    create = command(sub, "create", _create, "create an agent", json_flag=True)
    create.add_argument("name")
    create.add_argument("--persona", default=None, help="the persona block's text")
    create.add_argument("--human", default=None, help="the human block's text")
    create.add_argument("--system", default=None, help="replace the default system prompt")
    create.add_argument("--model", default=None, help="model handle, e.g. openai/gpt-4o-mini")
    create.add_argument(
        "--type",
        default=None,
        dest="agent_type",
        choices=["memgpt_agent", "memgpt_v2_agent", "letta_v1_agent"],
        help="how the agent runs (default memgpt_agent; see docs/agent-types.md)",
    )
    create.add_argument("--embedding", default=None, help="embedding handle")
    create.add_argument("--context-window", type=int, default=None)
    create.add_argument("--max-steps", type=int, default=None)
    create.add_argument("--tag", action="append", default=[], dest="tags")

    listing = command(sub, "list", _list, "list agents", json_flag=True)
    listing.add_argument("--tag", action="append", default=[], dest="tags")
    show = command(sub, "show", _show, "show an agent with its memory blocks", json_flag=True)
    show.add_argument("name", help="name or id")
    delete = command(sub, "delete", _delete, "delete an agent and its messages")
    delete.add_argument("name", help="name or id")

    send = command(
        subparsers,
        "send",
        _send,
        "send one message to an agent",
        json_flag="print a Letta-shaped response",
    )
    send.add_argument("name", help="agent name or id")
    send.add_argument("text")
    chat = command(subparsers, "chat", _chat, "talk to an agent (one message per line)")
    chat.add_argument("name", help="agent name or id")


def _agent_json(agent: Agent, blocks: list[Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(agent)
    data["agent_type"] = agent.agent_type  # a default, which stored records leave out
    data["created_at"] = iso(agent.created_at)
    data["updated_at"] = iso(agent.updated_at)
    if blocks is not None:
        data["blocks"] = [msgspec.to_builtins(b) for b in blocks]
    return data


def _create(args: argparse.Namespace) -> int:
    from agents.manage import AgentSpec, BlockSpec, create_agent

    blocks = None
    if args.persona is not None or args.human is not None:
        blocks = [
            BlockSpec(label="persona", value=args.persona or ""),
            BlockSpec(label="human", value=args.human or ""),
        ]
    spec = AgentSpec(
        name=args.name,
        agent_type=args.agent_type,
        system=args.system,
        model=args.model,
        embedding=args.embedding,
        memory_blocks=blocks,
        context_window=args.context_window,
        max_steps=args.max_steps,
        tags=args.tags,
    )

    async def work(rt: Runtime) -> Agent:
        return await create_agent(rt, spec)

    agent = with_runtime(work)
    if args.json:
        print_json(_agent_json(agent))
    else:
        print(f"created {agent.name} ({agent.id}) on {agent.model}")
    return 0


def _list(args: argparse.Namespace) -> int:
    async def work(rt: Runtime) -> list[Agent]:
        return await rt.agents.list(tags=args.tags)

    agents = with_runtime(work)
    if args.json:
        print_json([_agent_json(a) for a in agents])
        return 0
    if not agents:
        print("no agents yet: memgrid agents create NAME")
    for agent in agents:
        tags = f"  tags={','.join(agent.tags)}" if agent.tags else ""
        print(f"{agent.name:<24} {agent.id}  {agent.model}{tags}")
    return 0


def _show(args: argparse.Namespace) -> int:
    async def work(rt: Runtime) -> tuple[Agent, list[Any], int]:
        agent = await rt.agents.resolve(args.name)
        blocks = await rt.blocks.get_many(agent.block_ids)
        return agent, blocks, await rt.messages.count(agent.id)

    agent, blocks, count = with_runtime(work)
    if args.json:
        data = _agent_json(agent, blocks)
        data["recall_count"] = count
        print_json(data)
        return 0
    print(f"{agent.name} ({agent.id})")
    print(f"  type: {agent.agent_type}   model: {agent.model}   embedding: {agent.embedding}")
    print(f"  tools: {', '.join(agent.tools)}")
    print(f"  messages: {count} in recall, {len(agent.message_ids)} in context")
    if agent.summary:
        print(f"  summary: {agent.summary}")
    for block in blocks:
        flag = " (read-only)" if block.read_only else ""
        print(f"  [{block.label}] {len(block.value)}/{block.limit} chars{flag}, id {block.id}")
        print_value(block.value, "    ")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from agents.manage import delete_agent

    async def work(rt: Runtime) -> Agent:
        agent = await rt.agents.resolve(args.name)
        return await delete_agent(rt, agent.id)

    agent = with_runtime(work)
    print(f"deleted {agent.name} ({agent.id})")
    return 0


async def _turn(
    rt: Runtime,
    name: str,
    text: str,
    *,
    live: bool,
    role: Literal["user", "approval"] = "user",
) -> list[Event]:
    """Submit through the bus; with no live worker, run one in burst mode in this process.

    ``role="approval"`` answers a run stopped with ``requires_approval`` (``text`` is the
    approval's JSON).
    """
    from agents.limits import check_message
    from agents.runs import RunStore, live_workers
    from agents.worker import Worker, WorkerSettings
    from bus.envelopes import InboxMessage

    agent = await rt.agents.resolve(name)
    if role == "user":
        check_message(
            agent, text, max_bytes=rt.settings.max_message_bytes, counter=rt.counter(agent.model)
        )
    runs = RunStore(rt.redis, run_ttl_s=rt.settings.run_ttl_s)
    submitted = await runs.submit(agent.id, [InboxMessage(content=text, role=role)])
    events: list[Event] = []
    async with anyio.create_task_group() as tg:
        workers = await live_workers(rt.redis)
        if not workers:
            tg.start_soon(Worker(rt, WorkerSettings(burst=True, concurrency=4)).run)
        else:
            note_workers_model(workers)
        async for event in runs.follow(agent.id, submitted.run_id):
            events.append(event)
            if live:
                print_event(event, agent=agent.name)
    return events


def _letta_response(events: list[Event]) -> dict[str, Any]:
    messages = [e for e in events if not isinstance(e, StopReason | UsageStatistics)]
    stop = next((e for e in events if isinstance(e, StopReason)), None)
    usage = next((e for e in events if isinstance(e, UsageStatistics)), UsageStatistics())
    return {
        "messages": [json.loads(event_encoder.encode(m)) for m in messages],
        "stop_reason": {
            "message_type": "stop_reason",
            "stop_reason": stop.stop_reason if stop else "error",
            "detail": stop.detail if stop else "the run ended without a stop reason",
        },
        "usage": {**msgspec.to_builtins(usage), "message_type": "usage_statistics"},
    }


def _send(args: argparse.Namespace) -> int:
    async def work(rt: Runtime) -> list[Event]:
        return await _turn(rt, args.name, args.text, live=not args.json)

    events = with_runtime(work)
    if args.json:
        print_json(_letta_response(events))
    return _turn_status(events)


def _turn_status(events: list[Event]) -> int:
    """0 when the turn did its work; else 1, with the stop reason and its cause on stderr."""
    stop = next((e for e in events if isinstance(e, StopReason)), None)
    if stop is not None and stop.stop_reason not in FAILED_STOPS:
        return 0
    reason = stop.stop_reason if stop else "error"
    detail = stop.detail if stop and stop.detail else "no detail recorded"
    print(f"memgrid: the turn failed ({reason}): {detail}", file=sys.stderr)
    return 1


def _chat(args: argparse.Namespace) -> int:
    interactive = sys.stdin.isatty()

    async def work(rt: Runtime) -> int:
        agent = await rt.agents.resolve(args.name)
        if interactive:
            print(f"chatting with {agent.name}; Ctrl-D to leave")
        while True:
            if interactive:
                print("you> ", end="", flush=True)
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                return 0
            if line.strip():
                _turn_status(await _turn(rt, agent.id, line.rstrip("\n"), live=True))

    return with_runtime(work)
