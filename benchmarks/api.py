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
``/proc/<pid>/task/*/schedstat``, in ns); Redis commands per turn (``INFO commandstats``).
Targets: ``messages.create`` median <= 10 ms, serve RSS <= 150 MiB.

``--patch A[,B...]`` (repeatable) adds, per mode, a deployment whose serve and worker run with
those monkeypatches (see ``PATCHES``): proposed fixes in other packages, measured side by side
with the unpatched one. ``--profile py-spy|cprofile`` profiles every serve and worker during
the timed turns (py-spy: ``.venv/bin/pip install py-spy``, not a project dependency).

Run: ``.venv/bin/python benchmarks/api.py`` (about 35 s on 2 cores); e.g.
``--mode embedded --messages-only --patch quiet-logs --patch extra-round-trips``,
``--turns 300 --warmup 3 --agents 10 --profile cprofile --keep /tmp/bench``; the ``uvloop``
patch needs ``pip install --target DIR uvloop`` and ``PYTHONPATH=DIR``.
"""

# ruff: noqa: E402  (benchmarks/ leaves sys.path before the imports below)

from __future__ import annotations

import os
import sys

# ``python benchmarks/api.py`` puts benchmarks/ first on sys.path, where bus.py would stand in
# for the ``bus`` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE in sys.path:
    sys.path.remove(_HERE)

import argparse
import io
import json
import pstats
import select
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import redis
from openai.types.chat import ChatCompletion

from bus import find_redis_server

__all__ = ("Stack", "main", "serve_stack")

PACKAGES = ("agents", "bus", "orchestrator", "storage")
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


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    """The processes of one benchmark, stopped in reverse order by :meth:`close`.

    Each process's stdout and stderr go to ``<folder>/<name>.log``.
    """

    folder: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
        """Start ``cmd`` as ``name``; returns its pid."""
        with open(self.log_path(name), "wb") as log:
            proc = subprocess.Popen(
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self.procs[name] = proc
        return proc.pid

    def log_path(self, name: str) -> Path:
        """Where ``name``'s output goes."""
        return self.folder / f"{name}.log"

    def log_tail(self, name: str, chars: int = 4000) -> str:
        """The last ``chars`` characters of ``name``'s output."""
        path = self.log_path(name)
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def alive(self, name: str) -> None:
        """Raise with the log's tail if ``name`` has exited."""
        code = self.procs[name].poll()
        if code is not None:
            raise RuntimeError(f"{name} exited with {code}:\n{self.log_tail(name)}")

    def stop(self, name: str, timeout: float = 20.0) -> None:
        """SIGTERM, wait, then SIGKILL."""
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def close(self) -> None:
        """Stop every process, the latest started first."""
        for name in reversed(list(self.procs)):
            self.stop(name)


def _wait_for(
    check: Callable[[], bool], what: str, stack: Stack, name: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        stack.alive(name)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:g} s:\n{stack.log_tail(name)}")
        time.sleep(0.05)


def start_redis(stack: Stack) -> str:
    """A private redis-server without persistence; returns its URL (no database number)."""
    port = free_port()
    folder = stack.folder / "redis"
    folder.mkdir(exist_ok=True)
    cmd = [find_redis_server(os.environ.get("REDIS_SERVER"))]
    cmd += ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    cmd += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    stack.start("redis", cmd)

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    _wait_for(answers, "redis-server", stack, "redis", 10)
    return f"redis://127.0.0.1:{port}"


def start_model(stack: Stack, policy: str, env: dict[str, str] | None = None) -> str:
    """``memgrid scripted-model``; returns its base URL (``http://127.0.0.1:PORT/v1``)."""
    cmd = [sys.executable, "-m", "orchestrator.cli", "scripted-model", "--policy", policy]
    with open(stack.log_path("model"), "wb") as log:
        proc = subprocess.Popen(
            [*cmd, "--port", "0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    stack.procs["model"] = proc
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("http"):
        stack.alive("model")
        raise RuntimeError(f"the scripted model printed {line!r}:\n{stack.log_tail('model')}")
    return line


def memgrid_env(redis_url: str, home: Path, model_url: str) -> dict[str, str]:
    """The environment of serve and worker processes."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MEMGRID_", "OPENAI_")) or k == "MEMGRID_LOG_LEVEL"
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        MEMGRID_REDIS_URL=redis_url,
        MEMGRID_HOME=str(home),
        OPENAI_BASE_URL=model_url,
        OPENAI_API_KEY="x",
        MEMGRID_EMBEDDING="hashing/384",
    )
    return env


def start_api(
    stack: Stack,
    env: dict[str, str],
    *,
    worker: bool,
    patches: list[str] | None = None,
    cprofile: bool = False,
) -> str:
    """``memgrid serve`` (``--no-worker`` unless ``worker``); returns its base URL."""
    port = free_port()
    args = ["serve", "--port", str(port), *(() if worker else ("--no-worker",))]
    stack.start("serve", memgrid_cmd(stack, "serve", args, patches or [], cprofile), env)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/v1/health/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    _wait_for(healthy, "memgrid serve", stack, "serve", 60)
    return url


@contextmanager
def serve_stack(
    folder: Path,
    *,
    policy: str = "agents.scripted.policies:echo",
    worker: bool = True,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[Stack, str]]:
    """Redis, the scripted model and ``memgrid serve`` (with its worker); yields the API URL."""
    stack = Stack(folder)
    try:
        redis_url = start_redis(stack)
        model_url = start_model(stack, policy)
        env = memgrid_env(f"{redis_url}/0", folder / "home", model_url)
        env.update(extra_env or {})
        yield stack, start_api(stack, env, worker=worker)
    finally:
        stack.close()


# --- patched launches ----------------------------------------------------------------------

# serve and worker run ``memgrid`` through this launcher, which loads this file (for PATCHES)
# and calls :func:`launch`.
_LAUNCHER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("memgrid_bench_api", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
raise SystemExit(module.launch(sys.argv[1:]))
"""


def _patch_health_version() -> None:
    import functools

    import orchestrator.api.runs as runs

    runs.version = functools.cache(runs.version)


def _patch_uvloop() -> None:
    import asyncio

    try:
        import uvloop
    except ImportError:
        raise SystemExit(
            "--patch uvloop: uvloop is not importable; pip install --target DIR uvloop and "
            "run with PYTHONPATH=DIR"
        ) from None
    # uvicorn's loop="auto" picks uvloop by itself; anyio.run (memgrid worker) follows the
    # policy.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _patch_tool_schemas() -> None:
    from agents.tools.registry import AgentTool

    plain = AgentTool.openai
    # Keyed by the schema object's identity (kept alive in the value, so ids are not reused).
    cache: dict[tuple[str, int, bool | None], tuple[object, str]] = {}

    def openai_entry(self: AgentTool, *, heartbeat: bool | None = None) -> dict[str, Any]:
        key = (self.name, id(self.schema), heartbeat)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = (self.schema, json.dumps(plain(self, heartbeat=heartbeat)))
        entry: dict[str, Any] = json.loads(hit[1])
        return entry

    AgentTool.openai = openai_entry  # type: ignore[method-assign]  # benchmark patch


def _patch_quiet_logs() -> None:
    import functools

    import litestar

    import orchestrator.api.app as app

    # Litestar's default LoggingConfig puts the root logger at INFO (its own handler and
    # format), undoing configure_logging's WARNING: every LLM call then logs httpx2's INFO
    # "HTTP Request" line.
    app.Litestar = functools.partial(litestar.Litestar, logging_config=None)  # type: ignore[misc]


def _patch_api_round_trips() -> None:
    import agents.runs as runs
    import orchestrator.api.messages as messages
    from bus import keys as bus_keys
    from bus.envelopes import RunRequest, encode_envelope
    from bus.events import follow
    from storage import keys
    from storage.records import Run, encode, new_id

    fresh: set[str] = set()
    plain_follow = messages.follow_events

    async def submit(
        self: runs.RunStore, agent_id: str, items: Any, *, otid: str | None = None, **kw: Any
    ) -> runs.Submitted:
        # RunStore.submit's script, then the run index and the ready signal in one pipelined
        # round trip instead of two.
        otid = otid or next((m.otid for m in items if m.otid), None)
        run = Run(id=new_id("run"), agent_id=agent_id, otid=otid)
        envelope = RunRequest(run_id=run.id, agent_id=agent_id, messages=tuple(items))
        result = await self._submit(
            keys=[
                bus_keys.otid(agent_id, otid) if otid else keys.run(agent_id, run.id),
                keys.run(agent_id, run.id),
                bus_keys.inbox(agent_id),
                keys.agent_runs(agent_id),
            ],
            args=[
                "1" if otid else "0",
                run.id,
                encode(run),
                encode_envelope(envelope),
                runs.OTID_TTL_S,
                run.created_at,
            ],
        )
        run_id, created = runs._text(result[0]), bool(int(result[1]))
        pipe = self._redis.pipeline(transaction=False)
        if created:
            pipe.set(keys.run_index(run_id), agent_id, ex=runs.RUN_INDEX_TTL_S)
            fresh.add(run_id)
        pipe.xadd(bus_keys.ready(), {"a": agent_id})
        await pipe.execute()
        return runs.Submitted(run_id=run_id, agent_id=agent_id, created=created)

    async def follow_events(api: Any, agent_id: str, run_id: str) -> Any:
        # A run this process has just created cannot have ended with expired events: follow
        # its stream at once instead of GET-ting the run record first.
        if run_id not in fresh:
            async for event in plain_follow(api, agent_id, run_id):
                yield event
            return
        fresh.discard(run_id)
        async for _entry, raw in follow(
            api.rt.redis, agent_id, run_id, block_ms=1000, timeout_s=api.settings.run_timeout_s
        ):
            yield messages.event_decoder.decode(raw)

    runs.RunStore.submit = submit  # type: ignore[method-assign,assignment]  # benchmark patch
    messages.follow_events = follow_events


def _patch_extra_round_trips() -> None:
    import agents.worker as worker

    plain = worker.run_turn

    async def run_turn(rt: Any, *args: Any, **kwargs: Any) -> Any:
        for _ in range(EXTRA_ROUND_TRIPS):
            await rt.redis.ping()
        async for event in plain(rt, *args, **kwargs):
            yield event

    worker.run_turn = run_turn


EXTRA_ROUND_TRIPS = 10


_HEAVY = ("qdrant_client", "onnxruntime", "onnx", "tokenizers")


def _patch_lazy_imports() -> None:
    """Stand-ins for the Qdrant server client and the MiniLM/ONNX stack, which serve imports
    at start (storage.passages -> .server -> qdrant_client; storage.embeddings -> .minilm ->
    onnxruntime, onnx, tokenizers) but never uses with the embedded engine and hashing
    embeddings: what importing them lazily would save."""
    import importlib.abc
    import importlib.machinery
    import types

    class Dummy:
        def __init__(self, *_: object, **__: object) -> None:
            pass

        def __getattr__(self, name: str) -> Dummy:
            return Dummy()

        def __call__(self, *_: object, **__: object) -> Dummy:
            return Dummy()

        def __mro_entries__(self, bases: tuple[object, ...]) -> tuple[type, ...]:
            return (object,)

        def __getitem__(self, key: object) -> Dummy:
            return Dummy()

        def __or__(self, other: object) -> Dummy:
            return Dummy()

        __ror__ = __or__

    class Module(types.ModuleType):
        def __getattr__(self, name: str) -> Dummy:
            if name.startswith("__"):
                raise AttributeError(name)
            return Dummy()

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name: str, path: object, target: object = None) -> Any:
            if name.split(".")[0] in _HEAVY:
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec: Any) -> types.ModuleType:
            return Module(spec.name)

        def exec_module(self, module: types.ModuleType) -> None:
            module.__path__ = []

    sys.meta_path.insert(0, Finder())


PATCHES: dict[str, tuple[str, Callable[[], None]]] = {
    "health-version": (
        "orchestrator/api/runs.py version(): cache importlib.metadata.version",
        _patch_health_version,
    ),
    "uvloop": (
        "run serve/worker on uvloop (needs uvloop on PYTHONPATH; not a project dependency)",
        _patch_uvloop,
    ),
    "tool-schemas": (
        "agents/tools/registry.py AgentTool.openai(): cache the schema instead of deepcopy",
        _patch_tool_schemas,
    ),
    "lazy-imports": (
        "storage/passages/__init__.py, storage/embeddings/__init__.py: do not import "
        "qdrant_client / onnxruntime+onnx+tokenizers until the server adapter or MiniLM is used",
        _patch_lazy_imports,
    ),
    "quiet-logs": (
        "orchestrator/api/app.py create_app: Litestar(logging_config=None), so the root "
        "logger stays at WARNING (no INFO line per LLM call)",
        _patch_quiet_logs,
    ),
    "extra-round-trips": (
        f"a probe, not a fix: {EXTRA_ROUND_TRIPS} more Redis round trips (PING) at the start of "
        "every turn in the worker, to price one round trip on the critical path",
        _patch_extra_round_trips,
    ),
    "api-round-trips": (
        "agents/runs.py RunStore.submit: pipeline run-index SET + ready XADD; "
        "orchestrator/api/messages.py follow_events: no GET run for a run just created",
        _patch_api_round_trips,
    ),
}


def launch(argv: list[str]) -> int:
    """``[--patch NAME]... [--cprofile PATH] -- MEMGRID ARGS``: run memgrid in this process.

    With ``--cprofile``, SIGUSR1 starts cProfile on the main thread (the event loop) and
    SIGUSR2 stops it and writes the stats to PATH.
    """
    parser = argparse.ArgumentParser(prog="launch")
    parser.add_argument("--patch", action="append", default=[], choices=sorted(PATCHES))
    parser.add_argument("--cprofile", default=None)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    # lazy-imports must come before anything imports memgrid.
    for name in sorted(ns.patch, key=lambda n: n != "lazy-imports"):
        PATCHES[name][1]()
    if ns.cprofile:
        import cProfile

        profiler = cProfile.Profile()

        def stop(*_: object) -> None:
            profiler.disable()
            profiler.dump_stats(ns.cprofile)

        signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
        signal.signal(signal.SIGUSR2, stop)
    from orchestrator.cli import main as memgrid

    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    return memgrid(args)


def memgrid_cmd(
    stack: Stack, name: str, args: list[str], patches: list[str], cprofile: bool
) -> list[str]:
    """``memgrid ARGS`` as ``python -m orchestrator.cli``, or through the launcher when patched
    or profiled (stats to ``<folder>/<name>.cprofile``)."""
    if not patches and not cprofile:
        return [sys.executable, "-m", "orchestrator.cli", *args]
    launcher = stack.folder / "launch.py"
    launcher.write_text(_LAUNCHER.format(path=os.path.abspath(__file__)))
    cmd = [sys.executable, str(launcher), *(f"--patch={p}" for p in patches)]
    if cprofile:
        cmd.append(f"--cprofile={stack.folder / f'{name}.cprofile'}")
    return [*cmd, "--", *args]


# --- measuring -----------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid``'s live threads so far (``schedstat``: ns, not clock ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread has just exited
    return total / 1e9


def _pct(laps: list[float], q: float) -> float:
    ordered = sorted(laps)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _send(http: httpx.Client, agent_id: str, text: str) -> None:
    response = http.post(
        f"/v1/agents/{agent_id}/messages", json={"messages": [{"role": "user", "content": text}]}
    )
    if response.status_code != 200:
        raise RuntimeError(f"messages.create: {response.status_code} {response.text[:500]}")
    kinds = [m["message_type"] for m in response.json()["messages"]]
    if "assistant_message" not in kinds:
        raise RuntimeError(f"messages.create answered {kinds}, no assistant_message")


def _create_agents(http: httpx.Client, count: int) -> list[str]:
    ids = []
    for i in range(count):
        body = {
            "name": f"bench-{i}",
            "model": "openai/gpt-4o-mini",
            "memory_blocks": [
                {"label": "human", "value": "Name: Bob. Likes short answers."},
                {"label": "persona", "value": "I am Sam, a concise and helpful assistant."},
            ],
        }
        response = http.post("/v1/agents/", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"create agent: {response.status_code} {response.text[:500]}")
        ids.append(response.json()["id"])
    return ids


def _capture(http: httpx.Client, agent_id: str, path: Path) -> bytes:
    path.unlink(missing_ok=True)
    _send(http, agent_id, f"{CAPTURE_MARK} what does the worker send?")
    return path.read_bytes()


class _Profiler:
    """Profiles serve (and the worker) during the timed turns: ``py-spy`` or ``cprofile``."""

    def __init__(self, kind: str, procs: dict[str, tuple[int, Path]], rate: int) -> None:
        """``procs``: name -> (pid, its folder)."""
        self.kind, self.rate = kind, rate
        self.procs = {name: pid for name, (pid, _) in procs.items()}
        self.folders = {name: folder for name, (_, folder) in procs.items()}
        self.spies: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self.text: dict[str, str] = {}

    def start(self) -> None:
        if self.kind == "cprofile":
            for pid in self.procs.values():
                os.kill(pid, signal.SIGUSR1)
            return
        exe = Path(sys.executable).with_name("py-spy")
        if not exe.exists():
            self.text["py-spy"] = "py-spy is not in the venv: .venv/bin/pip install py-spy"
            return
        for name, pid in self.procs.items():
            out = self.folders[name] / f"{name.rpartition(' ')[2]}.pyspy.txt"
            cmd = [str(exe), "record", "--pid", str(pid), "--rate", str(self.rate)]
            cmd += ["--format", "raw", "--output", str(out), "--nonblocking"]
            spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.spies[name] = (spy, out)
        time.sleep(1.0)  # py-spy attaches

    def stop(self) -> None:
        if self.kind == "cprofile":
            for pid in self.procs.values():
                os.kill(pid, signal.SIGUSR2)
            for name in self.procs:
                out = self.folders[name] / f"{name.rpartition(' ')[2]}.cprofile"
                deadline = time.monotonic() + 10
                while not out.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.2)
                self.text[name] = cprofile_top(out, name)
            return
        for name, (spy, out) in self.spies.items():
            spy.send_signal(signal.SIGINT)
            _, err = spy.communicate(timeout=30)
            self.text[name] = (
                py_spy_top(out, name)
                if out.exists()
                else f"py-spy failed: {err.decode(errors='replace')[-500:]}"
            )


def py_spy_top(raw: Path, name: str, top: int = 25) -> str:
    """Self and total sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return f"py-spy: no samples of {name}"
    lines = [f"py-spy: {samples} samples of {name}", ""]
    lines += ["| self % | total % | function |", "|---:|---:|---|"]
    for frame, count in own.most_common(top):
        lines.append(
            f"| {100 * count / samples:.1f} | {100 * total[frame] / samples:.1f} | {frame} |"
        )
    ours = [(f, c) for f, c in total.most_common() if any(f"{p}/" in f for p in PACKAGES)]
    lines += ["", f"memgrid's functions in {name} by total share:", ""]
    lines += ["| total % | function |", "|---:|---|"]
    lines += [f"| {100 * c / samples:.1f} | {f} |" for f, c in ours[:top]]
    return "\n".join(lines)


def cprofile_top(path: Path, name: str, top: int = 40) -> str:
    """The functions with the most own time, and memgrid's by cumulative time."""
    if not path.exists():
        return f"cprofile: {name} wrote no stats"
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    out.write(f"cProfile of {name} (event-loop thread) over the timed turns\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats("|".join(f"/{p}/" for p in PACKAGES), top)
    return out.getvalue()


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
    variant.url = start_api(stack, env, worker=variant.mode == "embedded", **launch)
    variant.own.append("serve")
    if variant.mode == "separate":
        stack.start("worker", memgrid_cmd(stack, "worker", ["worker"], **launch), env)
        variant.own.append("worker")
    variant.http = http = httpx.Client(base_url=variant.url, timeout=60)
    variant.agents = _create_agents(http, args.agents)
    for i in range(args.warmup):
        for agent_id in variant.agents:
            _send(http, agent_id, f"warm-up {i}")


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
    request = json.loads(body)
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
            # What LLMClient.chat does: the SDK's client, without its typed request transform.
            sdk.post("/chat/completions", body=request, cast_to=ChatCompletion)

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
                _send(v.http, v.agents[i % len(v.agents)], f"message {i}")
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
        v.rss = {name: proc_status(v.stack.procs[name].pid) for name in v.own}
    text = "\n\n".join(profiler.text.values()) if profiler else ""
    return Measured(baselines, variants, cpu_ms, commands, text)


# --- report --------------------------------------------------------------------------------


def _row(name: str, laps: list[float]) -> str:
    third = max(1, len(laps) // 3)
    return (
        f"| {name} | {statistics.median(laps):.2f} | {_pct(laps, 0.95):.2f} "
        f"| {_pct(laps, 0.99):.2f} | {statistics.median(laps[:third]):.2f} "
        f"| {statistics.median(laps[-third:]):.2f} |"
    )


def report(m: Measured, args: argparse.Namespace) -> None:
    """Print the tables."""
    n = len(m.variants)
    print(
        f"\n{args.turns} timed iterations ({n} messages.create per iteration, one per "
        f"deployment); {args.agents} agents per deployment, {args.warmup} warm-up turns each"
    )
    print("\n| row | median ms | p95 ms | p99 ms | first third | last third |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, laps in m.baselines.items():
        print(_row(name, laps))
    for v in m.variants:
        print(_row(f"messages.create: {v.name}", v.laps))
    print("\n| deployment | process | VmRSS MiB | VmHWM MiB |")
    print("|---|---|---:|---:|")
    for v in m.variants:
        for name, status in v.rss.items():
            print(
                f"| {v.name} | {name} | {status['VmRSS'] / MiB:.1f} | {status['VmHWM'] / MiB:.1f} |"
            )
    print("\nCPU ms per timed iteration (all rows and deployments; this client excluded):\n")
    print("| " + " | ".join(m.cpu_ms) + " |")
    print("|" + "---:|" * len(m.cpu_ms))
    print("| " + " | ".join(f"{v:.2f}" for v in m.cpu_ms.values()) + " |")
    total = sum(m.commands.values()) / args.turns / n
    top = ", ".join(
        f"{name} {count / args.turns / n:.1f}" for name, count in m.commands.most_common(12)
    )
    health = "" if args.messages_only else ", one PING of the health row included"
    print(f"\nRedis commands per turn (Lua's inner calls counted{health}): {total:.1f}: {top}")
    for v in m.variants:
        before, after = v.request_bytes
        median = statistics.median(v.laps)
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
            redis_url = start_redis(shared)
            model_url = start_model(shared, "bench_policy:recording_echo", model_env)
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
