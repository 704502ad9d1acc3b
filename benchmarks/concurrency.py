"""Turns/s of many agents against a slow model: 5,000 agents, one turn each, on 2 workers.

A private ``redis-server`` (unix socket, no persistence) and, for each worker concurrency in
``--concurrency`` (a sweep), fresh ``--models`` scripted-model processes answering every chat
completion with ``Slow(--latency, then=say("ok"))`` (one step per turn) and ``--workers``
``memgrid worker --concurrency N`` processes (worker *i* uses model *i mod models*). The
``--agents`` agents are created once, in parallel; at each level every agent gets ``--turns``
messages, submitted at once (``RunStore.submit``, 64 in flight).

Measured per level: turns/s over first submit → last run completed (the runs' own
``completed_at``); turn latency (the run's ``created_at`` → ``completed_at``); the model's peak
requests in flight; peak RSS of the workers; CPU milliseconds per turn of the workers (all
workers' CPU over all turns), Redis, the model and this client; from the workers' health
records (after one more beat once the runs are done): lease expiries (target 0: a healthy
worker never loses a lease) and the worst lease renewal, how late it started and how long
its round trips took.

Target: turns/s >= 0.9 x min(agents, workers x concurrency) / latency, the rate if every turn
took exactly the model's latency with every slot full. On one machine the whole stack shares
its cores, so past the concurrency at which they are saturated the ratio falls as concurrency
grows: the table shows where that is, and ``worker turns/s per core`` (1000 / worker CPU ms
per turn) is what one worker process sustains on one core of this machine, for planning.

``--profile SECONDS`` records worker 1 of the last level with ``py-spy`` (``pip install py-spy``
into the venv) for that long after the submits and prints its top functions.

Run: ``.venv/bin/python benchmarks/concurrency.py`` (about 3 minutes on 2 cores); all options:
``--agents 5000 --turns 1 --workers 2 --concurrency 50,100,200,2500 --latency 1.0 --models 1
--lease-ms 10000 --profile 0``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import msgspec
import redis.asyncio as aioredis
from _harness import (  # benchmarks/ is first on sys.path
    PACKAGES,
    Scratch,
    cpu_seconds,
    create_agents,
    int_list,
    memory,
    options,
    percentile,
    py_spy,
    py_spy_stop,
    run_on_redis,
    start_fleet,
)

from agents.llm import LLMSettings
from agents.runs import RunStore
from agents.runtime import LLMPool, Runtime
from bus import connect
from bus import keys as keys_bus
from bus.envelopes import InboxMessage
from storage import keys
from storage.records import Run

__all__ = ("main",)


# --- the run -------------------------------------------------------------------------------


async def _submit_all(runs: RunStore, agents: list[str], turns: int) -> list[tuple[str, str]]:
    submitted: list[tuple[str, str]] = []
    limiter = anyio.Semaphore(64)

    async def one(agent_id: str, n: int) -> None:
        async with limiter:
            sub = await runs.submit(agent_id, [InboxMessage(content=f"hello {n}")])
            submitted.append((agent_id, sub.run_id))

    async with anyio.create_task_group() as tg:
        for n in range(turns):
            for agent_id in agents:
                tg.start_soon(one, agent_id, n)
    return submitted


async def _wait_done(
    client: aioredis.Redis,
    runs: list[tuple[str, str]],
    timeout_s: float,
    workers: list[subprocess.Popen[bytes]],
) -> tuple[list[Run], int]:
    """Poll the run records until every run is finished or every worker died; returns the
    finished runs and how many were not."""
    pending = list(runs)
    done: list[Run] = []
    decoder = msgspec.json.Decoder(Run)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        if all(w.poll() is not None for w in workers):
            print("every worker has exited; see the logs below")
            break
        await anyio.sleep(0.2)
        still = []
        for start in range(0, len(pending), 1000):
            chunk = pending[start : start + 1000]
            raws = await client.mget([keys.run(a, r) for a, r in chunk])
            for item, raw in zip(chunk, raws, strict=True):
                run = decoder.decode(raw) if raw else None
                if run is not None and run.status in ("completed", "failed", "cancelled"):
                    done.append(run)
                else:
                    still.append(item)
        pending = still
    return done, len(pending)


async def _final_health(client: aioredis.Redis, pids: list[int]) -> dict[int, dict[str, Any]]:
    """The workers' health records (by pid), after each has beaten once more: the counters a
    worker writes at each beat are then final."""
    ids = [i.decode() for i in await client.smembers(keys_bus.workers())]
    health = [keys_bus.worker_health(i) for i in ids]
    ttls = [await client.pttl(key) for key in health]
    deadline = time.monotonic() + 20  # a beat comes every 10 s (health_ttl_s / 3)
    while time.monotonic() < deadline:
        now = [await client.pttl(key) for key in health]
        if all(n > t for n, t in zip(now, ttls, strict=True)):
            break
        ttls = [min(n, t) for n, t in zip(now, ttls, strict=True)]
        await anyio.sleep(0.2)
    records = [msgspec.json.decode(raw) for raw in await client.mget(health) if raw]
    return {int(r["pid"]): r for r in records if isinstance(r, dict) and r.get("pid") in pids}


def _lease_events(logs: list[Path]) -> Counter[str]:
    """The workers' lease warnings by event name, from their whole logs (JSON lines)."""
    names = ("lease_expired", "lease_lost", "lease_renewal_slow", "lease_renewal_failed")
    names += ("lease_renewal_paused_loop_stalled",)
    found: Counter[str] = Counter()
    for log in logs:
        for line in log.read_text().splitlines():
            for name in names:
                if f'"event": "{name}"' in line:
                    found[name] += 1
    return found


