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

Run: ``.venv/bin/python benchmarks/bus_rate.py`` (about 4 minutes on 2 cores); sizes:
``--agents 200 --messages 10 --raw-messages 50000 --latency-messages 300 --workers 1,2
--concurrency 32``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import openai
import redis.asyncio as aioredis
from _harness import (  # benchmarks/ is first on sys.path
    CapturedRequest,
    cpu_seconds,
    create_agents,
    instant_model,
    int_list,
    memgrid_command,
    memgrid_env,
    one_step_turn,
    percentile,
    quiet_logs,
    raw_latency,
    raw_rate,
    scratch,
    start_model,
    stop,
    table,
    timed,
    wait_workers,
)

from agents.llm import LLMClient, LLMSettings
from agents.runs import RunStore
from agents.runtime import LLMPool, Runtime
from bus.envelopes import InboxMessage, RunRequest, encode_envelope

__all__ = ("main",)


# --- workers -------------------------------------------------------------------------------


def _start_workers(
    cfg: Config, concurrency: int, env: dict[str, str], folder: Path
) -> list[subprocess.Popen[bytes]]:
    """``memgrid worker`` processes that count their Redis round trips (and, with
    ``cfg.instant``, answer the model at once), through :func:`_harness.memgrid_command`."""
    procs = []
    for index in range(cfg.workers):
        counts = folder / f"commands-{cfg.key}-{index}.json"
        cmd = memgrid_command(counts=counts, instant=cfg.instant)
        cmd += ["worker", "--concurrency", str(concurrency), "--drain-seconds", "3"]
        with (folder / f"worker-{cfg.key}-{index}.log").open("w") as err:
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err))
    return procs


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
        return percentile(self.laps_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.laps_ms, 99)


# --- raw baseline --------------------------------------------------------------------------


