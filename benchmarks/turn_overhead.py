"""What the step loop adds to one model call: a single-step turn at growing history sizes.

One agent per row; its recall memory is preloaded with N messages (user / ``send_message`` /
tool-return triples) and its in-context list is reset before every turn (untimed) to the same
tail of ``--tail`` messages (9: three whole triples, so the 10 row can have one), so every row
sends the same request. The model is the scripted model answering
``say("ok")`` at once, served in this process over loopback HTTP, so a turn is exactly one
step: compile context, one chat completion, run ``send_message``, commit. Redis is a private
``redis-server`` (no persistence) started and stopped here.

Rows (timed round-robin, one turn of each row in turn, so drift hits them all alike):

* ``sdk baseline``: the same request to the same scripted model through the ``openai`` SDK's
  client the way ``LLMClient.chat`` sends it (``client.post`` of JSON bytes, bytes back), i.e.
  the HTTP round trip the loop cannot avoid;
* one row per ``--sizes`` entry with ``archival=None``;
* one row at ``--archival-size`` history with a real embedded passage store (Qdrant Edge,
  ``--passages`` passages over 8 tags, hashing embedder), which adds the archival count and
  tags lookups every step does.

Each turn appends 3 messages, so the history column shows the size before and after.
Targets: median <= 8 ms; the largest row <= 1.2x the smallest.

Run: ``.venv/bin/python benchmarks/turn_overhead.py`` (about a minute, 100k preload included);
``--sizes 10,1000,100000 --turns 200 --warmup 30 --passages 1000``; ``--profile`` adds a
per-phase breakdown, Redis round trips per turn and a cProfile summary of turns at 1,000
history (``--profile-size``).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import inspect
import io
import itertools
import json
import pstats
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import openai
from _harness import (  # benchmarks/ is first on sys.path
    CapturedRequest,
    RedisCounter,
    Scratch,
    chat_history,
    int_list,
    one_step_turn,
    options,
    percentile,
    round_robin,
    run_on_redis,
    table,
)

import agents._act
import agents._ask
import agents._turn
import agents.loop
from agents.archival import PassageArchival
from agents.llm import LLMClient, LLMSettings
from agents.manage import AgentSpec, create_agent
from agents.runtime import LLMPool, Runtime
from agents.scripted import ScriptedModel, say
from agents.tokens import TokenCounter
from bus import connect
from storage.embeddings import HashingEmbedder
from storage.passages import EdgePassageStore
from storage.records import Message

__all__ = ("main",)

BATCH = 500
WORDS = [
    *("memory", "agent", "context", "window", "recall", "archival", "passage", "summary"),
    *("tool", "call", "heartbeat", "user", "assistant", "persona", "human", "block"),
    *("search", "message", "step", "turn", "model", "redis", "stream", "lease"),
]


# --- set-up ------------------------------------------------------------------------------


def _sentence(i: int, n: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 13) % len(WORDS)] for k in range(n)).capitalize() + "."


@dataclass
class Row:
    """One timed row: an agent with its preloaded history, or the SDK baseline."""

    name: str
    size: int
    agent_id: str = ""
    tail: list[str] = field(default_factory=list)
    archival: PassageArchival | None = None
    laps: list[float] = field(default_factory=list)
    end_size: int = 0


async def _preload(rt: Runtime, size: int, name: str, tail: int) -> Row:
    agent = await create_agent(rt, AgentSpec(name=name, model="openai/scripted"))
    started = time.perf_counter()
    total = max(size, tail)
    # The log ends with a tool return, so a tail of whole triples starts with a user message.
    phase = (2 - total) % 3
    last: list[Message] = []
    for offset in range(0, total, BATCH):
        numbers = range(offset + 1, min(offset + BATCH, total) + 1)
        batch = chat_history(
            agent.id,
            numbers,
            lambda n: _sentence(n, 12 + n % 9),
            lambda n: _sentence(n, 10),
            phase=phase,
        )
        last = await rt.messages.append(batch)
        if total >= 20 * BATCH and (offset // BATCH) % 40 == 39:
            rate = (offset + len(batch)) / (time.perf_counter() - started)
            print(f"  {name}: {offset + len(batch):,} / {total:,} messages ({rate:,.0f}/s)")
    ids = [m.id for m in last[-tail:]]
    elapsed = time.perf_counter() - started
    print(f"  {name}: {total:,} messages in {elapsed:.1f} s ({total / elapsed:,.0f}/s)")
    return Row(name=name, size=total, agent_id=agent.id, tail=ids)


async def _archival(agent_id: str, embedding: str, folder: Path, count: int) -> PassageArchival:
    archival = PassageArchival(EdgePassageStore(folder), lambda handle: HashingEmbedder())
    tags = [f"topic-{t}" for t in range(8)]
    for start in range(0, count, 250):
        for t, tag in enumerate(tags):
            texts = [_sentence(i, 20) for i in range(start + t, min(start + 250, count), 8)]
            if texts:
                await archival.insert_many(agent_id, embedding, texts, [tag])
    return archival


# --- timing --------------------------------------------------------------------------------


async def _turn(rt: Runtime, row: Row, text: str, phases: _Phases | None = None) -> float:
    """Reset the in-context tail (untimed), then time one turn end to end, in ms."""
    await rt.agents.update(row.agent_id, message_ids=row.tail)
    rt.archival = row.archival
    if phases is not None:
        phases.active = phases.redis.active = True
    started = time.perf_counter()
    await one_step_turn(rt, row.agent_id, text)
    lap = (time.perf_counter() - started) * 1000
    if phases is not None:
        phases.active = phases.redis.active = False
    return lap


def _stats(laps: list[float]) -> tuple[float, float]:
    return percentile(laps, 50), percentile(laps, 95)


async def _timed_rows(
    rt: Runtime, rows: list[Row], sdk: openai.AsyncOpenAI, request: dict[str, Any], turns: int
) -> None:
    body = msgspec.json.encode(request)
    headers = {"Content-Type": "application/json"}

    async def baseline() -> None:
        await sdk.post(
            "/chat/completions", content=body, cast_to=bytes, options={"headers": headers}
        )

    sent = itertools.count()

    def turn(row: Row) -> Callable[[], Any]:
        return lambda: _turn(rt, row, f"hello {next(sent)}")

    calls = {row.name: turn(row) if row.agent_id else baseline for row in rows}
    laps = await round_robin(calls, turns)
    for row in rows:
        row.laps = laps[row.name]


# --- profile -------------------------------------------------------------------------------


class _Phases:
    """Wall time per call of the step's phases, by wrapping what the loop calls.

    Counts only while ``active`` (set by :func:`_turn` after its untimed reset).
    """

    def __init__(self) -> None:
        self.active = False
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.redis = RedisCounter()
        self.redis.active = False
        self._undo: list[Callable[[], None]] = []

    def _wrap(self, owner: Any, attr: str, label: str) -> None:
        original = getattr(owner, attr, None)
        if original is None:  # the loop changed: measure what is still there
            return
        ms = self.ms[label]

        def record(started: float) -> None:
            if self.active:
                ms.append((time.perf_counter() - started) * 1000)

        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    record(started)

            setattr(owner, attr, timed_async)
        else:

            @functools.wraps(original)
            def timed(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    record(started)

            setattr(owner, attr, timed)
        self._undo.append(lambda: setattr(owner, attr, original))

    @contextmanager
    def on(self, rt: Runtime, archival: PassageArchival | None) -> Iterator[None]:
        self._wrap(agents.loop, "_step", "_step (whole step)")
        self._wrap(agents._ask, "compact", "compact (build + count)")
        self._wrap(agents._turn, "compile_system", "compile_system")
        self._wrap(TokenCounter, "count", "TokenCounter.count")
        self._wrap(TokenCounter, "observe", "TokenCounter.observe")
        self._wrap(LLMClient, "chat", "LLMClient.chat (HTTP)")
        self._wrap(agents._turn.Turn, "stats", "stats")
        if archival is not None:
            self._wrap(archival, "count", "  archival.count")
            self._wrap(archival, "tags", "  archival.tags")
        self._wrap(agents._turn.Turn, "commit", "commit (fenced script)")
        self._wrap(rt.messages, "stage", "  MessageLog.stage")
        self._wrap(agents._act, "run_call", "run_call (send_message)")
        self._wrap(agents.loop, "read_step", "read_step (one pipeline)")
        self._wrap(agents._ask, "read_step", "read_step (one pipeline)")
        self._wrap(rt.agents, "get", "agents.get")
        self._wrap(rt.blocks, "get_many", "blocks.get_many")
        self._wrap(rt.tools, "get_many_by_name", "tools.get_many_by_name")
        self._wrap(rt.messages, "get", "messages.get (in-context)")
        self._wrap(rt.messages, "next_seq", "messages.next_seq")
        self._wrap(rt.messages, "count", "messages.count")
        try:
            with self.redis.on():
                yield
        finally:
            for undo in reversed(self._undo):
                undo()
            self._undo.clear()


async def _phases(rt: Runtime, row: Row, turns: int) -> None:
    phases = _Phases()
    with phases.on(rt, row.archival):
        laps = [await _turn(rt, row, f"phase {i}", phases) for i in range(turns)]
    print(
        f"\nper-phase wall time, {row.name} ({turns} turns, instrumented: turn median "
        f"{percentile(laps, 50):.2f} ms)\n"
    )
    table(
        ["phase", "calls/turn", "median ms", "ms/turn"],
        (
            [label, f"{len(ms) / turns:.1f}", f"{percentile(ms, 50):.3f}", f"{sum(ms) / turns:.3f}"]
            for label, ms in phases.ms.items()
            if ms
        ),
    )
    print(
        f"\nredis round trips per turn: {phases.redis.trips / turns:.1f} "
        f"({phases.redis.commands / turns:.1f} commands)"
    )
    for name, count in phases.redis.calls.most_common():
        print(f"  {count / turns:>4.1f} x {name}")


_HOT = (
    ("run_turn (async gen, whole turn)", "agents/loop.py", "run_turn"),
    ("LLMClient.chat", "agents/llm.py", "chat"),
    ("  openai response parse", "openai/_response.py", "parse"),
    ("compact", "agents/summarizer.py", "compact"),
    ("compile_system", "agents/context.py", "compile_system"),
    ("TokenCounter.count", "agents/tokens.py", "count"),
    ("TokenCounter.observe", "agents/tokens.py", "observe"),
    ("AgentTool.openai", "agents/tools/registry.py", "openai"),
    ("MessageLog.stage", "storage/messages.py", "stage"),
    ("records decode", "storage/records.py", "decode"),
    ("records encode", "storage/records.py", "encode"),
    ("redis pack_command", "redis/asyncio/connection.py", "pack_command"),
    ("redis read_response", "redis/asyncio/connection.py", "read_response"),
    ("scripted model app (server side)", "agents/scripted/_app.py", "__call__"),
)


async def _cprofile(rt: Runtime, row: Row, turns: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(turns):
        await _turn(rt, row, f"profile {i}")
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values())
    print(f"\ncProfile, {row.name}, {turns} turns (CPU under the profiler, ~2x real)")
    print(f"total own time {total * 1000 / turns:.2f} ms/turn\n")
    print("| function | cumulative ms/turn |")
    print("|---|---:|")
    for label, path, name in _HOT:
        cum = sum(v[3] for (f, _, n), v in entries.items() if f.endswith(path) and n == name)
        print(f"| {label} | {cum * 1000 / turns:.3f} |")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    print("\ntop 15 by own time")
    lines = out.getvalue().splitlines()
    begin = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print("\n".join(line.replace(str(Path.cwd()) + "/", "") for line in lines[begin : begin + 16]))


async def _profile(
    rt: Runtime,
    rows: list[Row],
    sdk: openai.AsyncOpenAI,
    request: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    size, turns = args.profile_size, args.turns
    plain = [r for r in rows if r.agent_id and r.archival is None]
    row = next((r for r in plain if r.size >= size), plain[-1])
    await _phases(rt, row, turns)
    for extra in rows:
        if extra.archival is not None:
            await _phases(rt, extra, turns)
    await _cprofile(rt, row, turns)


# --- main ----------------------------------------------------------------------------------


async def _run(args: argparse.Namespace, redis: Scratch) -> None:
    client, folder = connect(redis.url), redis.folder

    def policy(request: Any) -> Any:
        return say("ok")

    async with (
        ScriptedModel.serve(policy) as model,
        openai.AsyncOpenAI(base_url=model.base_url, api_key="x", max_retries=0) as sdk,
    ):
        rt = Runtime(redis=client, llm=LLMPool(LLMSettings(base_url=model.base_url)))
        try:
            print("preloading history")
            rows = [Row(name="sdk baseline (same request)", size=0)]
            for size in args.sizes:
                rows.append(await _preload(rt, size, f"history-{size}", args.tail))
            arch = await _preload(
                rt, args.archival_size, f"archival-{args.archival_size}", args.tail
            )
            arch.name = f"{arch.name} (+archival)"
            embedding = (await rt.agents.get(arch.agent_id)).embedding
            started = time.perf_counter()
            arch.archival = await _archival(
                arch.agent_id, embedding, folder / "qdrant", args.passages
            )
            print(f"  {args.passages:,} passages in {time.perf_counter() - started:.1f} s")
            rows.append(arch)
            agent_rows = rows[1:]

            capture = CapturedRequest()
            with capture.on():
                for i in range(args.warmup):
                    for row in agent_rows:
                        await _turn(rt, row, f"warm-up {i}")
            request = capture.sdk_kwargs()
            for _ in range(args.warmup):
                await sdk.chat.completions.create(**request)
            model.requests.clear()

            print(f"timing {args.turns} turns per row, round-robin")
            await _timed_rows(rt, rows, sdk, request, args.turns)
            for row in agent_rows:
                row.end_size = await rt.messages.count(row.agent_id)
            _table(rows, request, args)

            if args.profile:
                await _profile(rt, rows, sdk, request, args)
        finally:
            rt.archival = None
            await rt.aclose()
            for row in rows:
                if row.archival is not None:
                    await row.archival.aclose()
            await client.aclose()


def _table(rows: list[Row], request: dict[str, Any], args: argparse.Namespace) -> None:
    size = len(json.dumps(request["messages"])) + len(json.dumps(request["tools"]))
    print(
        f"\nsingle-step turn, scripted model say('ok') in process, {args.turns} turns per row, "
        f"request {len(request['messages'])} messages + {len(request['tools'])} tools "
        f"({size:,} JSON chars)\n"
    )
    base = _stats(rows[0].laps)[0]
    reference = next((r for r in rows[1:] if r.archival is None), rows[1])
    ref = _stats(reference.laps)[0]
    cells = []
    for row in rows:
        median, p95 = _stats(row.laps)
        times = [f"{median:.2f}", f"{p95:.2f}"]
        if not row.agent_id:
            cells.append([row.name, "-", "-", *times, "-", "-"])
            continue
        history = f"{row.size:,} → {row.end_size:,}"
        cells.append(
            [row.name, history, "yes" if row.archival else "no", *times, f"{median / ref:.2f}x"]
        )
        cells[-1].append(f"{median - base:+.2f}")
    header = ["row", "history (start → end)", "archival", "median ms", "p95 ms", "vs 10-row"]
    table([*header, "loop adds"], cells, text=3)
    largest = max((r for r in rows[1:] if r.archival is None), key=lambda r: r.size)
    worst = max(_stats(r.laps)[0] for r in rows[1:])
    ratio = _stats(largest.laps)[0] / ref
    print(
        f"\ntargets: median <= 8 ms: {'met' if worst <= 8 else 'MISSED'} (worst {worst:.2f}); "
        f"{largest.size:,} row <= 1.2x the {reference.size:,} row: "
        f"{'met' if ratio <= 1.2 else 'MISSED'} ({ratio:.2f}x)"
    )


def main() -> None:
    """Start a private redis-server, preload, time the rows, print the table, stop."""
    parser = options(__doc__, turns=200, warmup=30)
    parser.add_argument("--sizes", type=int_list, default=[10, 1000, 100_000])
    parser.add_argument("--tail", type=int, default=9, help="in-context messages (x3)")
    parser.add_argument("--archival-size", type=int, default=1000, help="history of that row")
    parser.add_argument("--passages", type=int, default=1000, help="passages of that row")
    parser.add_argument("--profile", action="store_true", help="phases, round trips, cProfile")
    parser.add_argument("--profile-size", type=int, default=1000)
    run_on_redis(parser, _run, "memgrid-turn-")


if __name__ == "__main__":
    main()