async def _py_spy(pid: int, seconds: float, folder: Path) -> str:
    out = folder / "worker.pyspy.txt"
    failed = py_spy(pid, out, rate=100, seconds=seconds)
    if failed:
        return failed
    return await anyio.to_thread.run_sync(lambda: py_spy_stop(out, "worker 1", callers=6))


class Level(msgspec.Struct, kw_only=True):
    """One level of the sweep: what was measured with ``concurrency`` slots per worker."""

    concurrency: int
    total: int
    runs: list[Run]
    missing: int
    t0: float
    submit_s: float
    arrivals: list[float]
    cpu_s: dict[str, float]
    rss: dict[str, dict[str, int]]
    logs: dict[str, str]
    health: dict[int, dict[str, Any]]
    lease_events: Counter[str]
    exited: int
    profile: str = ""


async def _level(
    client: aioredis.Redis,
    url: str,
    agents: list[str],
    concurrency: int,
    folder: Path,
    redis_pid: int,
    args: argparse.Namespace,
    profile_s: float,
) -> Level:
    """Start models and workers, give every agent ``--turns`` messages, wait, stop them."""
    sub = folder / f"c{concurrency}"
    profile = ""
    fleet = await start_fleet(
        url, sub, args, models=args.models, workers=args.workers, slots=concurrency, arrivals=True
    )
    workers = fleet.workers
    pids = {"redis": redis_pid, "client": os.getpid(), **fleet.pids}
    try:
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        runs = RunStore(client)
        t0 = time.time()
        async with anyio.create_task_group() as tg:
            if profile_s:
                spied: dict[str, str] = {}

                async def spy() -> None:
                    spied["text"] = await _py_spy(workers[0].pid, profile_s, sub)

                tg.start_soon(spy)
            submitted = await _submit_all(runs, agents, args.turns)
            submit_s = time.time() - t0
            done, missing = await _wait_done(client, submitted, args.timeout, workers)
            health = await _final_health(client, [w.pid for w in workers])
            exited = sum(w.poll() is not None for w in workers)
        if profile_s:
            profile = spied["text"]
        cpu_s = {n: cpu_seconds(p) - cpu_before[n] for n, p in pids.items()}
        rss = {n: memory(p) for n, p in pids.items() if n.startswith("worker")}
    finally:
        fleet.close()
    arrivals: list[float] = []
    for index in range(args.models):
        path = sub / f"model-{index}.arrivals"
        if path.exists():
            arrivals += json.loads(path.read_bytes())
    return Level(
        concurrency=concurrency,
        total=len(submitted),
        runs=done,
        missing=missing,
        t0=t0,
        submit_s=submit_s,
        arrivals=sorted(arrivals),
        cpu_s=cpu_s,
        rss=rss,
        logs={
            f"worker {i + 1}": fleet.worker_log(i).read_text()[-20_000:]
            for i in range(len(workers))
        },
        health=health,
        lease_events=_lease_events([fleet.worker_log(i) for i in range(len(workers))]),
        exited=exited,
        profile=profile,
    )


