"""What the step loop adds to one model call: a single-step turn at growing history sizes.

One agent per row; its recall memory is preloaded with N messages (user / ``send_message`` /
tool-return triples) and its in-context list is reset before every turn (untimed) to the same
tail of ``--tail`` messages (9: three whole triples, so the 10 row can have one), so every row
sends the same request. The model is the scripted model answering
``say("ok")`` at once, served in this process over loopback HTTP, so a turn is exactly one
step: compile context, one chat completion, run ``send_message``, commit. Redis is a private
``redis-server`` (no persistence) started and stopped here.

Rows (timed round-robin, one turn of each row in turn, so drift hits them all alike):

* ``sdk baseline``: a raw ``openai`` SDK ``chat.completions.create`` of the same request to
  the same scripted model, i.e. the HTTP round trip the loop cannot avoid;
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
import json
import logging
import pstats
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import msgspec
import openai
import redis.asyncio as aioredis
import redis.exceptions
import structlog
from openai.types.chat import ChatCompletion

import agents._turn
import agents.loop
import agents.summarizer
from agents.archival import PassageArchival
from agents.llm import LLMClient, LLMSettings
from agents.loop import InputMessage, TurnResult, run_turn
from agents.manage import AgentSpec, create_agent
from agents.runtime import LLMPool, Runtime
from agents.scripted import ScriptedModel, say
from agents.tokens import TokenCounter
from agents.tools.registry import agent_tools
from bus import connect, find_redis_server
from storage import keys as storage_keys
from storage.embeddings import HashingEmbedder
from storage.passages import EdgePassageStore
from storage.records import Agent, Block, Message, Role, ToolCall, decode

__all__ = ("main",)

BATCH = 500
T0 = 1_700_000_000.0
WORDS = [
    *("memory", "agent", "context", "window", "recall", "archival", "passage", "summary"),
    *("tool", "call", "heartbeat", "user", "assistant", "persona", "human", "block"),
    *("search", "message", "step", "turn", "model", "redis", "stream", "lease"),
]


# --- set-up --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            find_redis_server(),
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, f"redis://127.0.0.1:{port}/0"


async def _wait_ready(client: aioredis.Redis) -> None:
    for _ in range(500):
        try:
            await client.ping()
            return
        except redis.exceptions.ConnectionError:
            await anyio.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def _sentence(i: int, n: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 13) % len(WORDS)] for k in range(n)).capitalize() + "."


def _history(agent_id: str, start: int, count: int, shift: int) -> list[Message]:
    """User text, a send_message call, its tool return, repeated; ``shift`` picks the phase."""
    out: list[Message] = []
    for i in range(start, start + count):
        kind = (i + shift) % 3
        role: Role = ("user", "assistant", "tool")[kind]
        calls: list[ToolCall] = []
        content = _sentence(i, 12 + i % 9)
        extra: dict[str, Any] = {}
        if kind == 1:
            args = json.dumps({"message": _sentence(i + 1, 10)})
            calls = [ToolCall(id=f"call-{i - 1}", name="send_message", arguments=args)]
        elif kind == 2:
            content = json.dumps({"status": "OK", "message": "None", "time": "2024-01-01"})
            extra = {"tool_call_id": f"call-{i - 2}", "name": "send_message", "status": "success"}
        out.append(
            Message(
                id=f"message-{agent_id[6:14]}-{i:07d}",
                agent_id=agent_id,
                role=role,
                content=content,
                tool_calls=calls,
                created_at=T0 + i,
                **extra,
            )
        )
    return out


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
    shift = -total % 3
    last: list[Message] = []
    for offset in range(0, total, BATCH):
        batch = _history(agent.id, offset, min(BATCH, total - offset), shift)
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
    result = TurnResult()
    if phases is not None:
        phases.active = True
    started = time.perf_counter()
    async for _ in run_turn(rt, row.agent_id, [InputMessage(content=text)], result=result):
        pass
    lap = (time.perf_counter() - started) * 1000
    if phases is not None:
        phases.active = False
    if result.stop_reason != "end_turn" or result.usage.step_count != 1:
        raise RuntimeError(f"expected one step ending the turn, got {result!r}")
    return lap


class _Capture:
    """Records the last request the loop sent, to replay it through the raw SDK."""

    def __init__(self) -> None:
        self.kwargs: dict[str, Any] = {}

    @contextmanager
    def on(self) -> Iterator[None]:
        original = LLMClient.chat

        async def chat(
            client: LLMClient, model: str, messages: Any, tools: Any = (), **kw: Any
        ) -> Any:
            self.kwargs = {
                "model": model.split("/", 1)[-1],
                "messages": list(messages),
                "tools": list(tools),
                "tool_choice": "auto",
            }
            return await original(client, model, messages, tools, **kw)

        setattr(LLMClient, "chat", chat)  # noqa: B010
        try:
            yield
        finally:
            setattr(LLMClient, "chat", original)  # noqa: B010


def _stats(laps: list[float]) -> tuple[float, float]:
    return statistics.median(laps), statistics.quantiles(laps, n=100, method="inclusive")[94]


async def _timed_rows(
    rt: Runtime, rows: list[Row], sdk: openai.AsyncOpenAI, request: dict[str, Any], turns: int
) -> None:
    async def baseline() -> float:
        started = time.perf_counter()
        await sdk.chat.completions.create(**request)
        return (time.perf_counter() - started) * 1000

    for i in range(turns):
        for row in rows:
            if row.agent_id:
                row.laps.append(await _turn(rt, row, f"hello {i}"))
            else:
                row.laps.append(await baseline())


# --- profile -------------------------------------------------------------------------------


class _Phases:
    """Wall time per call of the step's phases, by wrapping what the loop calls.

    Counts only while ``active`` (set by :func:`_turn` after its untimed reset).
    """

    def __init__(self) -> None:
        self.active = False
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.redis_calls: Counter[str] = Counter()
        self.redis_trips = 0
        self.redis_commands = 0
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

    def _count_redis(self) -> None:
        single: Callable[..., Any] = aioredis.Redis.execute_command
        piped = aioredis.client.Pipeline.execute

        async def execute_command(client: Any, *args: Any, **options: Any) -> Any:
            if self.active:
                self.redis_trips += 1
                self.redis_commands += 1
                self.redis_calls[str(args[0]).upper()] += 1
            return await single(client, *args, **options)

        async def execute(pipe: Any, raise_on_error: bool = True) -> Any:
            if self.active:
                self.redis_trips += 1
                names = [str(c[0][0]).upper() for c in pipe.command_stack]
                self.redis_commands += len(names)
                kinds = ",".join(f"{n}x{k}" if n > 1 else k for k, n in Counter(names).items())
                label = "MULTI/EXEC" if pipe.is_transaction else "PIPELINE"
                self.redis_calls[f"{label}[{kinds}]"] += 1
            return await piped(pipe, raise_on_error)

        setattr(aioredis.Redis, "execute_command", execute_command)  # noqa: B010
        setattr(aioredis.client.Pipeline, "execute", execute)  # noqa: B010
        self._undo.append(lambda: setattr(aioredis.Redis, "execute_command", single))
        self._undo.append(lambda: setattr(aioredis.client.Pipeline, "execute", piped))

    @contextmanager
    def on(self, rt: Runtime, archival: PassageArchival | None) -> Iterator[None]:
        self._wrap(agents.loop, "_step", "_step (whole step)")
        self._wrap(agents.loop, "compact", "compact (build + count)")
        self._wrap(agents._turn, "compile_system", "compile_system")
        self._wrap(TokenCounter, "count", "TokenCounter.count")
        self._wrap(TokenCounter, "observe", "TokenCounter.observe")
        self._wrap(LLMClient, "chat", "LLMClient.chat (HTTP)")
        self._wrap(agents._turn.Turn, "stats", "stats")
        if archival is not None:
            self._wrap(archival, "count", "  archival.count")
            self._wrap(archival, "tags", "  archival.tags")
        self._wrap(agents._turn.Turn, "commit", "commit (MULTI/EXEC)")
        self._wrap(rt.messages, "stage", "  MessageLog.stage")
        self._wrap(agents.loop, "run_call", "run_call (send_message)")
        self._wrap(agents.loop, "read_step", "read_step (one pipeline)")
        self._wrap(rt.agents, "get", "agents.get")
        self._wrap(rt.blocks, "get_many", "blocks.get_many")
        self._wrap(rt.tools, "get_many_by_name", "tools.get_many_by_name")
        self._wrap(rt.messages, "get", "messages.get (in-context)")
        self._wrap(rt.messages, "next_seq", "messages.next_seq")
        self._wrap(rt.messages, "count", "messages.count")
        self._count_redis()
        try:
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
        f"{statistics.median(laps):.2f} ms)\n"
    )
    print(f"| {'phase':<34} | calls/turn | median ms | ms/turn |")
    print(f"|{'-' * 36}|-----------:|----------:|--------:|")
    for label, ms in phases.ms.items():
        if ms:
            print(
                f"| {label:<34} | {len(ms) / turns:>10.1f} | {statistics.median(ms):>9.3f} |"
                f" {sum(ms) / turns:>7.3f} |"
            )
    print(
        f"\nredis round trips per turn: {phases.redis_trips / turns:.1f} "
        f"({phases.redis_commands / turns:.1f} commands)"
    )
    for name, count in phases.redis_calls.most_common():
        print(f"  {count / turns:>4.1f} x {name}")


_HOT = (
    ("run_turn (async gen, whole turn)", "agents/loop.py", "run_turn"),
    ("LLMClient.chat", "agents/llm.py", "chat"),
    ("  openai request transform", "openai/_utils/_transform.py", "async_maybe_transform"),
    ("  openai JSON dumps of the body", "openai/_utils/_json.py", "openapi_dumps"),
    ("  openai response parse", "openai/_response.py", "parse"),
    ("compact", "agents/summarizer.py", "compact"),
    ("compile_system", "agents/context.py", "compile_system"),
    ("TokenCounter.count", "agents/tokens.py", "count"),
    ("TokenCounter.observe", "agents/tokens.py", "observe"),
    ("AgentTool.openai (deepcopy schema)", "agents/tools/registry.py", "openai"),
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
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in table.values())
    print(f"\ncProfile, {row.name}, {turns} turns (CPU under the profiler, ~2x real)")
    print(f"total own time {total * 1000 / turns:.2f} ms/turn\n")
    print("| function | cumulative ms/turn |")
    print("|---|---:|")
    for label, path, name in _HOT:
        cum = sum(v[3] for (f, _, n), v in table.items() if f.endswith(path) and n == name)
        print(f"| {label} | {cum * 1000 / turns:.3f} |")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    print("\ntop 15 by own time")
    lines = out.getvalue().splitlines()
    begin = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print("\n".join(line.replace(str(Path.cwd()) + "/", "") for line in lines[begin : begin + 16]))


async def _sdk_variants(sdk: openai.AsyncOpenAI, request: dict[str, Any], turns: int) -> None:
    """The same request through the SDK three ways: what its request transform costs."""

    async def create() -> object:
        return await sdk.chat.completions.create(**request)

    async def post_dict() -> object:
        return await sdk.post("/chat/completions", body=request, cast_to=ChatCompletion)

    async def post_bytes() -> object:
        body = msgspec.json.encode(request)
        return await sdk.post("/chat/completions", content=body, cast_to=ChatCompletion)

    variants = {
        "chat.completions.create (today)": create,
        "client.post(body=dict) (no transform)": post_dict,
        "client.post(content=msgspec bytes)": post_bytes,
    }
    laps: dict[str, list[float]] = defaultdict(list)
    for i in range(turns + 20):
        for name, once in variants.items():
            started = time.perf_counter()
            await once()
            if i >= 20:
                laps[name].append((time.perf_counter() - started) * 1000)
    print("\nexperiment: the same request through the SDK, round-robin\n")
    print("| call | median ms | p95 ms |")
    print("|---|---:|---:|")
    for name, values in laps.items():
        median, p95 = _stats(values)
        print(f"| {name} | {median:.2f} | {p95:.2f} |")


@contextmanager
def _llm_via_post(rt: Runtime, agent_id: str) -> Iterator[None]:
    """Patch this runtime's SDK client so ``chat.completions.create`` skips the transform."""
    client = rt.llm._clients[rt.llm.settings.base_url]._client
    completions = client.chat.completions

    async def create(**kwargs: Any) -> Any:
        body = msgspec.json.encode(kwargs)
        return await client.post("/chat/completions", content=body, cast_to=ChatCompletion)

    completions.create = create  # type: ignore[method-assign]
    try:
        yield
    finally:
        del completions.create


