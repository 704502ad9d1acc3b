"""Messages/s and latency through inbox → worker → event stream, against raw Redis Streams.

Everything runs against a private ``redis-server`` (unix socket, no persistence) started and
stopped here. Rows, all measured in this one run:

* **raw baseline**: one producer and one consumer on one stream, messages the size of a
  memgrid inbox envelope. ``XADD`` → ``XREADGROUP`` → ``XACK`` pipelined in batches of
  ``--batch``, then one await per command; latency ``XADD`` → ``XREADGROUP`` with one message
  in flight (ping-pong).
* **model round trip**: the request the step loop sends, posted by ``LLMClient.chat`` (the
  worker's own call) and by the raw ``openai`` SDK to ``memgrid scripted-model`` (echo policy,
  zero latency) in its own process, one at a time.
* **turn, no bus**: ``run_turn`` in this process, the same one-step turn, with the model
  answered instantly in-process (a canned ``LLMResponse``) and with the scripted model.
* **memgrid**: ``--agents`` agents x ``--messages`` messages each, submitted at once with
  ``RunStore.submit``; one follower per agent waits for each run's end event; worker
  subprocesses (1 and 2, ``--workers``) either answer the model instantly in-process
  (``LLMClient.chat`` monkeypatched: the bus and the step loop alone) or call the scripted
  model over HTTP (``memgrid worker``). Messages/s is all messages over first submit → last end
  event; its latency includes queueing behind the agent's earlier messages. Then
  ``--latency-messages`` messages one at a time (submit → end event seen by a follower).

Added latency per hop: a message crosses two bus hops (client → inbox → worker, worker → event
stream → follower). ``bus overhead`` = memgrid one-at-a-time p50 - in-process turn p50 with the
same model (so the step loop and the model are not counted); per hop = overhead / 2; added per
hop = per hop - raw ping-pong p50. Target: added per hop <= 2 ms; memgrid messages/s >= 0.5x the
raw rate (the ratio is printed against both raw rates).

The CPU table gives each process's CPU seconds per 1,000 messages over the pipelined phase.

Run: ``.venv/bin/python benchmarks/bus.py`` (about 4 minutes on 2 cores); sizes:
``--agents 200 --messages 10 --raw-messages 50000 --latency-messages 300 --workers 1,2
--concurrency 32``.

This file is named by its issue ``bus.py``; a script run as ``python benchmarks/<x>.py`` has
``benchmarks/`` first on ``sys.path``, where this file would shadow the ``bus`` package. So
when it is imported as ``bus`` (or run), it loads the real package under that name first.
"""

# ruff: noqa: E402  (the real ``bus`` package must be in place before the imports below)

from __future__ import annotations

import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_real_bus() -> None:
    saved = sys.path[:]
    sys.modules.pop("bus", None)
    sys.path[:] = [p for p in saved if os.path.abspath(p or os.curdir) != _HERE]
    try:
        spec = importlib.util.find_spec("bus")  # sys.path, then the editable install's finder
    finally:
        sys.path[:] = saved
    if spec is None or spec.loader is None:
        raise ImportError("memgrid's `bus` package is not importable; run from the project venv")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bus"] = module
    spec.loader.exec_module(module)


if __name__ in ("__main__", "bus"):
    _load_real_bus()

import argparse
import json
import logging
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import openai
import redis
import redis.asyncio as aioredis
import structlog

if __name__ != "bus":
    # Imported as ``bus`` by another script, this module only hands over the real package
    # (above): importing the runtime here would run into that script's half-done imports.
    from agents.llm import LLMClient, LLMResponse, LLMSettings
    from agents.loop import InputMessage, TurnResult, run_turn
    from agents.manage import AgentSpec, create_agent
    from agents.runs import RunStore, live_workers
    from agents.runtime import LLMPool, Runtime
    from bus import connect, find_redis_server
    from bus.envelopes import InboxMessage, RunRequest, encode_envelope
    from storage.records import ToolCall

__all__ = ("main",)

GROUP = "bench"
_CLI = [sys.executable, "-m", "orchestrator.cli"]


# --- processes -----------------------------------------------------------------------------


def _start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    sock = folder / "redis.sock"
    proc = subprocess.Popen(
        [
            find_redis_server(),
            *("--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"),
            *("--dir", str(folder), "--save", "", "--appendonly", "no", "--daemonize", "no"),
            *("--maxclients", "10000"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"unix://{sock}"
    deadline = time.monotonic() + 15
    while True:
        try:
            with redis.Redis.from_url(url) as probe:
                probe.ping()
            return proc, url
        except (redis.ConnectionError, FileNotFoundError):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.02)


def _stop(proc: subprocess.Popen[Any], *, grace_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _start_model(log: Path) -> tuple[subprocess.Popen[str], str]:
    """``memgrid scripted-model`` (echo: one ``send_message`` per user message) in its own
    process; returns it and its base URL."""
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*_CLI, "scripted-model", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url:
        _stop(proc)
        raise RuntimeError(f"memgrid scripted-model did not start: {log.read_text()[-2000:]}")
    return proc, url


def _worker_env(url: str, home: Path, model_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "MEMGRID_REDIS_URL": url,
        "MEMGRID_HOME": str(home),
        "OPENAI_BASE_URL": model_url,
        "OPENAI_API_KEY": "x",
        "MEMGRID_EMBEDDING": "hashing/384",
        "MEMGRID_LOG_LEVEL": "WARNING",
    }


def _start_workers(
    cfg: Config, concurrency: int, env: dict[str, str], folder: Path
) -> list[subprocess.Popen[bytes]]:
    """``memgrid worker`` processes, through this file's worker role (see ``_worker``)."""
    procs = []
    for index in range(cfg.workers):
        role = [sys.executable, __file__, "--role", "worker"]
        role += ["--count", str(folder / f"commands-{cfg.key}-{index}.json")]
        role += ["--instant"] * cfg.instant
        args = ["worker", "--concurrency", str(concurrency), "--drain-seconds", "3"]
        with (folder / f"worker-{cfg.key}-{index}.log").open("w") as err:
            procs.append(
                subprocess.Popen([*role, *args], env=env, stdout=subprocess.DEVNULL, stderr=err)
            )
    return procs


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the instant model, in the worker process ----------------------------------------------

_INSTANT_ARGS = '{"message": "ok"}'


async def _instant_chat(
    self: LLMClient,
    model: str,
    messages: Sequence[Any],
    tools: Sequence[Any] = (),
    **kwargs: Any,
) -> LLMResponse:
    """What the scripted model's ``say("ok")`` parses to, with no HTTP."""
    call = ToolCall(
        id=f"call_{uuid.uuid4().hex[:24]}", name="send_message", arguments=_INSTANT_ARGS
    )
    return LLMResponse(
        content="",
        tool_calls=[call],
        prompt_tokens=1000,
        completion_tokens=10,
        finish_reason="tool_calls",
    )


@contextmanager
def _instant_model() -> Iterator[None]:
    original = LLMClient.chat
    setattr(LLMClient, "chat", _instant_chat)  # noqa: B010
    try:
        yield
    finally:
        setattr(LLMClient, "chat", original)  # noqa: B010


def _count_commands(counts: Counter[str]) -> None:
    """Count Redis round trips by command (a pipeline or MULTI is one, named by its content)."""
    single = aioredis.Redis.execute_command
    piped = aioredis.client.Pipeline.execute

    async def execute_command(client: Any, *args: Any, **options: Any) -> Any:
        counts[str(args[0]).upper()] += 1
        return await single(client, *args, **options)

    async def execute(pipe: Any, raise_on_error: bool = True) -> Any:
        names = Counter(str(c[0][0]).upper() for c in pipe.command_stack)
        kinds = ",".join(f"{k}x{n}" if n > 1 else k for k, n in sorted(names.items()))
        counts[f"{'MULTI' if pipe.is_transaction else 'PIPELINE'}[{kinds}]"] += 1
        return await piped(pipe, raise_on_error)

    immediate = aioredis.client.Pipeline.immediate_execute_command

    async def immediate_execute_command(pipe: Any, *args: Any, **options: Any) -> Any:
        counts[f"{str(args[0]).upper()} (while WATCHing)"] += 1  # bus.lease.fenced
        return await immediate(pipe, *args, **options)

    setattr(aioredis.Redis, "execute_command", execute_command)  # noqa: B010
    setattr(aioredis.client.Pipeline, "execute", execute)  # noqa: B010
    setattr(aioredis.client.Pipeline, "immediate_execute_command", immediate_execute_command)  # noqa: B010


def _worker(argv: list[str]) -> int:
    """``memgrid worker`` after this role's options: ``--count FILE`` (Redis round trips by
    command, written at exit), ``--instant`` (``LLMClient.chat`` answers at once: the bus and
    the step loop alone)."""
    from orchestrator.cli import main as cli

    counts: Counter[str] = Counter()
    out = None
    if argv[:1] == ["--count"]:
        out, argv = Path(argv[1]), argv[2:]
        _count_commands(counts)
    instant = argv[:1] == ["--instant"]
    argv = argv[instant:]
    try:
        if instant:
            with _instant_model():
                return cli(argv)
        return cli(argv)
    finally:
        if out is not None:
            out.write_text(json.dumps(counts))


# --- statistics ----------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table."""

    name: str
    messages: int = 0
    rate: float | None = None
    laps_ms: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def p50(self) -> float:
        return statistics.median(self.laps_ms) if self.laps_ms else float("nan")

    @property
    def p99(self) -> float:
        if len(self.laps_ms) < 2:
            return self.p50
        return statistics.quantiles(self.laps_ms, n=100, method="inclusive")[98]


async def _sequential(
    count: int, once: Callable[[], Awaitable[Any]], warmup: int = 20
) -> list[float]:
    laps = []
    for i in range(count + warmup):
        started = time.perf_counter()
        await once()
        if i >= warmup:
            laps.append((time.perf_counter() - started) * 1000)
    return laps


# --- raw baseline --------------------------------------------------------------------------


def _payload() -> bytes:
    envelope = RunRequest(
        run_id="run-" + uuid.uuid4().hex,
        agent_id="agent-" + uuid.uuid4().hex,
        messages=(InboxMessage(content="hello 123"),),
    )
    return encode_envelope(envelope)


async def _fresh_stream(client: aioredis.Redis, key: str) -> None:
    await client.delete(key)
    await client.xgroup_create(key, GROUP, id="0", mkstream=True)


async def _raw_rate(url: str, count: int, batch: int, payload: bytes) -> Row:
    """Producer and consumer free-running; ``batch`` > 1 pipelines both sides."""
    key = f"bench:raw:{batch}"
    producer, consumer = connect(url), connect(url)
    laps: list[float] = []
    try:
        await _fresh_stream(producer, key)

        async def produce() -> None:
            for start in range(0, count, batch):
                n = min(batch, count - start)
                if batch == 1:
                    await producer.xadd(key, {"e": payload, "t": repr(time.perf_counter())})
                    continue
                async with producer.pipeline(transaction=False) as pipe:
                    for _ in range(n):
                        pipe.xadd(key, {"e": payload, "t": repr(time.perf_counter())})
                    await pipe.execute()

        async def consume() -> None:
            seen = 0
            while seen < count:
                reply = await consumer.xreadgroup(GROUP, "c", {key: ">"}, count=batch, block=1000)
                for _stream, items in reply or []:
                    now = time.perf_counter()
                    ids = []
                    for entry_id, fields in items:
                        laps.append((now - float(fields[b"t"])) * 1000)
                        ids.append(entry_id)
                    seen += len(ids)
                    if batch == 1:
                        await consumer.xack(key, GROUP, *ids)
                    else:
                        async with consumer.pipeline(transaction=False) as pipe:
                            pipe.xack(key, GROUP, *ids)
                            await pipe.execute()

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(produce)
        elapsed = time.perf_counter() - started
        await producer.delete(key)
    finally:
        await producer.aclose()
        await consumer.aclose()
    how = f"pipelined, batches of {batch}" if batch > 1 else "one await per command"
    return Row(f"raw XADD → XREADGROUP → XACK, {how}", count, count / elapsed, laps, "under load")


async def _raw_latency(url: str, count: int, payload: bytes) -> Row:
    """One message in flight: XADD → the blocked XREADGROUP returns it; then XACK."""
    key = "bench:raw:ping"
    producer, consumer = connect(url), connect(url)
    laps: list[float] = []
    try:
        await _fresh_stream(producer, key)
        send, receive = anyio.create_memory_object_stream[float](1)

        async def consume() -> None:
            for _ in range(count):
                reply = await consumer.xreadgroup(GROUP, "c", {key: ">"}, count=1, block=5000)
                now = time.perf_counter()
                for _stream, items in reply:
                    for entry_id, fields in items:
                        await consumer.xack(key, GROUP, entry_id)
                        await send.send(now - float(fields[b"t"]))

        async def produce() -> None:
            for _ in range(count):
                await anyio.sleep(0.0005)  # let the consumer block first
                await producer.xadd(key, {"e": payload, "t": repr(time.perf_counter())})
                laps.append(await receive.receive() * 1000)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(produce)
        await producer.delete(key)
    finally:
        await producer.aclose()
        await consumer.aclose()
    return Row("raw XADD → XREADGROUP, one in flight (one hop)", count, None, laps[20:], "low load")


# --- memgrid -------------------------------------------------------------------------------


async def _create_agents(rt: Runtime, count: int, prefix: str) -> list[str]:
    ids: list[str] = [""] * count
    limiter = anyio.Semaphore(32)

    async def one(index: int) -> None:
        async with limiter:
            agent = await create_agent(
                rt, AgentSpec(name=f"{prefix}-{index}", model="openai/scripted")
            )
            ids[index] = agent.id

    async with anyio.create_task_group() as tg:
        for index in range(count):
            tg.start_soon(one, index)
    return ids


async def _wait_workers(rt: Runtime, count: int, procs: list[subprocess.Popen[bytes]]) -> None:
    with anyio.fail_after(90):
        while len(await live_workers(rt.redis)) < count:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited at start; see its log in the temp folder")
            await anyio.sleep(0.05)


async def _one(runs: RunStore, agent_id: str, text: str) -> float:
    """Submit one message, follow its run to the end event; ms."""
    started = time.perf_counter()
    submitted = await runs.submit(agent_id, [InboxMessage(content=text)])
    async for _ in runs.follow(agent_id, submitted.run_id, timeout_s=120):
        pass
    return (time.perf_counter() - started) * 1000


async def _pipelined(
    runs: RunStore, agents: list[str], messages: int, tag: str
) -> tuple[float, list[float]]:
    """Every message submitted at once; per agent one follower takes its runs in order."""
    laps: list[float] = []

    async def agent(agent_id: str) -> None:
        submitted = []
        for n in range(messages):
            started = time.perf_counter()
            sub = await runs.submit(agent_id, [InboxMessage(content=f"{tag} {n}")])
            submitted.append((started, sub.run_id))
        for started, run_id in submitted:
            async for _ in runs.follow(agent_id, run_id, timeout_s=300):
                pass
            laps.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for agent_id in agents:
            tg.start_soon(agent, agent_id)
    return time.perf_counter() - started, laps


@dataclass
class Config:
    workers: int
    instant: bool

    @property
    def key(self) -> str:
        return f"{self.workers}{'i' if self.instant else 'h'}"

    @property
    def label(self) -> str:
        model = "instant model in the worker" if self.instant else "scripted model over HTTP"
        return f"memgrid, {self.workers} worker{'s' * (self.workers > 1)}, {model}"


@dataclass
class Cpu:
    """CPU seconds per 1,000 messages of each process over the pipelined phase."""

    label: str
    per_k: dict[str, float]


async def _memgrid(
    rt: Runtime,
    cfg: Config,
    args: argparse.Namespace,
    env: dict[str, str],
    folder: Path,
    pids: dict[str, int],
) -> tuple[list[Row], Cpu]:
    await rt.redis.flushall()
    agents = await _create_agents(rt, args.agents, cfg.key)
    procs = _start_workers(cfg, args.concurrency, env, folder)
    try:
        await _wait_workers(rt, cfg.workers, procs)
        runs = RunStore(rt.redis)
        await _pipelined(runs, agents, 1, "warm-up")  # consumer groups, caches, connections
        watched = {**pids, **{f"worker {i + 1}": p.pid for i, p in enumerate(procs)}}
        before = {name: _cpu_s(pid) for name, pid in watched.items()}
        elapsed, laps = await _pipelined(runs, agents, args.messages, "hello")
        total = args.agents * args.messages
        per_k = {n: (_cpu_s(p) - before[n]) * 1000 / total for n, p in watched.items()}
        pipelined = Row(
            f"{cfg.label}: {args.agents} agents x {args.messages} at once",
            total,
            total / elapsed,
            laps,
            "queued behind the agent's earlier messages",
        )
        count = args.latency_messages
        lats = [await _one(runs, agents[i % len(agents)], f"one {i}") for i in range(count + 20)][
            20:
        ]
        one = Row(f"{cfg.label}: one message at a time", count, 1000 / statistics.mean(lats), lats)
        return [pipelined, one], Cpu(cfg.label, per_k)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            _stop(proc)


# --- model and turn rows -------------------------------------------------------------------


class _Capture:
    def __init__(self) -> None:
        self.request: dict[str, Any] = {}

    @contextmanager
    def on(self) -> Iterator[None]:
        original = LLMClient.chat

        async def chat(
            client: LLMClient, model: str, messages: Any, tools: Any = (), **kw: Any
        ) -> Any:
            self.request = {"model": model, "messages": list(messages), "tools": list(tools)}
            return await original(client, model, messages, tools, **kw)

        setattr(LLMClient, "chat", chat)  # noqa: B010
        try:
            yield
        finally:
            setattr(LLMClient, "chat", original)  # noqa: B010


async def _turn(rt: Runtime, agent_id: str, text: str) -> None:
    result = TurnResult()
    async for _ in run_turn(rt, agent_id, [InputMessage(content=text)], result=result):
        pass
    if result.stop_reason != "end_turn" or result.usage.step_count != 1:
        raise RuntimeError(f"expected a one-step turn, got {result!r}")


async def _model_rows(
    rt: Runtime, model_url: str, count: int
) -> tuple[list[Row], dict[str, float]]:
    await rt.redis.flushall()
    # Many agents, a few turns each: one agent's history would grow into the summarizer, which
    # the echo model cannot play.
    agents = await _create_agents(rt, max(1, count // 10), "solo")
    capture = _Capture()
    with capture.on():
        await _turn(rt, agents[0], "capture")
    req = capture.request
    llm = LLMClient(LLMSettings(base_url=model_url, max_retries=0))
    sdk = openai.AsyncOpenAI(base_url=model_url, api_key="x", max_retries=0)
    try:
        via_llm = await _sequential(
            count, lambda: llm.chat(req["model"], req["messages"], req["tools"])
        )
        via_sdk = await _sequential(
            count,
            lambda: sdk.chat.completions.create(
                model="scripted", messages=req["messages"], tools=req["tools"], tool_choice="auto"
            ),
        )
    finally:
        await llm.aclose()
        await sdk.close()
    n = 0

    async def turn() -> None:
        nonlocal n
        n += 1
        await _turn(rt, agents[n % len(agents)], f"hi {n}")

    over_http = await _sequential(count, turn)
    with _instant_model():
        instant = await _sequential(count, turn)
    rows = [
        Row("model round trip: LLMClient.chat → scripted model", count, None, via_llm),
        Row("model round trip: openai SDK create → scripted model", count, None, via_sdk),
        Row("turn, no bus: run_turn here, scripted model over HTTP", count, None, over_http),
        Row("turn, no bus: run_turn here, instant model", count, None, instant),
    ]
    for row in rows:
        row.rate = 1000 / statistics.mean(row.laps_ms)
        row.note = "one at a time"
    return rows, {"http": statistics.median(over_http), "instant": statistics.median(instant)}


# --- report --------------------------------------------------------------------------------


def _print(rows: list[Row], raw_pipe: Row, raw_one: Row) -> None:
    print("| path | messages | msg/s | vs raw pipelined | vs raw one-await | p50 ms | p99 ms | |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        if row.rate is None:
            rate = pipe = one = "-"
        else:
            rate = f"{row.rate:,.0f}"
            pipe = f"{row.rate / raw_pipe.rate:.3f}x" if raw_pipe.rate else "-"
            one = f"{row.rate / raw_one.rate:.3f}x" if raw_one.rate else "-"
        print(
            f"| {row.name} | {row.messages:,} | {rate} | {pipe} | {one} | "
            f"{row.p50:.2f} | {row.p99:.2f} | {row.note} |"
        )


def _print_hops(
    singles: list[tuple[Config, Row]], turn_p50: dict[str, float], raw_p50: float
) -> None:
    print(
        "\nadded latency per hop = (one-at-a-time p50 - in-process turn p50 with the same "
        "model) / 2 hops - raw one-hop p50\n"
    )
    print(
        "| memgrid path | e2e p50 ms | turn p50 ms | bus overhead ms | per hop ms "
        "| added per hop ms | target <= 2 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for cfg, row in singles:
        turn = turn_p50["instant" if cfg.instant else "http"]
        overhead = row.p50 - turn
        added = overhead / 2 - raw_p50
        print(
            f"| {cfg.label} | {row.p50:.2f} | {turn:.2f} | {overhead:.2f} | {overhead / 2:.2f} | "
            f"{added:.2f} | {'met' if added <= 2 else 'MISSED'} |"
        )


def _print_cpu(cpus: list[Cpu]) -> None:
    names = list(dict.fromkeys(n for c in cpus for n in c.per_k))
    print("\nCPU seconds per 1,000 messages, pipelined phase (2 cores in all)\n")
    print("| memgrid path | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for cpu in cpus:
        cells = [f"{cpu.per_k[n]:.2f}" if n in cpu.per_k else "-" for n in names]
        print(f"| {cpu.label} | " + " | ".join(cells) + " |")


def _print_commands(configs: list[Config], folder: Path, handled: int) -> None:
    """Redis round trips per message in the workers, by command, summed over the workers."""
    per: dict[str, Counter[str]] = {}
    for cfg in configs:
        total: Counter[str] = Counter()
        for path in folder.glob(f"commands-{cfg.key}-*.json"):
            total.update(json.loads(path.read_text()))
        per[cfg.key] = total
    first = per[configs[0].key]
    names = sorted(set().union(*per.values()), key=lambda n: (-first[n], n))
    print(
        f"\nworker Redis round trips per message ({handled:,} messages per config, warm-up and "
        "one-at-a-time included; the reader's and health beat's idle polls too)\n"
    )
    print("| command (a pipeline is one) | " + " | ".join(c.label[9:] for c in configs) + " |")
    print("|---|" + "---:|" * len(configs))
    cells = [f"**{sum(per[c.key].values()) / handled:.1f}**" for c in configs]
    print("| **all** | " + " | ".join(cells) + " |")
    for name in names:
        cells = [f"{per[c.key][name] / handled:.2f}" for c in configs]
        if max(per[c.key][name] for c in configs) >= handled / 20:
            print(f"| {name} | " + " | ".join(cells) + " |")


async def _run(
    url: str, model_url: str, folder: Path, pids: dict[str, int], args: argparse.Namespace
) -> None:
    load = os.getloadavg()[0]  # other work on this machine skews every row
    payload = _payload()
    print(f"raw baseline: {args.raw_messages:,} messages of {len(payload)} bytes")
    raw_pipe = await _raw_rate(url, args.raw_messages, args.batch, payload)
    raw_one = await _raw_rate(url, args.raw_messages // 4, 1, payload)
    raw_lat = await _raw_latency(url, args.latency_messages + 20, payload)
    rows = [raw_pipe, raw_one, raw_lat]

    # Not bus.connect(): redis-py 8 reads with a 5 s socket timeout by default, which breaks
    # bus.events.follow (XREAD BLOCK 5000) whenever a run is quiet for 5 s.
    client = aioredis.Redis.from_url(url, max_connections=args.agents + 64, socket_timeout=60)
    rt = Runtime(redis=client, llm=LLMPool(LLMSettings(base_url=model_url)))
    singles: list[tuple[Config, Row]] = []
    cpus: list[Cpu] = []
    try:
        print("model round trip and in-process turns")
        model_rows, turn_p50 = await _model_rows(rt, model_url, args.latency_messages)
        rows += model_rows
        env = _worker_env(url, folder / "home", model_url)
        configs = []
        for instant in (True, False):
            configs += [Config(workers, instant) for workers in args.workers]
        for cfg in configs:
            print(f"{cfg.label}: {args.agents} agents x {args.messages} messages")
            got, cpu = await _memgrid(rt, cfg, args, env, folder, pids)
            rows += got
            singles.append((cfg, got[1]))
            cpus.append(cpu)
    finally:
        await rt.aclose()
        await client.aclose()
    handled = args.agents * (1 + args.messages) + args.latency_messages + 20

    print(
        f"\nredis-server on a unix socket; worker --concurrency {args.concurrency}; "
        f"p50/p99 are submit → end event for memgrid rows; load average at start {load:.2f}\n"
    )
    _print(rows, raw_pipe, raw_one)
    _print_hops(singles, turn_p50, raw_lat.p50)
    _print_cpu(cpus)
    _print_commands([c for c, _ in singles if c.instant], folder, handled)
    best = max(
        (r for r in rows if r.name.startswith("memgrid") and "at once" in r.name),
        key=lambda r: r.rate or 0,
    )
    assert best.rate is not None and raw_pipe.rate is not None
    ratio = best.rate / raw_pipe.rate
    print(
        f"\ntarget messages/s >= 0.5x raw pipelined: {'met' if ratio >= 0.5 else 'MISSED'} "
        f"(best memgrid row {best.rate:,.0f}/s = {ratio:.3f}x of {raw_pipe.rate:,.0f}/s)"
    )


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


def main() -> None:
    """Start redis-server and the scripted model, measure every row, print, stop all."""
    if sys.argv[1:3] == ["--role", "worker"]:
        sys.exit(_worker(sys.argv[3:]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10, help="per agent, submitted at once")
    parser.add_argument("--raw-messages", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100, help="raw pipelined batch size")
    parser.add_argument("--latency-messages", type=int, default=300, help="one at a time")
    parser.add_argument("--workers", type=_ints, default=[1, 2], help="worker counts to try")
    parser.add_argument("--concurrency", type=int, default=32, help="per worker")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="memgrid-bus-") as name:
        folder = Path(name)
        redis_proc, url = _start_redis(folder)
        try:
            model_proc, model_url = _start_model(folder / "model.log")
            try:
                pids = {"redis": redis_proc.pid, "model": model_proc.pid, "client": os.getpid()}
                anyio.run(_run, url, model_url, folder, pids, args)
            finally:
                _stop(model_proc)
        finally:
            _stop(redis_proc)


if __name__ == "__main__":
    main()