async def _sweep(args: argparse.Namespace, redis: Scratch) -> None:
    """Create the agents, measure each level of the sweep, print the table."""
    url, folder, redis_pid = redis.url, redis.folder, redis.redis.pid
    client = connect(url, max_connections=256)
    rt = Runtime(redis=client, llm=LLMPool(LLMSettings(base_url="http://127.0.0.1:9/v1")))
    levels: list[Level] = []
    try:
        started = time.perf_counter()
        agents = await create_agents(rt, args.agents, "a", parallel=48)
        print(f"created {args.agents:,} agents in {time.perf_counter() - started:.1f} s")
        for index, concurrency in enumerate(args.concurrency):
            last = index == len(args.concurrency) - 1
            level = await _level(
                client, url, agents, concurrency, folder, redis_pid, args,
                args.profile if last else 0.0,
            )  # fmt: skip
            levels.append(level)
            row = _row(level, args)
            print(
                f"--concurrency {concurrency}: {row['rate']:,.0f} turns/s, ratio "
                f"{row['ratio']:.3f}, worker CPU {row['worker_ms']:.2f} ms/turn"
            )
    finally:
        await rt.aclose()
        await client.aclose()
    _print(levels, args)


def _peak_in_flight(arrivals: list[float], latency: float) -> int:
    peak = left = 0
    for right, at in enumerate(arrivals):
        while arrivals[left] <= at - latency:
            left += 1
        peak = max(peak, right - left + 1)
    return peak


def _row(level: Level, args: argparse.Namespace) -> dict[str, Any]:
    ok = [r for r in level.runs if r.status == "completed" and r.stop_reason == "end_turn"]
    ends = [r.completed_at or level.t0 for r in level.runs]
    elapsed = (max(ends) - level.t0) if ends else float("nan")
    rate = len(ok) / elapsed if ends else 0.0
    slots = min(args.agents, args.workers * level.concurrency)
    ideal = slots / args.latency
    laps = sorted(((r.completed_at or 0) - r.created_at) for r in level.runs)
    workers = [n for n in level.cpu_s if n.startswith("worker")]
    worker_cpu = sum(level.cpu_s[n] for n in workers)
    models = [n for n in level.cpu_s if n.startswith("model")]
    return {
        "ok": len(ok),
        "elapsed": elapsed,
        "rate": rate,
        "ideal": ideal,
        "ratio": rate / ideal if ideal else 0.0,
        "p50": percentile(laps, 50),
        "p99": percentile(laps, 99),
        "peak": _peak_in_flight(level.arrivals, args.latency),
        # Worker CPU per turn that a worker ran: all workers' CPU over all turns.
        "worker_ms": 1000 * worker_cpu / max(1, level.total),
        "redis_ms": 1000 * level.cpu_s["redis"] / max(1, level.total),
        "model_ms": 1000 * sum(level.cpu_s[n] for n in models) / max(1, level.total),
        "client_ms": 1000 * level.cpu_s["client"] / max(1, level.total),
        "rss": max((st.get("VmHWM", 0) for st in level.rss.values()), default=0) // 2**20,
        "stops": Counter(f"{r.status}/{r.stop_reason}" for r in level.runs),
        # Leases lost (None: a worker's health record was missing) and the worst renewal.
        # Expiries from the health counters when every worker's record was read, else from
        # the logs' lease_expired/lease_lost events (a worker that exited has no record).
        "expired": (
            sum(int(h.get("lease_expired", 0)) for h in level.health.values())
            if len(level.health) == args.workers
            else level.lease_events["lease_expired"] + level.lease_events["lease_lost"]
        ),
        "late": max(
            (int(h.get("lease_renew_late_ms_max", 0)) for h in level.health.values()), default=0
        ),
        "took": max(
            (int(h.get("lease_renew_ms_max", 0)) for h in level.health.values()), default=0
        ),
        "renewals": sum(int(h.get("lease_renewals", 0)) for h in level.health.values()),
        "lag": max(
            (int(h.get("lease_loop_lag_ms_max", 0)) for h in level.health.values()), default=0
        ),
    }