async def _patched_turns(rt: Runtime, row: Row, turns: int) -> None:
    """Turn medians with and without the SDK bypass, round-robin."""
    today: list[float] = []
    patched: list[float] = []
    for i in range(turns + 10):
        lap = await _turn(rt, row, f"today {i}")
        with _llm_via_post(rt, row.agent_id):
            lap2 = await _turn(rt, row, f"patched {i}")
        if i >= 10:
            today.append(lap)
            patched.append(lap2)
    print(f"\nexperiment: {row.name} turns, LLMClient via client.post(content=msgspec bytes)\n")
    print("| loop | median ms | p95 ms |")
    print("|---|---:|---:|")
    for name, values in (("today", today), ("SDK transform bypassed", patched)):
        median, p95 = _stats(values)
        print(f"| {name} | {median:.2f} | {p95:.2f} |")


async def _reads(rt: Runtime, row: Row, turns: int) -> None:
    """The step's reads as today (7 round trips) against the same keys in 2 pipelines."""
    agent = await rt.agents.get(row.agent_id)
    redis_ = rt.redis

    async def today() -> None:
        await rt.agents.get(agent.id)  # run_turn
        await rt.messages.next_seq(agent.id)
        await rt.agents.get(agent.id)  # _step, step 0 again
        await rt.blocks.get_many(agent.block_ids)
        await rt.tools.get_many_by_name(agent.tools)
        await rt.messages.count(agent.id)
        await rt.messages.get(agent.id, agent.message_ids)

    async def merged() -> None:
        async with redis_.pipeline(transaction=False) as pipe:
            pipe.get(storage_keys.agent(agent.id))
            pipe.zrevrange(storage_keys.agent_messages(agent.id), 0, 0, withscores=True)
            pipe.zcard(storage_keys.agent_messages(agent.id))
            raw, _, _ = await pipe.execute()
        current = decode(Agent, raw)
        async with redis_.pipeline(transaction=False) as pipe:
            pipe.mget([storage_keys.block(b) for b in current.block_ids])
            pipe.hmget(storage_keys.tool_names(), current.tools)
            pipe.mget([storage_keys.message(agent.id, m) for m in current.message_ids])
            blocks, _, messages = await pipe.execute()
        [decode(Block, b) for b in blocks if b is not None]
        [decode(Message, m) for m in messages if m is not None]

    laps: dict[str, list[float]] = defaultdict(list)
    for i in range(turns + 20):
        for name, once in (("7 round trips (today)", today), ("2 pipelines", merged)):
            started = time.perf_counter()
            await once()
            if i >= 20:
                laps[name].append((time.perf_counter() - started) * 1000)
    print("\nexperiment: the step's reads before the model call, same keys, round-robin\n")
    print("| reads | median ms | p95 ms |")
    print("|---|---:|---:|")
    for name, values in laps.items():
        median, p95 = _stats(values)
        print(f"| {name} | {median:.3f} | {p95:.3f} |")


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
    await _sdk_variants(sdk, request, turns)
    await _patched_turns(rt, row, turns)
    await _reads(rt, row, turns)
    await _commit(rt, row, turns)
    await _schemas(rt, row, turns)


