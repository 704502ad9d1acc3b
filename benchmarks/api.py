"""``messages.create`` round trip through the REST API, the bus and a worker (issue 7).

Everything runs as real processes on loopback, started and stopped here: a private
``redis-server`` (no persistence), the scripted model (``memgrid scripted-model``, the echo
policy: every turn is one step that answers through ``send_message`` at once) and, per
deployment, ``memgrid serve`` with its own ``MEMGRID_HOME`` and Redis database:

* ``embedded``: ``memgrid serve`` with its embedded worker (the default);
* ``separate``: ``memgrid serve --no-worker`` plus one ``memgrid worker`` process.

Each deployment gets ``--agents`` agents (``POST /v1/agents/``) and ``--warmup`` untimed turns
per agent. Then ``--turns`` iterations are timed, each with one keep-alive ``httpx.Client`` per
server: the baselines, then one ``POST /v1/agents/{id}/messages`` per deployment (agents
round-robin). Interleaving means drift and load from other processes hit every row alike.
Baselines, what the API path cannot beat:

* ``GET /v1/health/``: an API round trip with one Redis PING;
* ``model raw``: ``POST /v1/chat/completions`` to the scripted model with the very body the
  worker sent after the warm-up (captured by the model's policy);
* ``model sdk``: the same request through the ``openai`` SDK's client the way
  ``LLMClient.chat`` sends it (``client.post``, no typed request transform).

Reported: median / p95 / p99 ms per row, and the medians of the first and the last third
(each turn adds 3 messages to an agent's context, so the model request grows); VmRSS and
VmHWM of every serve and worker process; CPU ms per iteration of every process (from
``/proc/<pid>/stat``); Redis commands per turn (``INFO commandstats``).
Targets: ``messages.create`` median <= 10 ms, serve RSS <= 150 MiB.

``--patch A[,B...]`` (repeatable) adds, per mode, a deployment whose serve and worker run with
those monkeypatches (see ``PATCHES``): proposed fixes in other packages and probes, measured
side by side with the unpatched one (a fix that lands in the product leaves ``PATCHES``).
``--profile py-spy|cprofile`` profiles every serve and worker during the timed turns
(py-spy: ``.venv/bin/pip install py-spy``, not a project dependency).

Run: ``.venv/bin/python benchmarks/api.py`` (about 35 s on 2 cores); e.g.
``--mode embedded --messages-only --patch health-version --patch extra-round-trips``,
``--turns 300 --warmup 3 --agents 10 --profile cprofile --keep /tmp/bench``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import redis
from _harness import (  # benchmarks/ is first on sys.path
    CLI,
    Stack,
    cprofile_top,
    cpu_seconds,
    free_port,
    memgrid_command,
    memgrid_env,
    memory,
    percentile,
    py_spy,
    py_spy_stop,
    rest_agents,
    send_message,
    start_api,
    table,
)

__all__ = ("main",)

CAPTURE_MARK = "[capture]"
MiB = 1024 * 1024

# The scripted model's policy: echo, and keep the body of a request whose last user message
# carries CAPTURE_MARK, so the baseline rows replay exactly what the worker sends.
_POLICY = f"""
import os
from agents.scripted.policies import echo

def recording_echo(request):
    if (request.last_user_text or "").startswith({CAPTURE_MARK!r}):
        with open(os.environ["MEMGRID_BENCH_CAPTURE"], "wb") as out:
            out.write(request.raw_json)
    return echo(request)
"""


# --- processes -----------------------------------------------------------------------------


def _start_api(
    stack: Stack, env: dict[str, str], *, worker: bool, patches: list[str], cprofile: bool
) -> str:
    """``memgrid serve`` (``--no-worker`` unless ``worker``); returns its base URL."""
    port = free_port()
    args = ["serve", "--port", str(port), *(() if worker else ("--no-worker",))]
    return start_api(stack, env, memgrid_cmd(stack, "serve", args, patches, cprofile), port)


# --- patched launches ----------------------------------------------------------------------


def _patch_health_version() -> None:
    import functools

    import orchestrator.api.runs as runs

    runs.version = functools.cache(runs.version)


def _patch_extra_round_trips() -> None:
    import agents._entry as worker

    plain = worker.run_turn

    async def run_turn(rt: Any, *args: Any, **kwargs: Any) -> Any:
        for _ in range(EXTRA_ROUND_TRIPS):
            await rt.redis.ping()
        async for event in plain(rt, *args, **kwargs):
            yield event

    worker.run_turn = run_turn


EXTRA_ROUND_TRIPS = 10


PATCHES: dict[str, tuple[str, Callable[[], None]]] = {
    "health-version": (
        "orchestrator/api/runs.py version(): cache importlib.metadata.version",
        _patch_health_version,
    ),
    "extra-round-trips": (
        f"a probe, not a fix: {EXTRA_ROUND_TRIPS} more Redis round trips (PING) at the start of "
        "every turn in the worker, to price one round trip on the critical path",
        _patch_extra_round_trips,
    ),
}


def memgrid_cmd(
    stack: Stack, name: str, args: list[str], patches: list[str], cprofile: bool
) -> list[str]:
    """``memgrid ARGS``, patched or profiled (stats to ``<folder>/<name>.cprofile``)."""
    if not patches and not cprofile:
        return [*CLI, *args]
    profile = stack.folder / f"{name}.cprofile" if cprofile else None
    hooks = [f"api:{PATCHES[p][1].__name__}" for p in patches]
    return [*memgrid_command(patches=hooks, cprofile=profile), *args]


# --- measuring -----------------------------------------------------------------------------


def _capture(http: httpx.Client, agent_id: str, path: Path) -> bytes:
    path.unlink(missing_ok=True)
    send_message(http, agent_id, f"{CAPTURE_MARK} what does the worker send?")
    return path.read_bytes()


class _Profiler:
    """Profiles serve (and the worker) during the timed turns: ``py-spy`` or ``cprofile``."""

    def __init__(self, kind: str, procs: dict[str, tuple[int, Path]], rate: int) -> None:
        """``procs``: name -> (pid, its folder)."""
        self.kind, self.rate, self.procs = kind, rate, procs
        self.text: dict[str, str] = {}

    def _out(self, name: str, kind: str) -> Path:
        return self.procs[name][1] / f"{name.rpartition(' ')[2]}.{kind}"

    def start(self) -> None:
        for name, (pid, _) in self.procs.items():
            if self.kind == "cprofile":
                os.kill(pid, signal.SIGUSR1)
            elif failed := py_spy(pid, self._out(name, "pyspy.txt"), rate=self.rate):
                self.text[name] = failed
        if self.kind != "cprofile":
            time.sleep(1.0)  # py-spy attaches

    def stop(self) -> None:
        for name, (pid, _) in self.procs.items():
            if self.kind != "cprofile":
                if name not in self.text:
                    self.text[name] = py_spy_stop(self._out(name, "pyspy.txt"), name)
                continue
            os.kill(pid, signal.SIGUSR2)
            out = self._out(name, "cprofile")
            deadline = time.monotonic() + 10
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            self.text[name] = cprofile_top(out, name)


def _commandstats(url: str) -> Counter[str]:
    client = redis.Redis.from_url(url)
    try:
        info = client.info("commandstats")
    finally:
        client.close()
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()})


@dataclass
class Variant:
    """One deployment under test: its processes, its client and its agents."""

    name: str
    mode: str
    patches: list[str]
    stack: Stack
    own: list[str] = field(default_factory=list)
    url: str = ""
    http: httpx.Client | None = None
    agents: list[str] = field(default_factory=list)
    laps: list[float] = field(default_factory=list)
    rss: dict[str, dict[str, int]] = field(default_factory=dict)
    request_bytes: tuple[int, int] = (0, 0)


def start_variant(
    variant: Variant, redis_url: str, model_url: str, db: int, args: argparse.Namespace
) -> None:
    """Start its serve (and worker), create its agents and warm them up."""
    stack = variant.stack
    stack.folder.mkdir()
    env = memgrid_env(f"{redis_url}/{db}", stack.folder / "home", model_url)
    launch: dict[str, Any] = {"patches": variant.patches, "cprofile": args.profile == "cprofile"}
    variant.url = _start_api(stack, env, worker=variant.mode == "embedded", **launch)
    variant.own.append("serve")
    if variant.mode == "separate":
        stack.start("worker", memgrid_cmd(stack, "worker", ["worker"], **launch), env)
        variant.own.append("worker")
    variant.http = http = httpx.Client(base_url=variant.url, timeout=60)
    variant.agents = rest_agents(http, args.agents)
    for i in range(args.warmup):
        for agent_id in variant.agents:
            send_message(http, agent_id, f"warm-up {i}")


def stop_variant(variant: Variant) -> None:
    """Close its client and stop its processes (the worker first)."""
    if variant.http is not None:
        variant.http.close()
    for name in reversed(variant.own):
        variant.stack.stop(name)


@dataclass
class Measured:
    """The whole run: baseline laps, every variant, CPU per process, Redis commands."""

    baselines: dict[str, list[float]]
    variants: list[Variant]
    cpu_ms: dict[str, float]
    commands: Counter[str]
    profile: str


def measure(
    variants: list[Variant],
    shared: Stack,
    model_url: str,
    redis_url: str,
    args: argparse.Namespace,
) -> Measured:
    """Time ``args.turns`` iterations: the baselines, then one turn of each variant."""
    capture_path = Path(os.environ["MEMGRID_BENCH_CAPTURE"])
    first = variants[0]
    assert first.http is not None
    body = _capture(first.http, first.agents[0], capture_path)
    json_options: Any = {"headers": {"Content-Type": "application/json"}}
    headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
    pids = {name: proc.pid for name, proc in shared.procs.items()}
    spied: dict[str, tuple[int, Path]] = {}
    for v in variants:
        for name in v.own:
            key = f"{v.name} {name}" if len(variants) > 1 else name
            pids[key] = v.stack.procs[name].pid
            spied[key] = (pids[key], v.stack.folder)
    with (
        httpx.Client(base_url=model_url, timeout=60) as model_http,
        openai.OpenAI(base_url=model_url, api_key="x", max_retries=0) as sdk,
    ):
        health_http = first.http

        def health() -> None:
            health_http.get("/v1/health/").raise_for_status()

        def model_raw() -> None:
            model_http.post("/chat/completions", content=body, headers=headers).raise_for_status()

        def model_sdk() -> None:
            # What LLMClient.chat does: the SDK's client, JSON bytes out and back, no typed
            # request transform or response model.
            sdk.post("/chat/completions", content=body, cast_to=bytes, options=json_options)

        rows: dict[str, Callable[[], None]] = {
            "GET /v1/health/": health,
            "model raw (httpx)": model_raw,
            "model sdk (openai post)": model_sdk,
        }
        if args.messages_only:
            rows = {}
        for _ in range(20):
            for call in rows.values():
                call()
        baselines: dict[str, list[float]] = {name: [] for name in rows}
        profiler = _Profiler(args.profile, spied, args.rate) if args.profile else None
        if profiler:
            profiler.start()
        commands = _commandstats(redis_url)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        for i in range(args.turns):
            for name, call in rows.items():
                t0 = time.perf_counter()
                call()
                baselines[name].append((time.perf_counter() - t0) * 1000)
            for v in variants:
                assert v.http is not None
                t0 = time.perf_counter()
                send_message(v.http, v.agents[i % len(v.agents)], f"message {i}")
                v.laps.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.05)  # the worker's tail of the last turn (ack, release)
        cpu_ms = {
            name: (cpu_seconds(pid) - cpu_before[name]) * 1000 / args.turns
            for name, pid in pids.items()
        }
        commands = _commandstats(redis_url) - commands
        if profiler:
            profiler.stop()
    for v in variants:
        assert v.http is not None
        last = _capture(v.http, v.agents[-1], capture_path)
        v.request_bytes = (len(body), len(last))
        v.rss = {name: memory(v.stack.procs[name].pid) for name in v.own}
    text = "\n\n".join(profiler.text.values()) if profiler else ""
    return Measured(baselines, variants, cpu_ms, commands, text)


# --- report --------------------------------------------------------------------------------


def _row(name: str, laps: list[float]) -> list[str]:
    third = max(1, len(laps) // 3)
    cells = [percentile(laps, pct) for pct in (50, 95, 99)]
    cells += [percentile(laps[:third], 50), percentile(laps[-third:], 50)]
    return [name, *(f"{v:.2f}" for v in cells)]


def report(m: Measured, args: argparse.Namespace) -> None:
    """Print the tables."""
    n = len(m.variants)
    print(
        f"\n{args.turns} timed iterations ({n} messages.create per iteration, one per "
        f"deployment); {args.agents} agents per deployment, {args.warmup} warm-up turns each\n"
    )
    rows = [_row(name, laps) for name, laps in m.baselines.items()]
    rows += [_row(f"messages.create: {v.name}", v.laps) for v in m.variants]
    table(["row", "median ms", "p95 ms", "p99 ms", "first third", "last third"], rows)
    print()
    table(
        ["deployment", "process", "VmRSS MiB", "VmHWM MiB"],
        (
            [v.name, name, f"{status['VmRSS'] / MiB:.1f}", f"{status['VmHWM'] / MiB:.1f}"]
            for v in m.variants
            for name, status in v.rss.items()
        ),
        text=2,
    )
    print("\nCPU ms per timed iteration (all rows and deployments; this client excluded):\n")
    table(list(m.cpu_ms), [[f"{v:.2f}" for v in m.cpu_ms.values()]], text=0)
    total = sum(m.commands.values()) / args.turns / n
    top = ", ".join(
        f"{name} {count / args.turns / n:.1f}" for name, count in m.commands.most_common(12)
    )
    health = "" if args.messages_only else ", one PING of the health row included"
    print(f"\nRedis commands per turn (Lua's inner calls counted{health}): {total:.1f}: {top}")
    for v in m.variants:
        before, after = v.request_bytes
        median = percentile(v.laps, 50)
        hwm = v.rss["serve"]["VmHWM"] / MiB
        verdict = "meets" if median <= 10 and hwm <= 150 else "misses"
        print(
            f"\n{v.name}: model request {before:,} bytes after warm-up, {after:,} at the end; "
            f"{verdict} the targets (median {median:.2f} ms <= 10, serve VmHWM {hwm:.0f} MiB "
            "<= 150)"
        )
    if m.profile:
        print(f"\n## profile\n\n{m.profile}")


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=300, help="timed iterations (300)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed turns per agent (3)")
    parser.add_argument("--agents", type=int, default=10, help="agents per deployment (10)")
    parser.add_argument("--mode", choices=("both", "embedded", "separate"), default="both")
    parser.add_argument(
        "--patch",
        action="append",
        default=[],
        metavar="NAME[,NAME...]",
        help="add, per mode, a deployment with these monkeypatches (repeatable: one deployment "
        "each): " + "; ".join(f"{k}: {v[0]}" for k, v in PATCHES.items()),
    )
    parser.add_argument(
        "--no-plain", action="store_true", help="with --patch: no unpatched deployment"
    )
    parser.add_argument(
        "--profile",
        choices=("py-spy", "cprofile"),
        default=None,
        help="profile every serve and worker process during the timed turns",
    )
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples/s (1000)")
    parser.add_argument(
        "--messages-only", action="store_true", help="time messages.create alone, no baselines"
    )
    parser.add_argument(
        "--keep", default=None, help="a folder to keep logs and profiles in (default: a temp one)"
    )
    args = parser.parse_args()
    modes = ["embedded", "separate"] if args.mode == "both" else [args.mode]
    sets = [] if args.no_plain and args.patch else [[]]
    for spec in args.patch:
        names = [n.strip() for n in spec.split(",") if n.strip()]
        unknown = [n for n in names if n not in PATCHES]
        if unknown:
            parser.error(f"unknown patch {unknown[0]!r}; one of {', '.join(PATCHES)}")
        sets.append(names)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memgrid-api-bench-") as name:
        folder = Path(args.keep or name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bench_policy.py").write_text(_POLICY)
        os.environ["MEMGRID_BENCH_CAPTURE"] = str(folder / "request.json")
        model_env = {**os.environ, "PYTHONPATH": str(folder)}
        shared = Stack(folder)
        variants: list[Variant] = []
        try:
            redis_url = shared.redis()
            model_url = shared.model("bench_policy:recording_echo", model_env)
            for mode in modes:
                for patches in sets:
                    label = mode + "".join(f"+{p}" for p in patches)
                    variants.append(Variant(label, mode, patches, Stack(folder / label)))
            for db, variant in enumerate(variants):
                start_variant(variant, redis_url, model_url, db, args)
            measured = measure(variants, shared, model_url, redis_url, args)
        except BaseException:
            for v in variants:
                for proc in v.own:
                    print(f"--- {v.name} {proc} log ---\n{v.stack.log_tail(proc)}", file=sys.stderr)
            raise
        finally:
            for v in reversed(variants):
                stop_variant(v)
            shared.close()
    report(measured, args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