def _print(levels: list[Level], args: argparse.Namespace) -> None:
    print(
        f"\n{args.agents:,} agents x {args.turns} turn(s) per level, {args.workers} workers, "
        f"{args.models} scripted model process(es) with Slow({args.latency:g} s), --lease-ms "
        f"{args.lease_ms}; {os.cpu_count()} cores; load average now "
        f"{os.getloadavg()[0]:.2f}\n"
    )
    print(
        "| --concurrency (per worker) | ideal turns/s | **turns/s** | **ratio** | "
        "latency p50 / p99 | model peak in flight | CPU ms/turn: workers / redis / model / "
        "client | worker turns/s per core | worker peak RSS | finished | **lease expiries** | "
        "worst renewal: late / took | worst event-loop lag |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = [(level, _row(level, args)) for level in levels]
    for level, r in rows:
        print(
            f"| {level.concurrency:,} | {r['ideal']:,.0f} | **{r['rate']:,.0f}** | "
            f"**{r['ratio']:.3f}** | {r['p50']:.2f} / {r['p99']:.2f} s | {r['peak']:,} | "
            f"{r['worker_ms']:.2f} / {r['redis_ms']:.2f} / {r['model_ms']:.2f} / "
            f"{r['client_ms']:.2f} | {1000 / max(r['worker_ms'], 1e-9):,.0f} | "
            f"{r['rss']:,} MiB | {r['ok']:,} / {level.total:,} | "
            f"**{r['expired']}** | "
            f"{r['late']:,} / {r['took']:,} ms ({r['renewals']:,} rounds) | {r['lag']:,} ms |"
        )
    print(
        f"\nworst renewal: the latest a lease renewal round started after it was due, and the "
        f"longest its round trips took (a lease lives 3 renewal intervals, "
        f"{args.lease_ms / 3:,.0f} ms each); worst event-loop lag: the most a worker's loop "
        f"ran late (a renewal on the loop would have waited that long, and more)"
    )
    print("\ntarget turns/s >= 0.9 x ideal, lease expiries 0:")
    for level, r in rows:
        status = "met" if r["rate"] >= 0.9 * r["ideal"] else "MISSED"
        leases = "met" if r["expired"] == 0 else "MISSED"
        print(
            f"- --concurrency {level.concurrency:,}: {status} ({r['rate']:,.0f} vs "
            f"{0.9 * r['ideal']:,.0f}); lease expiries {leases} ({r['expired']}); outcomes "
            f"{dict(r['stops'])}; not finished {level.missing}; lease log events "
            f"{dict(level.lease_events) or 'none'}; workers that exited early {level.exited}"
        )
    for level, _r in rows:
        for name, text in level.logs.items():
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            problems = [ln for ln in lines if "stopping (finishing" not in ln]
            if not problems:
                continue
            # Our frames of the tracebacks, then the last lines: where it failed, with what.
            ours = [ln for ln in problems if any(f"/{pkg}/" in ln for pkg in PACKAGES)]
            shown = list(dict.fromkeys(ours))[-8:] + problems[-3:]
            print(f"\n{name} at --concurrency {level.concurrency} log:\n" + "\n".join(shown))
    if levels and levels[-1].profile:
        print("\n" + levels[-1].profile)


def main() -> None:
    """Start Redis, sweep the concurrency levels, print the table, stop everything."""
    parser = options(__doc__, agents=5000, latency=1.0, lease_ms=10_000, timeout=300.0)
    parser.add_argument("--turns", type=int, default=1, help="messages per agent per level")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--concurrency",
        type=int_list,
        default=[50, 100, 200, 2500],
        help="per worker; a comma-separated sweep (50,100,200,2500)",
    )
    parser.add_argument("--models", type=int, default=1, help="scripted model processes")
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy seconds, last level")
    run_on_redis(parser, _sweep, "memgrid-conc-", uvloop=True, unix_socket=True, maxclients=15_000)


if __name__ == "__main__":
    main()