async def _raw_rows(url: str, args: argparse.Namespace) -> list[Row]:
    payload = _payload()
    print(f"raw baseline: {args.raw_messages:,} messages of {len(payload)} bytes")
    rows = []
    for count, batch in ((args.raw_messages, args.batch), (args.raw_messages // 4, 1)):
        elapsed, laps = await raw_rate(url, count, batch, payload)
        how = f"pipelined, batches of {batch}" if batch > 1 else "one await per command"
        name = f"raw XADD → XREADGROUP → XACK, {how}"
        rows.append(Row(name, count, count / elapsed, laps, "under load"))
    laps = await raw_latency(url, args.latency_messages + 20, payload)
    name = "raw XADD → XREADGROUP, one in flight (one hop)"
    return [*rows, Row(name, len(laps) - 20, None, laps[20:], "low load")]


def _payload() -> bytes:
    envelope = RunRequest(
        run_id="run-" + uuid.uuid4().hex,
        agent_id="agent-" + uuid.uuid4().hex,
        messages=(InboxMessage(content="hello 123"),),
    )
    return encode_envelope(envelope)


# --- memgrid -------------------------------------------------------------------------------


async def _one(runs: RunStore, agent_id: str, text: str) -> None:
    """Submit one message, follow its run to the end event."""
    submitted = await runs.submit(agent_id, [InboxMessage(content=text)])
    async for _ in runs.follow(agent_id, submitted.run_id, timeout_s=120):
        pass


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
    agents = await create_agents(rt, args.agents, cfg.key)
    procs = _start_workers(cfg, args.concurrency, env, folder)
    try:
        await wait_workers(rt.redis, cfg.workers, procs, folder)
        runs = RunStore(rt.redis)
        await _pipelined(runs, agents, 1, "warm-up")  # consumer groups, caches, connections
        watched = {**pids, **{f"worker {i + 1}": p.pid for i, p in enumerate(procs)}}
        before = {name: cpu_seconds(pid) for name, pid in watched.items()}
        elapsed, laps = await _pipelined(runs, agents, args.messages, "hello")
        total = args.agents * args.messages
        per_k = {n: (cpu_seconds(p) - before[n]) * 1000 / total for n, p in watched.items()}
        pipelined = Row(
            f"{cfg.label}: {args.agents} agents x {args.messages} at once",
            total,
            total / elapsed,
            laps,
            "queued behind the agent's earlier messages",
        )
        count = args.latency_messages
        sent = iter(range(count + 20))

        async def next_message() -> None:
            i = next(sent)
            await _one(runs, agents[i % len(agents)], f"one {i}")

        lats = await timed(count, next_message, warmup=20)
        one = Row(f"{cfg.label}: one message at a time", count, 1000 / statistics.mean(lats), lats)
        return [pipelined, one], Cpu(cfg.label, per_k)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            stop(proc)


# --- model and turn rows -------------------------------------------------------------------


async def _model_rows(
    rt: Runtime, model_url: str, count: int
) -> tuple[list[Row], dict[str, float]]:
    await rt.redis.flushall()
    # Many agents, a few turns each: one agent's history would grow into the summarizer, which
    # the echo model cannot play.
    agents = await create_agents(rt, max(1, count // 10), "solo")
    capture = CapturedRequest()
    with capture.on():
        await one_step_turn(rt, agents[0], "capture")
    llm = LLMClient(LLMSettings(base_url=model_url, max_retries=0))
    sdk = openai.AsyncOpenAI(base_url=model_url, api_key="x", max_retries=0)
    try:
        via_llm = await timed(
            count, lambda: llm.chat(capture.model, capture.messages, capture.tools), warmup=20
        )
        sdk_kwargs = capture.sdk_kwargs()
        via_sdk = await timed(count, lambda: sdk.chat.completions.create(**sdk_kwargs), warmup=20)
    finally:
        await llm.aclose()
        await sdk.close()
    n = 0

    async def turn() -> None:
        nonlocal n
        n += 1
        await one_step_turn(rt, agents[n % len(agents)], f"hi {n}")

    over_http = await timed(count, turn, warmup=20)
    with instant_model():
        instant = await timed(count, turn, warmup=20)
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
    def ratio(row: Row, raw: Row) -> str:
        return f"{row.rate / raw.rate:.3f}x" if row.rate is not None and raw.rate else "-"

    header = ["path", "messages", "msg/s", "vs raw pipelined", "vs raw one-await", "p50 ms"]
    table(
        [*header, "p99 ms", ""],
        (
            [
                *(r.name, f"{r.messages:,}", "-" if r.rate is None else f"{r.rate:,.0f}"),
                *(ratio(r, raw_pipe), ratio(r, raw_one), f"{r.p50:.2f}", f"{r.p99:.2f}", r.note),
            ]
            for r in rows
        ),
    )


def _print_hops(
    singles: list[tuple[Config, Row]], turn_p50: dict[str, float], raw_p50: float
) -> None:
    print(
        "\nadded latency per hop = (one-at-a-time p50 - in-process turn p50 with the same "
        "model) / 2 hops - raw one-hop p50\n"
    )
    cells = []
    for cfg, row in singles:
        turn = turn_p50["instant" if cfg.instant else "http"]
        overhead = row.p50 - turn
        added = overhead / 2 - raw_p50
        cells.append(
            [
                *(cfg.label, f"{row.p50:.2f}", f"{turn:.2f}", f"{overhead:.2f}"),
                *(f"{overhead / 2:.2f}", f"{added:.2f}", "met" if added <= 2 else "MISSED"),
            ]
        )
    header = ["memgrid path", "e2e p50 ms", "turn p50 ms", "bus overhead ms", "per hop ms"]
    table([*header, "added per hop ms", "target <= 2 ms"], cells)


def _print_cpu(cpus: list[Cpu]) -> None:
    names = list(dict.fromkeys(n for c in cpus for n in c.per_k))
    print("\nCPU seconds per 1,000 messages, pipelined phase (2 cores in all)\n")
    table(
        ["memgrid path", *names],
        ([c.label, *(f"{c.per_k[n]:.2f}" if n in c.per_k else "-" for n in names)] for c in cpus),
    )


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
    rows = [["**all**", *(f"**{sum(per[c.key].values()) / handled:.1f}**" for c in configs)]]
    for name in names:
        if max(per[c.key][name] for c in configs) >= handled / 20:
            rows.append([name, *(f"{per[c.key][name] / handled:.2f}" for c in configs)])
    table(["command (a pipeline is one)", *(c.label[9:] for c in configs)], rows)


async def _run(
    url: str, model_url: str, folder: Path, pids: dict[str, int], args: argparse.Namespace
) -> None:
    load = os.getloadavg()[0]  # other work on this machine skews every row
    rows = await _raw_rows(url, args)
    raw_pipe, raw_one, raw_lat = rows

    # Not bus.connect(): redis-py 8 reads with a 5 s socket timeout by default, which breaks
    # bus.run_events.follow (XREAD BLOCK 5000) whenever a run is quiet for 5 s.
    client = aioredis.Redis.from_url(url, max_connections=args.agents + 64, socket_timeout=60)
    rt = Runtime(redis=client, llm=LLMPool(LLMSettings(base_url=model_url)))
    singles: list[tuple[Config, Row]] = []
    cpus: list[Cpu] = []
    try:
        print("model round trip and in-process turns")
        model_rows, turn_p50 = await _model_rows(rt, model_url, args.latency_messages)
        rows += model_rows
        env = memgrid_env(url, folder / "home", model_url, log_level="WARNING")
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


def main() -> None:
    """Start redis-server and the scripted model, measure every row, print, stop all."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10, help="per agent, submitted at once")
    parser.add_argument("--raw-messages", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100, help="raw pipelined batch size")
    parser.add_argument("--latency-messages", type=int, default=300, help="one at a time")
    parser.add_argument("--workers", type=int_list, default=[1, 2], help="worker counts to try")
    parser.add_argument("--concurrency", type=int, default=32, help="per worker")
    args = parser.parse_args()
    quiet_logs()
    with scratch("memgrid-bus-", unix_socket=True, maxclients=10_000) as (folder, redis_proc, url):
        model_proc, model_url = start_model(folder / "model.log")
        try:
            pids = {"redis": redis_proc.pid, "model": model_proc.pid, "client": os.getpid()}
            anyio.run(_run, url, model_url, folder, pids, args)
        finally:
            stop(model_proc)


if __name__ == "__main__":
    main()
