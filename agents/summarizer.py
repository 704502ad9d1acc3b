"""Keeping the context window from overflowing: evict the oldest messages into a summary.

Above ``HIGH_WATER`` of the window the oldest in-context messages are evicted until the
request fits in ``LOW_WATER``, never splitting a tool call from its result and never touching
the system message or this step's new input. The evicted messages are folded with the previous
summary into a new one by the model (recursively, chunk by chunk, when they are too long to
summarize at once). They stay in recall memory whatever happens; if the model cannot summarize,
a plain note takes the summary's place and the turn goes on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import structlog

from agents.context import to_openai_messages
from agents.llm import LLMError
from agents.model import ChatModel
from agents.prompts import SUMMARIZER_PROMPT
from agents.tokens import TokenCounter, request_chars
from storage.errors import UserError
from storage.records import Agent, Message

__all__ = ("HIGH_WATER", "LOW_WATER", "Compaction", "ContextOverflow", "compact")

HIGH_WATER = 0.9
LOW_WATER = 0.7
_SUMMARY_RESERVE = 0.1  # of the window, kept free for the summary that will be added
_MAX_LINE_CHARS = 2000

log = structlog.get_logger("memgrid.summarizer")

RequestBuilder = Callable[
    [Agent, Sequence[Message]], tuple[list[dict[str, Any]], list[dict[str, Any]]]
]


class ContextOverflow(UserError):
    """Even with every old message evicted the request does not fit the window."""


class Compaction(msgspec.Struct, kw_only=True):
    """What a compaction did."""

    agent: Agent
    kept: list[Message]
    evicted: int
    summarized: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # When nothing was evicted: the request as built for the count (messages, tools) and its
    # size in characters, so that the caller need not build and measure it again.
    request: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None
    chars: int = 0


def _needs(
    counter: TokenCounter, build: RequestBuilder, agent: Agent, msgs: Sequence[Message]
) -> int:
    messages, tools = build(agent, msgs)
    return counter.count(messages, tools)


def _cut_point(
    counter: TokenCounter,
    build: RequestBuilder,
    agent: Agent,
    committed: Sequence[Message],
    pending: Sequence[Message],
    target: int,
) -> int:
    """The smallest number of oldest committed messages to evict to fit ``target``."""
    base_messages, tools = build(agent, list(pending))
    base = counter.count(base_messages, tools)
    sizes = [counter.count([m], ()) for m in to_openai_messages(committed)]
    total = base + sum(sizes)
    cut = 0
    while cut < len(committed) and total > target:
        total -= sizes[cut]
        cut += 1
    # Never leave a tool result without the call that produced it.
    while cut < len(committed) and committed[cut].role == "tool":
        cut += 1
    return cut


def _transcript(messages: Sequence[Message]) -> list[str]:
    lines = []
    for m in messages:
        when = dt.datetime.fromtimestamp(m.created_at, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")
        parts = [m.content] if m.content else []
        parts += [f"[called {c.name}({c.arguments})]" for c in m.tool_calls]
        text = " ".join(parts)
        if len(text) > _MAX_LINE_CHARS:
            text = text[:_MAX_LINE_CHARS] + " …"
        who = f"{m.role} ({m.name})" if m.role == "tool" and m.name else m.role
        lines.append(f"[{when}] {who}: {text}")
    return lines


async def _summarize(
    llm: ChatModel, model: str, previous: str, lines: list[str], window: int
) -> tuple[str, int, int]:
    """Fold ``lines`` into ``previous`` chunk by chunk; returns (summary, prompt, completion)."""
    budget_chars = int(window * 0.5 * 3)
    summary, prompt_tokens, completion_tokens = previous, 0, 0
    chunk: list[str] = []
    size = 0
    chunks: list[list[str]] = []
    for line in lines:
        if chunk and size + len(line) > budget_chars:
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line)
    if chunk:
        chunks.append(chunk)
    for part in chunks:
        request = [
            {"role": "system", "content": SUMMARIZER_PROMPT},
            {
                "role": "user",
                "content": f"Previous summary:\n{summary or '(none)'}\n\n"
                "Messages leaving the context window:\n" + "\n".join(part),
            },
        ]
        response = await llm.chat(model, request, max_tokens=600)
        prompt_tokens += response.prompt_tokens
        completion_tokens += response.completion_tokens
        text = response.content.strip()
        if not text:
            raise LLMError("the model returned an empty summary")
        summary = _cap(text, window)
    return summary, prompt_tokens, completion_tokens


def _cap(summary: str, window: int) -> str:
    """Keep a summary within its share of the window: a model that answers with a long text
    (or echoes its input) must not leave a summary that alone overflows the context."""
    limit = max(200, int(window * _SUMMARY_RESERVE * 3))
    if len(summary) <= limit:
        return summary
    return summary[: limit - 1].rstrip() + "…"


async def compact(
    *,
    agent: Agent,
    committed: Sequence[Message],
    pending: Sequence[Message],
    build: RequestBuilder,
    counter: TokenCounter,
    llm: ChatModel,
    now: float,
    force: bool = False,
) -> Compaction:
    """Evict and summarize when the request is above the high-water mark (or ``force``)."""
    window = agent.context_window
    request = build(agent, [*committed, *pending])
    chars = request_chars(*request)
    if not force and counter.count(request[0], chars=chars) <= window * HIGH_WATER:
        return Compaction(
            agent=agent,
            kept=list(committed),
            evicted=0,
            summarized=False,
            request=request,
            chars=chars,
        )
    target = int(window * (LOW_WATER - _SUMMARY_RESERVE))
    cut = _cut_point(counter, build, agent, committed, pending, target)
    if force and cut == 0 and committed:
        cut = max(1, len(committed) // 2)
        while cut < len(committed) and committed[cut].role == "tool":
            cut += 1
    evicted, kept = list(committed[:cut]), list(committed[cut:])
    if _needs(counter, build, agent, [*kept, *pending]) > window:
        raise ContextOverflow(
            f"the system prompt, memory blocks and new input need more than the "
            f"{window}-token context window even with every old message evicted"
        )
    if not evicted:
        return Compaction(agent=agent, kept=kept, evicted=0, summarized=False)
    summarized = True
    prompt_tokens = completion_tokens = 0
    try:
        summary, prompt_tokens, completion_tokens = await _summarize(
            llm, agent.model, agent.summary, _transcript(evicted), window
        )
    except LLMError as exc:
        summarized = False
        when = dt.datetime.fromtimestamp(now, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        note = (
            f"{len(evicted)} messages were evicted at {when} without a summary (the model "
            "could not summarize them); search recall memory with conversation_search."
        )
        summary = _cap(f"{agent.summary}\n{note}".strip(), window)
        log.warning("summary_failed", agent_id=agent.id, error=str(exc), evicted=len(evicted))
    updated = msgspec.structs.replace(
        agent,
        summary=summary,
        evicted_count=agent.evicted_count + len(evicted),
        message_ids=[m.id for m in kept],
    )
    log.info("context_compacted", agent_id=agent.id, evicted=len(evicted), summarized=summarized)
    return Compaction(
        agent=updated,
        kept=kept,
        evicted=len(evicted),
        summarized=summarized,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )
