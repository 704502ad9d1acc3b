"""Turns/s of many agents against a slow model: 5,000 agents, one turn each, on 2 workers.

A private ``redis-server`` (unix socket, no persistence), ``--models`` scripted-model processes
answering every chat completion with ``Slow(--latency, then=say("ok"))`` (one step per turn),
and ``--workers`` ``memgrid worker --concurrency N`` processes; worker *i* uses model
*i mod models*. ``--agents`` agents are created in parallel before the workers start; then each
gets ``--turns`` messages, submitted at once (``RunStore.submit``, 64 in flight).

Measured: turns/s over first submit → last run completed (the runs' own ``completed_at``),
turn latency (the run's ``created_at`` → ``completed_at``), the model's request arrivals (peak
requests in flight, arrival span), peak and final RSS of each worker and model process, CPU
seconds of each process, and the runs each worker did.

Target: turns/s >= 0.9 x min(agents, workers x concurrency) / latency, the rate if every turn
took exactly the model's latency with all slots full (5000 / 1 s = 5,000 turns/s by default).

``--patch`` runs the workers with a fix applied by monkeypatching inside the worker process
(repeatable): ``http-pool`` (``LLMClient`` gets an ``httpx2`` pool without the SDK's
1,000-connection / 100-keep-alive cap), ``redis-pool=N`` (the worker's Redis client has N
connections and a caller past them waits, instead of ``MaxConnectionsError`` past 64, which
kills the worker), ``archival-stats`` (a worker that does not own the embedded passage engine
answers the per-step archival count/tags itself instead of two Redis RPCs to the owner).
``--profile SECONDS`` records worker 1 with ``py-spy`` (``pip install py-spy`` into
the venv) for that long after the submits and prints its top functions.

Run: ``.venv/bin/python benchmarks/concurrency.py`` (20 s: unpatched, the workers die at once);
with ``--patch redis-pool=1024`` about 1.5 minutes (5,000 agents created in ~5 s); all options:
``--agents 5000 --turns 1 --workers 2 --concurrency 2500 --latency 1.0 --models 1
--lease-ms 10000 --patch redis-pool=1024 --patch http-pool --patch archival-stats
--profile 20``.
"""

# ruff: noqa: E402  (benchmarks/ leaves sys.path before the imports below)

from __future__ import annotations

import os
import sys

# ``python benchmarks/concurrency.py`` puts benchmarks/ first on sys.path, where bus.py would
# stand in for the ``bus`` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE in sys.path:
    sys.path.remove(_HERE)

import argparse
import json
import logging
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import msgspec
import redis
import redis.asyncio as aioredis
import structlog

from agents.llm import LLMSettings
from agents.manage import AgentSpec, create_agent
from agents.runs import RunStore, live_workers
from agents.runtime import LLMPool, Runtime
from bus import connect, find_redis_server
from bus.envelopes import InboxMessage
from storage import keys
from storage.records import Run

__all__ = ("main",)

_ME = [sys.executable, os.path.abspath(__file__)]
_PACKAGES = ("agents", "bus", "storage", "orchestrator")


# --- processes -----------------------------------------------------------------------------


def _start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    sock = folder / "redis.sock"
    proc = subprocess.Popen(
        [
            find_redis_server(),
            *("--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"),
            *("--dir", str(folder), "--save", "", "--appendonly", "no", "--daemonize", "no"),
            *("--maxclients", "15000"),
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


def _stop(proc: subprocess.Popen[Any], *, grace_s: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _start_model(folder: Path, index: int, latency: float) -> tuple[subprocess.Popen[str], str]:
    arrivals = folder / f"model-{index}.arrivals"
    with (folder / f"model-{index}.log").open("w") as err:
        proc = subprocess.Popen(
            [*_ME, "--role", "model", str(latency), str(arrivals)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url:
        _stop(proc)
        raise RuntimeError(f"the scripted model did not start; see {folder}/model-{index}.log")
    return proc, url


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in MiB."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) // 1024
    return out


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds so far; NaN once the process is gone (or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return float("nan")
    if fields[0] == "Z":
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- roles: the model and the workers, in their own processes ------------------------------


def _serve_model(latency: float, arrivals_file: str) -> int:
    """A scripted model answering ``Slow(latency, say("ok"))``; logs arrival times."""
    from agents.scripted import ChatRequest, Outcome, ScriptedModel, Slow, say

    arrivals: list[float] = []

    def policy(request: ChatRequest) -> Outcome:
        arrivals.append(time.time())
        return Slow(seconds=latency, then=say("ok"))

    async def serve() -> None:
        model = ScriptedModel(policy)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            await model.start()
            try:
                print(model.base_url, flush=True)
                async for _ in signals:
                    break
            finally:
                await model.aclose()
                await anyio.Path(arrivals_file).write_bytes(msgspec.json.encode(arrivals))

    anyio.run(serve)
    return 0


def _patch_http_pool() -> None:
    """``LLMClient`` with an httpx2 pool as large as the worker's concurrency."""
    import httpx2
    import openai

    from agents import llm

    class _Client(openai.AsyncOpenAI):
        def __init__(self, **kwargs: Any) -> None:
            limits = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
            timeout = kwargs.get("timeout")
            kwargs["http_client"] = openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeout)
            super().__init__(**kwargs)

    llm.openai = type(sys)("openai_patched")  # type: ignore[attr-defined]
    for name in dir(openai):
        setattr(llm.openai, name, getattr(openai, name))
    llm.openai.AsyncOpenAI = _Client  # type: ignore[attr-defined]


def _patch_redis_pool(size: int) -> None:
    """The runtime's Redis client: ``size`` connections; a caller past them waits."""
    from orchestrator import runtime

    def connect_blocking(url: str, *, max_connections: int = size) -> aioredis.Redis:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=size,
            timeout=None,
            socket_connect_timeout=5.0,
            health_check_interval=30,
        )
        return aioredis.Redis(connection_pool=pool, decode_responses=False)

    runtime.connect = connect_blocking  # type: ignore[assignment]


def _patch_archival_stats() -> None:
    """Non-owner workers answer archival count/tags without the Redis RPC to the owner (as a
    per-process cache would; every agent here has no passages, so the answer is the same)."""
    from agents.archival_rpc import RemoteArchival

    async def count(self: RemoteArchival, owner_id: str) -> int:
        return 0

    async def tags(self: RemoteArchival, owner_id: str) -> list[str]:
        return []

    RemoteArchival.count = count  # type: ignore[method-assign]
    RemoteArchival.tags = tags  # type: ignore[method-assign]


def _worker(argv: list[str]) -> int:
    """``memgrid worker`` after the ``--patch`` options at the head of ``argv``."""
    from orchestrator.cli import main as cli

    while argv and argv[0] == "--patch":
        name, argv = argv[1], argv[2:]
        if name == "http-pool":
            _patch_http_pool()
        elif name == "archival-stats":
            _patch_archival_stats()
        elif name.startswith("redis-pool="):
            _patch_redis_pool(int(name.split("=", 1)[1]))
        else:
            raise SystemExit(f"unknown patch {name!r}")
    return cli(argv)


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as err:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)


# --- the run -------------------------------------------------------------------------------


async def _create_agents(rt: Runtime, count: int) -> list[str]:
    ids = [""] * count
    limiter = anyio.Semaphore(48)

    async def one(index: int) -> None:
        async with limiter:
            agent = await create_agent(rt, AgentSpec(name=f"a{index}", model="openai/scripted"))
            ids[index] = agent.id

    async with anyio.create_task_group() as tg:
        for index in range(count):
            tg.start_soon(one, index)
    return ids


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


async def _py_spy(pid: int, seconds: float, folder: Path) -> str:
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        return "py-spy is not installed in this venv (pip install py-spy)"
    out = folder / "worker.speedscope.json"
    cmd = [str(exe), "record", "--pid", str(pid), "--duration", str(int(seconds))]
    cmd += ["--format", "raw", "--output", str(out), "--nonblocking"]
    done = await anyio.run_process(cmd, check=False)
    if done.returncode != 0 or not out.exists():
        return f"py-spy failed: {done.stderr.decode(errors='replace')[-500:]}"
    return _top_functions(out)


def _top_functions(raw: Path, top: int = 25) -> str:
    """Self and total sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    callers: dict[str, Counter[str]] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] += count
        # Who in memgrid (or which library) asked for this leaf: its nearest such frame.
        mine = [f for f in frames if any(f"{p}/" in f for p in _PACKAGES)]
        lib = [f for f in frames[:-1] if "site-packages" not in f and "/" in f]
        caller = mine[-1] if mine else (lib[-1] if lib else "?")
        callers.setdefault(frames[-1], Counter())[caller] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"py-spy: {samples} samples of worker 1 (idle frames included)", ""]
    lines.append("| self % | total % | function |")
    lines.append("|---:|---:|---|")
    for frame, count in own.most_common(top):
        lines.append(
            f"| {100 * count / samples:.1f} | {100 * total[frame] / samples:.1f} | {frame} |"
        )
    for frame, count in own.most_common(3):
        lines += ["", f"nearest memgrid frame under {frame} ({100 * count / samples:.1f}%):"]
        lines += [
            f"- {100 * c / samples:.1f}% {caller}" for caller, c in callers[frame].most_common(6)
        ]
    ours = [(f, c) for f, c in total.most_common() if any(f"{p}/" in f for p in _PACKAGES)]
    lines += ["", "memgrid's own functions by total share:", "", "| total % | function |"]
    lines.append("|---:|---|")
    lines += [f"| {100 * c / samples:.1f} | {f} |" for f, c in ours[:top]]
    return "\n".join(lines)


async def _run(
    url: str, model_urls: list[str], folder: Path, pids: dict[str, int], args: argparse.Namespace
) -> dict[str, Any]:
    client = connect(url, max_connections=256)
    rt = Runtime(redis=client, llm=LLMPool(LLMSettings(base_url=model_urls[0])))
    workers: list[subprocess.Popen[bytes]] = []
    report: dict[str, Any] = {"load": os.getloadavg()[0]}
    try:
        started = time.perf_counter()
        agents = await _create_agents(rt, args.agents)
        report["create_s"] = time.perf_counter() - started
        print(f"created {args.agents:,} agents in {report['create_s']:.1f} s")

        for index in range(args.workers):
            env = {
                **os.environ,
                "MEMGRID_REDIS_URL": url,
                "MEMGRID_HOME": str(folder / "home"),
                "OPENAI_BASE_URL": model_urls[index % len(model_urls)],
                "OPENAI_API_KEY": "x",
                "MEMGRID_EMBEDDING": "hashing/384",
                "MEMGRID_LOG_LEVEL": "WARNING",
            }
            patches = [a for p in args.patch for a in ("--patch", p)]
            cmd = [*_ME, "--role", "worker", *patches, "worker"]
            cmd += ["--concurrency", str(args.concurrency), "--drain-seconds", "5"]
            cmd += ["--lease-ms", str(args.lease_ms)]
            workers.append(_spawn(cmd, env, folder / f"worker-{index}.log"))
        with anyio.fail_after(120):
            while len(await live_workers(client)) < args.workers:
                if any(w.poll() is not None for w in workers):
                    raise RuntimeError(f"a worker exited at start; see {folder}/worker-*.log")
                await anyio.sleep(0.1)
        for index, proc in enumerate(workers):
            pids[f"worker {index + 1}"] = proc.pid
        cpu_before = {name: _cpu_s(pid) for name, pid in pids.items()}

        runs = RunStore(client)
        t0 = time.time()
        async with anyio.create_task_group() as tg:
            if args.profile:
                profile: dict[str, str] = {}

                async def spy() -> None:
                    profile["text"] = await _py_spy(workers[0].pid, args.profile, folder)

                tg.start_soon(spy)
            submitted = await _submit_all(runs, agents, args.turns)
            report["submit_s"] = time.time() - t0
            print(f"submitted {len(submitted):,} messages in {report['submit_s']:.2f} s")
            done, missing = await _wait_done(client, submitted, args.timeout, workers)
        report["profile"] = profile["text"] if args.profile else ""
        report["cpu_s"] = {n: _cpu_s(p) - cpu_before[n] for n, p in pids.items()}
        report["rss"] = {n: _status(p) for n, p in pids.items() if n != "redis"}
        report["t0"], report["runs"], report["missing"] = t0, done, missing
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            _stop(proc)
        await rt.aclose()
        await client.aclose()
    report["worker_logs"] = {
        f"worker {i + 1}": (folder / f"worker-{i}.log").read_text()[-20_000:]
        for i in range(len(workers))
    }
    return report


def _print(report: dict[str, Any], arrivals: list[float], args: argparse.Namespace) -> None:
    runs: list[Run] = report["runs"]
    t0 = report["t0"]
    total = args.agents * args.turns
    ok = [r for r in runs if r.status == "completed" and r.stop_reason == "end_turn"]
    ends = [r.completed_at or t0 for r in runs]
    elapsed = (max(ends) - t0) if ends else float("nan")
    rate = len(ok) / elapsed if ends else 0.0
    slots = min(args.agents, args.workers * args.concurrency)
    ideal = slots / args.latency
    laps = sorted(((r.completed_at or 0) - r.created_at) for r in runs)
    p = statistics.quantiles(laps, n=100, method="inclusive") if len(laps) > 1 else [0.0] * 99
    stops = Counter(f"{r.status}/{r.stop_reason}" for r in runs)
    arrivals.sort()
    peak = 0
    left = 0
    for right, at in enumerate(arrivals):
        while arrivals[left] <= at - args.latency:
            left += 1
        peak = max(peak, right - left + 1)
    patches = ", ".join(args.patch) or "none"
    print(
        f"\n{args.agents:,} agents x {args.turns} turn(s), {args.workers} workers x "
        f"--concurrency {args.concurrency}, {args.models} scripted model process(es) with "
        f"Slow({args.latency:g} s), --lease-ms {args.lease_ms}, patches: {patches}; "
        f"load average at start {report['load']:.2f}\n"
    )
    table: list[tuple[str, str]] = [
        ("turns finished (end_turn) / submitted", f"{len(ok):,} / {total:,}"),
        (f"runs not finished within {args.timeout:.0f} s", f"{report['missing']:,}"),
        ("outcomes (status/stop reason)", str(dict(stops))),
        ("agents created (parallel create_agent)", f"{report['create_s']:.1f} s"),
        (f"submit phase ({total:,} RunStore.submit, 64 in flight)", f"{report['submit_s']:.2f} s"),
        ("first submit → last turn completed", f"{elapsed:.2f} s"),
        ("**turns/s**", f"**{rate:,.0f}**"),
        (f"ideal: min(agents, total concurrency) / latency = {slots:,} / {args.latency:g} s",
         f"{ideal:,.0f}"),
        ("**ratio to ideal (target >= 0.9)**", f"**{rate / ideal:.3f}**"),
        ("turn latency p50 / p90 / p99 (created → completed)",
         f"{p[49]:.2f} / {p[89]:.2f} / {p[98]:.2f} s"),
    ]  # fmt: skip
    if arrivals:
        span = arrivals[-1] - arrivals[0]
        table.append(("model requests received / peak in flight", f"{len(arrivals):,} / {peak:,}"))
        table.append(
            (
                "model requests: first → last arrival, from first submit",
                f"{arrivals[0] - t0:.2f} s → {arrivals[-1] - t0:.2f} s ({span:.2f} s)",
            )
        )
    for name, st in report["rss"].items():
        rss = f"{st['VmHWM']:,} / {st['VmRSS']:,} MiB" if st else "exited"
        table.append((f"RSS {name}: peak (VmHWM) / at end (VmRSS)", rss))
    for name, seconds in report["cpu_s"].items():
        per_turn = 1000 * seconds / max(1, total)
        cpu = "exited" if seconds != seconds else f"{seconds:.1f} s ({per_turn:.2f} ms/turn)"
        table.append((f"CPU {name}, submit → done", cpu))
    print("| metric | value |")
    print("|---|---:|")
    for label, value in table:
        print(f"| {label} | {value} |")
    status = "met" if rate >= 0.9 * ideal else "MISSED"
    print(f"\ntarget turns/s >= 0.9 x {ideal:,.0f} = {0.9 * ideal:,.0f}: {status} ({rate:,.0f})")
    for name, text in report["worker_logs"].items():
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not lines:
            continue
        # Our frames of the tracebacks, then the last lines: where it failed, and with what.
        ours = [ln for ln in lines if any(f"/{pkg}/" in ln for pkg in _PACKAGES)]
        shown = list(dict.fromkeys(ours))[-8:] + lines[-3:]
        print(f"\n{name} log ({len(lines)} lines; our frames and the tail):\n" + "\n".join(shown))
    if report["profile"]:
        print("\n" + report["profile"])


def main() -> None:
    """Start Redis, the model(s) and the workers, run every turn, print the table, stop all."""
    if sys.argv[1:2] == ["--role"]:
        role, rest = sys.argv[2], sys.argv[3:]
        if role == "model":
            sys.exit(_serve_model(float(rest[0]), rest[1]))
        sys.exit(_worker(rest))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--turns", type=int, default=1, help="messages per agent")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2500, help="per worker")
    parser.add_argument("--latency", type=float, default=1.0, help="model seconds per request")
    parser.add_argument("--models", type=int, default=1, help="scripted model processes")
    parser.add_argument("--lease-ms", type=int, default=10_000, help="worker --lease-ms")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for runs")
    parser.add_argument(
        "--patch", action="append", default=[], help="http-pool, redis-pool=N, archival-stats"
    )
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy seconds on worker 1")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="memgrid-conc-") as name:
        folder = Path(name)
        redis_proc, url = _start_redis(folder)
        models: list[subprocess.Popen[str]] = []
        try:
            urls = []
            for index in range(args.models):
                proc, model_url = _start_model(folder, index, args.latency)
                models.append(proc)
                urls.append(model_url)
            pids = {"redis": redis_proc.pid, "client": os.getpid()}
            pids.update({f"model {i + 1}": p.pid for i, p in enumerate(models)})
            report = anyio.run(_run, url, urls, folder, pids, args)
            # RSS of the models before they stop (they write their arrivals on SIGTERM).
            report["rss"].update({f"model {i + 1}": _status(p.pid) for i, p in enumerate(models)})
            for proc in models:
                _stop(proc)
            arrivals: list[float] = []
            for index in range(args.models):
                path = folder / f"model-{index}.arrivals"
                if path.exists():
                    arrivals += json.loads(path.read_bytes())
            _print(report, arrivals, args)
        finally:
            for proc in models:
                _stop(proc)
            _stop(redis_proc)


if __name__ == "__main__":
    main()