# KEYS: sorted sets. ARGV: per key a count n, then n score/member pairs.
_ZADD_MANY = """
local a = 1
for _, key in ipairs(KEYS) do
  local n = tonumber(ARGV[a])
  redis.call('ZADD', key, unpack(ARGV, a + 1, a + 2 * n))
  a = a + 1 + 2 * n
end
return #KEYS
"""


class _Recorder:
    """Stands in for a pipeline to see what :meth:`MessageLog.stage` would send."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))

        return record


async def _commit(rt: Runtime, row: Row, turns: int) -> None:
    """The step's commit as today against its sorted-set writes folded into one script."""
    agent = await rt.agents.get(row.agent_id)
    zadd_many = rt.redis.register_script(_ZADD_MANY)
    seq = await rt.messages.next_seq(agent.id)

    def step_messages() -> list[Message]:
        nonlocal seq
        batch = _history(agent.id, seq, 3, -seq % 3)
        seq += 3
        return [msgspec.structs.replace(m, seq=seq - 3 + k) for k, m in enumerate(batch)]

    async def today() -> None:
        batch = step_messages()
        async with rt.redis.pipeline(transaction=True) as pipe:
            rt.messages.stage(pipe, batch)
            rt.agents.stage_save(pipe, agent)
            await pipe.execute()

    async def folded() -> None:
        batch = step_messages()
        recorder = _Recorder()
        rt.messages.stage(recorder, batch)  # type: ignore[arg-type]
        zkeys: list[str] = []
        zargs: list[Any] = []
        async with rt.redis.pipeline(transaction=True) as pipe:
            for name, args, kwargs in recorder.calls:
                if name == "zadd":
                    key, members = args
                    zkeys.append(key)
                    zargs.append(len(members))
                    for member, score in members.items():
                        zargs += [score, member]
                else:
                    getattr(pipe, name)(*args, **kwargs)
            await zadd_many(keys=zkeys, args=zargs, client=pipe)
            rt.agents.stage_save(pipe, agent)
            await pipe.execute()

    laps: dict[str, list[float]] = defaultdict(list)
    for i in range(turns + 20):
        for name, once in (("today (24 commands)", today), ("ZADDs in one EVALSHA", folded)):
            started = time.perf_counter()
            await once()
            if i >= 20:
                laps[name].append((time.perf_counter() - started) * 1000)
    print("\nexperiment: commit of one step's 3 messages + agent record, MULTI/EXEC\n")
    print("| commit | median ms | p95 ms |")
    print("|---|---:|---:|")
    for name, values in laps.items():
        median, p95 = _stats(values)
        print(f"| {name} | {median:.3f} | {p95:.3f} |")


