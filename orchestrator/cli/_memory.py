"""``memgrid memory``, ``memgrid messages``, ``memgrid context``: an agent's memory from the CLI.

- ``memory AGENT`` shows the core memory blocks; ``memory AGENT edit LABEL`` sets, appends to or
  replaces in a block (compare-and-set: a concurrent edit by the agent is never lost);
  ``memory AGENT archival list|search|insert|delete`` browses archival memory.
- ``messages AGENT`` pages back through recall memory, with reasoning and tool calls.
- ``context AGENT`` shows what the next request to the model holds, tokens by section, against
  the agent's context window.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from orchestrator.cli._blocks import print_value
from orchestrator.cli._common import UsageError, actions, command, emit, print_json, with_runtime

if TYPE_CHECKING:
    from agents.runtime import Runtime
    from storage.records import Agent, Block

__all__ = ("register",)


def register(subparsers: Any) -> None:
    memory = command(
        subparsers, "memory", _show, "an agent's core and archival memory", json_flag=True
    )
    memory.add_argument("agent", help="agent name or id")
    sub = memory.add_subparsers(dest="memory_command", metavar="ACTION")

    edit = command(sub, "edit", _edit, "change a core memory block, by label", json_flag=True)
    edit.add_argument("label")
    how = edit.add_mutually_exclusive_group(required=True)
    how.add_argument("--value", help="the block's new value")
    how.add_argument("--file", type=Path, help="the block's new value, from a file")
    how.add_argument("--append", help="text added on a new line")
    how.add_argument("--replace", nargs=2, metavar=("OLD", "NEW"), help="replace OLD by NEW")

    asub = actions(sub, "archival", "archival memory: list, search, insert, delete")
    listing = command(asub, "list", _archival_list, "passages, oldest first", json_flag=True)
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--after", default=None, help="a passage id: the page after it")
    search = command(
        asub, "search", _archival_search, "passages nearest in meaning to a query", json_flag=True
    )
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=5)
    insert = command(asub, "insert", _archival_insert, "store a passage", json_flag=True)
    insert.add_argument("text")
    insert.add_argument("--tag", action="append", default=[], dest="tags")
    delete = command(asub, "delete", _archival_delete, "delete passages by id")
    delete.add_argument("ids", nargs="+")

    messages = command(
        subparsers, "messages", _messages, "an agent's messages (recall memory)", json_flag=True
    )
    messages.add_argument("agent", help="agent name or id")
    messages.add_argument("--limit", type=int, default=20, help="messages a page (20)")
    messages.add_argument("--before", default=None, help="a message id: the page before it")
    context = command(
        subparsers, "context", _context, "an agent's context window, by section", json_flag=True
    )
    context.add_argument("agent", help="agent name or id")


def _dump(data: Any) -> None:
    print_json(data, ensure_ascii=False)


def _print_page(
    args: argparse.Namespace,
    items: list[Any],
    limit: int,
    lines: Callable[[Any], Iterable[str]],
    *,
    more: Callable[[list[Any]], str],
    empty: str,
) -> int:
    """A page of ``items`` (JSON with ``--json``), each item as its ``lines``; then how to
    ask for the next page when this one is full, or ``empty`` when there is nothing."""
    if args.json:
        _dump(items)
        return 0
    for item in items:
        for line in lines(item):
            print(line)
    if len(items) == limit:
        print(more(items))
    elif not items:
        print(empty)
    return 0


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise UsageError(f"{flag} must be 1 or more, got {value}")
    return value


# --- core memory -------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    async def work(rt: Runtime) -> tuple[Agent, list[Block]]:
        agent = await rt.agents.resolve(args.agent)
        return agent, await rt.blocks.get_many(agent.block_ids)

    agent, blocks = with_runtime(work)
    if args.json:
        _dump({"agent": agent.name, "id": agent.id, "blocks": blocks})
        return 0
    print(f"{agent.name} ({agent.id}): {len(blocks)} core memory blocks")
    for block in blocks:
        flag = ", read-only" if block.read_only else ""
        print(f"\n[{block.label}] {len(block.value)}/{block.limit} chars, v{block.version}{flag}")
        print_value(block.value, "  ", "(empty)")
    return 0


def _new_value(args: argparse.Namespace, old: str) -> str:
    if args.value is not None:
        return str(args.value)
    if args.file is not None:
        try:
            return str(args.file.read_text())
        except OSError as exc:
            raise UsageError(f"--file {args.file}: {exc.strerror or exc}") from None
    if args.append is not None:
        return f"{old}\n{args.append}" if old else str(args.append)
    before, after = args.replace
    if before not in old:
        raise UsageError(f"--replace: {before!r} is not in the block; nothing changed")
    return old.replace(before, after)


def _edit(args: argparse.Namespace) -> int:
    async def work(rt: Runtime) -> Block:
        agent = await rt.agents.resolve(args.agent)
        blocks = await rt.blocks.get_many(agent.block_ids)
        found = next((b for b in blocks if b.label == args.label), None)
        if found is None:
            labels = ", ".join(b.label for b in blocks) or "none"
            raise UsageError(f"{agent.name} has no block labelled {args.label!r} (has: {labels})")
        if found.read_only:
            raise UsageError(f"block {args.label!r} of {agent.name} is read-only")

        def change(block: Block) -> Block:
            return msgspec.structs.replace(block, value=_new_value(args, block.value))

        return await rt.blocks.update(found.id, change, editor="cli")

    block = with_runtime(work)
    if args.json:
        _dump(block)
    else:
        print(f"[{block.label}] now v{block.version}, {len(block.value)}/{block.limit} chars")
    return 0


# --- archival memory ---------------------------------------------------------------------


def _archive(rt: Runtime) -> Any:
    if rt.archival is None:
        raise UsageError("archival memory is not configured in this process")
    return rt.archival


def _passage_row(passage: Any, score: float | None = None) -> str:
    tags = f" [{', '.join(passage.tags)}]" if passage.tags else ""
    lead = f"{score:.3f} " if score is not None else ""
    text = passage.text.replace("\n", " ")
    return f"{lead}{passage.id}{tags}: {text[:160]}{'…' if len(text) > 160 else ''}"


def _archival_list(args: argparse.Namespace) -> int:
    limit = _positive(args.limit, "--limit")

    async def work(rt: Runtime) -> list[Any]:
        agent = await rt.agents.resolve(args.agent)
        found: list[Any] = await _archive(rt).list(agent.id, limit=limit, after=args.after)
        return found

    passages = with_runtime(work)
    return _print_page(
        args,
        passages,
        limit,
        lambda passage: [_passage_row(passage)],
        more=lambda full: f"(more: --after {full[-1].id})",
        empty="(no passages)",
    )


def _archival_search(args: argparse.Namespace) -> int:
    limit = _positive(args.limit, "--limit")

    async def work(rt: Runtime) -> list[Any]:
        agent = await rt.agents.resolve(args.agent)
        hits: list[Any] = await _archive(rt).search(
            agent.id,
            agent.embedding,
            args.query,
            top_k=limit,
            offset=0,
            tags=None,
            match_all_tags=False,
            start=None,
            end=None,
        )
        return hits

    hits = with_runtime(work)
    if args.json:
        _dump([{"score": h.score, "passage": h.passage} for h in hits])
        return 0
    for hit in hits:
        print(_passage_row(hit.passage, hit.score))
    if not hits:
        print("(nothing found)")
    return 0


def _archival_insert(args: argparse.Namespace) -> int:
    if not args.text.strip():
        raise UsageError("the passage text is empty")

    async def work(rt: Runtime) -> Any:
        agent = await rt.agents.resolve(args.agent)
        return await _archive(rt).insert(agent.id, agent.embedding, args.text, list(args.tags))

    passage = with_runtime(work)
    emit(args, passage, lambda: [f"inserted {passage.id}"])
    return 0


def _archival_delete(args: argparse.Namespace) -> int:
    async def work(rt: Runtime) -> int:
        agent = await rt.agents.resolve(args.agent)
        deleted: int = await _archive(rt).delete(agent.id, list(args.ids))
        return deleted

    deleted = with_runtime(work)
    print(f"deleted {deleted} of {len(args.ids)} passage(s)")
    return 0 if deleted == len(args.ids) else 1


# --- recall memory and the context window ------------------------------------------------


def _message_lines(message: Any) -> list[str]:
    """One message as the lines a person reads: who, what, and the calls it made."""
    from orchestrator.render import short

    when = _clock(message.created_at)
    lines = []
    text = (message.content or "").strip()
    if message.role == "assistant":
        if text:
            lines.append(f"{when} thinking: {short(text, 300)}")
        for call in message.tool_calls or []:
            lines.append(f"{when} -> {call.name}({short(call.arguments, 300)})")
    elif message.role == "tool":
        mark = "ok" if message.status != "error" else "ERROR"
        lines.append(f"{when} <- {message.name or 'tool'} {mark}: {short(text, 300)}")
    else:
        lines.append(f"{when} {message.role}: {short(text, 300)}")
    return lines


def _clock(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _messages(args: argparse.Namespace) -> int:
    limit = _positive(args.limit, "--limit")

    async def work(rt: Runtime) -> list[Any]:
        agent = await rt.agents.resolve(args.agent)
        page = await rt.messages.list(agent.id, before=args.before, limit=limit, ascending=False)
        return list(reversed(page))

    page = with_runtime(work)
    return _print_page(
        args,
        page,
        limit,
        _message_lines,
        more=lambda full: f"(earlier: --before {full[0].id})",
        empty="(no messages)",
    )


def _context(args: argparse.Namespace) -> int:
    from agents.context_window import ContextOverview, context_overview

    async def work(rt: Runtime) -> ContextOverview:
        return await context_overview(rt, await rt.agents.resolve(args.agent))

    view = with_runtime(work)
    if args.json:
        _dump(view)
        return 0
    sections = [
        ("system prompt", view.num_tokens_system),
        ("tool rules", view.num_tokens_tool_usage_rules),
        ("core memory", view.num_tokens_core_memory),
        ("memory metadata", view.num_tokens_external_memory_summary),
        ("summary", view.num_tokens_summary_memory),
        ("tool schemas", view.num_tokens_functions_definitions),
        (f"messages ({view.num_messages - 1})", view.num_tokens_messages),
    ]
    window = max(view.context_window_size_max, 1)
    used = view.context_window_size_current
    print(f"context window: {used:,} of {window:,} tokens ({100 * used / window:.1f}%)")
    for name, tokens in sections:
        bar = "#" * round(40 * tokens / window)
        print(f"  {name:<18} {tokens:>8,}  {bar}")
    print(
        f"recall memory: {view.num_recall_memory:,} messages; "
        f"archival memory: {view.num_archival_memory:,} passages"
    )
    if used > window:
        print("over the window: the next step evicts older messages into the summary")
    return 0
