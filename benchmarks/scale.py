"""How turns/s grows with worker processes: 1, 2, 4, ... N workers against one Redis.

A private ``redis-server`` (unix socket, no persistence; with ``--redis-cluster N`` a Redis
Cluster of N masters on loopback TCP instead, no replicas: one Redis thread saturates near
~3,000 one-step turns/s), ``--models`` scripted-model
processes per ``--workers-per-model`` workers (one-step turns: ``say("ok")``, after
``Slow(--latency)`` when it is not 0) and, per level of the sweep, N ``memgrid worker
--concurrency --slots`` processes. Each level: start the workers, wait until all are live,
pause them (SIGSTOP), submit one message to each of enough fresh agents for about
``--duration`` seconds of work (sized from the baseline level's rate, at least 2 x the slots),
resume them (SIGCONT) and wait for every run. The submitter's CPU is therefore outside the
timed window, and every turn is a whole one (lease, one step, release), as for a message
arriving at an idle agent.

Measured per level: turns/s (turns / first resume -> last run completed, from the runs' own
``completed_at``); CPU milliseconds per turn of the workers (all workers' CPU over all turns),
of the busiest worker, of the scripted model(s) and of redis-server (all masters' together on
a cluster, and the busiest master's share of that), each from ``/proc/<pid>/stat`` over the
timed window; Redis commands per turn (INFO commandstats of every server); lease expiries
and lost leases (the workers' ``lease_expired`` / ``lease_lost`` log events); scaling
efficiency: turns/s over N x the baseline level's turns/s per worker (the first level of the
same run); and, with a model latency, the ratio to the ideal N x slots / latency.

Targets (issue #14): worker CPU <= 2.0 ms a turn (>= 500 turns/s per worker core); >= 0.85 of
linear at 12 workers on 16 cores; >= 0.9 of ideal at 1 s latency with 0 lease expiries.

``--profile`` runs worker 1 of the last level under cProfile for the timed window only and
prints its top functions (cProfile slows that worker down: read its level's rate with that in
mind). Redis, the model, the /proc readers and the cProfile wrapper come from ``_harness``.

Run: ``.venv/bin/python benchmarks/scale.py`` (about 40 s on 2 cores); all options:
``--workers 1,2 --slots 64 --latency 0 --duration 5 --workers-per-model 4 --lease-ms 10000
--redis-cluster 0 --profile``. On a 16-core machine: ``--workers 1,2,4,8,12`` (and
``--redis-cluster 3`` from 8 workers on); see docs/performance.md.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec
import redis.asyncio as aioredis
from _harness import (  # benchmarks/ is first on sys.path
    Scratch,
    cprofile_top,
    cpu_seconds,
    create_agents,
    int_list,
    memgrid_command,
    options,
    run_on_redis,
    start_fleet,
)

from agents.llm import LLMSettings
from agents.runs import RunStore
from agents.runtime import LLMPool, Runtime
from bus import connect, is_cluster
from bus.envelopes import InboxMessage
from storage import keys
from storage._util import mget  # one MGET, or one per hash slot on a cluster
from storage.records import Run

__all__ = ("main",)

_LEASE_EVENTS = ("lease_expired", "lease_lost")


# --- one level -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Servers:
    """The Redis of a sweep: its URL and folder, which it is (``1 server`` or ``N masters``),
    each server's pid (``redis``, or ``redis 1`` ... for a cluster's masters; for the /proc
    readers) and a plain client of each (INFO is one server's)."""

    folder: Path
    url: str
    label: str
    pids: dict[str, int]
    nodes: list[aioredis.Redis]


def _servers(scratch: Scratch) -> Servers:
    nodes = [aioredis.Redis.from_url(u) for u in scratch.node_urls]
    if not scratch.cluster:
        return Servers(scratch.folder, scratch.url, "1 server", {"redis": scratch.redis.pid}, nodes)
    named = {f"redis {i + 1}": p.pid for i, p in enumerate(scratch.servers)}
    return Servers(scratch.folder, scratch.url, f"{len(named)} masters", named, nodes)


class Level(msgspec.Struct, kw_only=True):
    workers: int
    redis: str  # which Redis ran: "1 server" or "N masters"
    turns: int
    ok: int
    elapsed: float
    cpu: dict[str, float]
    lease_events: int
    exited: int
    commands: dict[str, int]  # Redis commands run in the window, by name (polls included)
    profile: str = ""


async def _submit(runs: RunStore, agents: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    limiter = anyio.Semaphore(64)

    async def one(agent_id: str) -> None:
        async with limiter:
            sub = await runs.submit(agent_id, [InboxMessage(content="hello")])
            out.append((agent_id, sub.run_id))

    async with anyio.create_task_group() as tg:
        for agent_id in agents:
            tg.start_soon(one, agent_id)
    return out


_DONE = ("completed", "failed", "cancelled")


async def _wait(client: aioredis.Redis, runs: list[tuple[str, str]], limit_s: float) -> int:
    """Wait for every run to finish, looking only at the oldest 200 not yet seen finished
    (they finish about in order), so polling costs Redis little; 50 on a cluster, where each
    key is a command of its own. Returns how many did not."""
    pending = list(runs)
    decoder = msgspec.json.Decoder(Run)
    deadline = time.monotonic() + limit_s
    window = 50 if is_cluster(client) else 200
    while pending and time.monotonic() < deadline:
        head = pending[:window]
        raws = await mget(client, [keys.run(a, r) for a, r in head])
        done = {i for i, raw in enumerate(raws) if raw and decoder.decode(raw).status in _DONE}
        pending = [item for i, item in enumerate(head) if i not in done] + pending[window:]
        if len(done) < len(head):
            await anyio.sleep(0.1)
    return len(pending)


async def _commands(nodes: list[aioredis.Redis]) -> Counter[str]:
    """Commands run so far by name (Lua scripts' own commands included) on all the servers,
    from each one's INFO."""
    total: Counter[str] = Counter()
    for node in nodes:
        info = await node.info("commandstats")
        total.update({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()})
    return total


async def _finished(client: aioredis.Redis, runs: list[tuple[str, str]]) -> list[Run]:
    decoder = msgspec.json.Decoder(Run)
    out: list[Run] = []
    for start in range(0, len(runs), 1000):
        chunk = runs[start : start + 1000]
        raws = await mget(client, [keys.run(a, r) for a, r in chunk])
        out += [decoder.decode(raw) for raw in raws if raw]
    return out


async def _level(
    client: aioredis.Redis,
    redis: Servers,
    agents: list[str],
    n: int,
    args: argparse.Namespace,
    profile: bool,
) -> Level:
    sub = redis.folder / f"w{n}"
    prof = sub / "worker-1.prof"
    models = max(1, math.ceil(n / args.workers_per_model))
    first = memgrid_command(cprofile=prof, cpu_clock=True) if profile else None
    fleet = await start_fleet(
        redis.url, sub, args, models=models, workers=n, slots=args.slots, first_worker=first
    )
    workers = fleet.workers
    pids = {**redis.pids, **fleet.pids}
    try:
        for proc in workers:
            proc.send_signal(signal.SIGSTOP)
        submitted = await _submit(RunStore(client), agents)
        calls_before = await _commands(redis.nodes)
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        t0 = time.time()
        for proc in workers:
            proc.send_signal(signal.SIGCONT)
        if profile:
            workers[0].send_signal(signal.SIGUSR1)
        missing = await _wait(client, submitted, args.timeout)
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        calls = await _commands(redis.nodes)
        calls.subtract(calls_before)
        if profile:
            workers[0].send_signal(signal.SIGUSR2)
        runs = await _finished(client, submitted)
        exited = sum(w.poll() is not None for w in workers)
    finally:
        fleet.close()
    ok = [r for r in runs if r.status == "completed" and r.stop_reason == "end_turn"]
    ends = [r.completed_at for r in runs if r.completed_at]
    events = 0
    for index in range(n):
        text = fleet.worker_log(index).read_text()
        events += sum(text.count(f'"event": "{name}"') for name in _LEASE_EVENTS)
    if missing:
        print(f"  {missing} runs did not finish in {args.timeout:g} s; logs in {sub}")
    return Level(
        workers=n,
        redis=redis.label,
        turns=len(submitted),
        ok=len(ok),
        elapsed=(max(ends) - t0) if ends else float("nan"),
        cpu=cpu,
        lease_events=events,
        exited=exited,
        commands=dict(calls),
        profile=_profile(prof) if profile else "",
    )


def _profile(path: Path) -> str:
    """Worker 1's top functions; its stats are kept past the run's temporary folder."""
    if not path.exists():
        return "(worker 1 wrote no profile)"
    keep = Path(tempfile.gettempdir()) / "memgrid-scale-worker.prof"
    shutil.copyfile(path, keep)
    return f"(pstats file: {keep})\n" + cprofile_top(path, "worker 1", top=30)


# --- the sweep and the table ---------------------------------------------------------------


def _share(level: Level, prefix: str) -> float:
    return 1000 * sum(v for k, v in level.cpu.items() if k.startswith(prefix)) / level.turns


def _redis_cell(level: Level) -> str:
    """Which Redis ran; for a cluster, the busiest master's share of all masters' CPU (an even
    spread is 1/N: one hot master would flatten the scaling first)."""
    if level.redis == "1 server":
        return level.redis
    cpu = [v for k, v in level.cpu.items() if k.startswith("redis")]
    return f"{level.redis} (busiest {max(cpu) / max(sum(cpu), 1e-9):.0%})"


async def _sweep(args: argparse.Namespace, redis: Scratch) -> None:
    """Measure each level of the sweep on fresh agents, print the table."""
    servers = _servers(redis)
    client = connect(redis.url, max_connections=128)
    # One command first: redis-py's RedisCluster (8.1) routes commands sent before its slot
    # map is loaded to one node; the MOVED replies reload the map and cut the commands in
    # flight, which it then sends again: 32 concurrent first creates ran a block's create
    # script twice ("block ... already exists").
    await client.ping()
    rt = Runtime(redis=client, llm=LLMPool(LLMSettings(base_url="http://127.0.0.1:9/v1")))
    agents: list[str] = []  # fresh ones per level: one turn each
    levels: list[Level] = []
    per_worker = 0.0  # the baseline level's turns/s per worker, once measured
    try:
        for index, n in enumerate(args.workers):
            guess = args.slots / args.latency if args.latency else 300.0
            rate = n * (per_worker or guess)
            count = max(2 * n * args.slots, math.ceil(rate * args.duration))
            used = len(agents)
            started = time.perf_counter()
            agents += await create_agents(rt, count, prefix=f"level{index}")
            print(
                f"{n} worker(s): {count:,} turns ({count:,} agents made in "
                f"{time.perf_counter() - started:.1f} s)",
                flush=True,
            )
            last = index == len(args.workers) - 1
            level = await _level(client, servers, agents[used:], n, args, args.profile and last)
            levels.append(level)
            if not per_worker:
                per_worker = level.ok / level.elapsed / n
            print(
                f"  {level.ok / level.elapsed:,.0f} turns/s, worker CPU "
                f"{_share(level, 'worker'):.2f} ms/turn",
                flush=True,
            )
    finally:
        await rt.aclose()
        await client.aclose()
        for node in servers.nodes:
            await node.aclose()
    _print(levels, args)


def _print(levels: list[Level], args: argparse.Namespace) -> None:
    latency = f"Slow({args.latency:g} s)" if args.latency else "no latency"
    redis = (
        f"a Redis Cluster of {args.redis_cluster} masters (loopback TCP, no replicas)"
        if args.redis_cluster
        else "one redis-server (unix socket)"
    )
    print(
        f"\none-step turns, {args.slots} slots per worker, scripted model {latency}, one model "
        f"process per {args.workers_per_model} workers, --lease-ms {args.lease_ms}, {redis}; "
        f"{os.cpu_count()} cores; load average now {os.getloadavg()[0]:.2f}\n"
    )
    ideal_col = " ideal turns/s | ratio to ideal |" if args.latency else ""
    head = "| workers | Redis (busiest master's CPU share) | turns | **turns/s** | **scaling "
    head += "efficiency** |" + ideal_col + " CPU ms/turn: workers / busiest worker / model / "
    print(
        head + "redis | worker turns/s per core | Redis commands/turn | lease expiries | finished |"
    )
    print("|---:|---|" + "---:|" * (8 + (2 if args.latency else 0)))
    base = levels[0].ok / levels[0].elapsed / levels[0].workers
    for level in levels:
        rate = level.ok / level.elapsed
        worker_ms = _share(level, "worker")
        busiest = max(v for k, v in level.cpu.items() if k.startswith("worker"))
        per_worker_turns = level.turns / level.workers
        extra = ""
        if args.latency:
            ideal = level.workers * args.slots / args.latency
            extra = f" {ideal:,.0f} | {rate / ideal:.3f} |"
        print(
            f"| {level.workers} | {_redis_cell(level)} | {level.turns:,} | **{rate:,.0f}** | "
            f"**{rate / (base * level.workers):.3f}** |{extra} {worker_ms:.2f} / "
            f"{1000 * busiest / per_worker_turns:.2f} / {_share(level, 'model'):.2f} / "
            f"{_share(level, 'redis'):.2f} | {1000 / max(worker_ms, 1e-9):,.0f} | "
            f"{sum(level.commands.values()) / level.turns:.1f} | "
            f"{level.lease_events} | {level.ok:,} / {level.turns:,}"
            + (f" ({level.exited} workers exited)" if level.exited else "")
            + " |"
        )
    print(
        "\nscaling efficiency: turns/s over workers x the first level's turns/s per worker; "
        "busiest worker: its CPU over the turns one worker would have run (turns / workers)"
    )
    top = Counter(levels[0].commands).most_common(12)
    print(
        f"\nRedis commands per turn at {levels[0].workers} worker(s), by name (scripts' own "
        "commands counted too; the poll for finished runs is the mget share): "
        + ", ".join(f"{name} {count / levels[0].turns:.2f}" for name, count in top)
    )
    if levels[-1].profile:
        print(f"\ncProfile of worker 1 at {levels[-1].workers} workers:\n{levels[-1].profile}")


def _default_workers() -> list[int]:
    top = max(2, (os.cpu_count() or 2) * 3 // 4)
    counts = [1]
    while counts[-1] * 2 < top:
        counts.append(counts[-1] * 2)
    return [*counts, top]


def main() -> None:
    """Start Redis, sweep the worker counts, print the table, stop everything."""
    parser = options(__doc__, latency=0.0, lease_ms=10_000, timeout=300.0, redis_cluster=0)
    parser.add_argument(
        "--workers",
        type=int_list,
        default=_default_workers(),
        help="worker processes per level, a comma-separated sweep (1,2,4,... 3/4 of the cores)",
    )
    parser.add_argument("--slots", type=int, default=64, help="worker --concurrency (64)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of work a level")
    parser.add_argument("--workers-per-model", type=int, default=4, help="one model per these")
    parser.add_argument("--profile", action="store_true", help="cProfile worker 1, last level")
    run_on_redis(parser, _sweep, "memgrid-scale-", uvloop=True, unix_socket=True, maxclients=15_000)


if __name__ == "__main__":
    main()