async def _schemas(rt: Runtime, row: Row, turns: int) -> None:
    """What rebuilding the tool schemas costs every step (deep copies), against a cache."""
    tools = list(agent_tools(await rt.agents.get(row.agent_id), {}).values())
    started = time.perf_counter()
    for _ in range(turns):
        [tool.openai() for tool in tools]
    rebuilt = (time.perf_counter() - started) * 1000 / turns
    cached = [tool.openai() for tool in tools]
    started = time.perf_counter()
    for _ in range(turns):
        list(cached)
    reused = (time.perf_counter() - started) * 1000 / turns
    print(
        f"\ntool schemas ({len(tools)} base tools): AgentTool.openai() every step "
        f"{rebuilt:.3f} ms; a cached list {reused:.4f} ms"
    )


# --- main ----------------------------------------------------------------------------------


async def _run(url: str, folder: Path, args: argparse.Namespace) -> None:
    client = connect(url)
    await _wait_ready(client)

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

            capture = _Capture()
            with capture.on():
                for i in range(args.warmup):
                    for row in agent_rows:
                        await _turn(rt, row, f"warm-up {i}")
            request = capture.kwargs
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
    print("| row | history (start → end) | archival | median ms | p95 ms | vs 10-row | loop adds |")
    print("|---|---|---|---:|---:|---:|---:|")
    base = _stats(rows[0].laps)[0]
    reference = next((r for r in rows[1:] if r.archival is None), rows[1])
    ref = _stats(reference.laps)[0]
    for row in rows:
        median, p95 = _stats(row.laps)
        if not row.agent_id:
            print(f"| {row.name} | - | - | {median:.2f} | {p95:.2f} | - | - |")
            continue
        print(
            f"| {row.name} | {row.size:,} → {row.end_size:,} | "
            f"{'yes' if row.archival else 'no'} | {median:.2f} | {p95:.2f} | "
            f"{median / ref:.2f}x | {median - base:+.2f} |"
        )
    largest = max((r for r in rows[1:] if r.archival is None), key=lambda r: r.size)
    worst = max(_stats(r.laps)[0] for r in rows[1:])
    ratio = _stats(largest.laps)[0] / ref
    print(
        f"\ntargets: median <= 8 ms: {'met' if worst <= 8 else 'MISSED'} (worst {worst:.2f}); "
        f"{largest.size:,} row <= 1.2x the {reference.size:,} row: "
        f"{'met' if ratio <= 1.2 else 'MISSED'} ({ratio:.2f}x)"
    )


def _sizes(value: str) -> list[int]:
    return [int(v.replace("_", "")) for v in value.split(",") if v.strip()]


def main() -> None:
    """Start a private redis-server, preload, time the rows, print the table, stop."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=[10, 1000, 100_000])
    parser.add_argument("--turns", type=int, default=200, help="timed turns per row")
    parser.add_argument("--warmup", type=int, default=30, help="untimed turns per row")
    parser.add_argument("--tail", type=int, default=9, help="in-context messages (x3)")
    parser.add_argument("--archival-size", type=int, default=1000, help="history of that row")
    parser.add_argument("--passages", type=int, default=1000, help="passages of that row")
    parser.add_argument("--profile", action="store_true", help="phases, round trips, cProfile")
    parser.add_argument("--profile-size", type=int, default=1000)
    args = parser.parse_args()
    # The loop logs a start and a finish event per turn; a worker at WARNING drops them.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="memgrid-turn-") as folder:
        proc, url = _start_redis(Path(folder))
        try:
            anyio.run(_run, url, Path(folder), args)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
