"""The chaos harness: real processes under steady load and random faults, then the invariants.

:func:`run_chaos` starts a private redis-server (AOF on), the scripted model (policy
:mod:`tests.chaos._policy`), an archival owner, ``workers`` ``memgrid worker`` processes and a
``memgrid serve`` API; creates coordinators sharing a block and tagged helpers through the API;
drives jobs (wait-for-reply chains, tag fan-outs, shared-block edits, archival inserts, async
sends) for ``seconds`` while injecting faults; drains within a deadline; and checks
(:mod:`tests.chaos._check`). Everything is seeded; every process is killed at the end.

The long form: ``python -m tests.chaos._harness`` (``make chaos``), configured by
``MEMGRID_CHAOS_SECONDS`` (1800), ``MEMGRID_CHAOS_SEED`` (1), ``MEMGRID_CHAOS_RATE`` (messages
a second, 1.0) and ``MEMGRID_CHAOS_KINDS`` (comma-separated fault kinds, all by default).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bus import connect
from storage import keys
from storage.records import Run, decode
from tests.chaos._check import Findings, check
from tests.chaos._load import FAULT_KINDS, Driver, Injector
from tests.chaos._policy import HELPER_TAG, SHARED_LABEL
from tests.chaos._procs import ChaosFailure, Procs

__all__ = ("ChaosConfig", "Report", "main", "run_chaos")

_BIG = 1_000_000  # block limits: markers pile up for the whole run
_FINISHED = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class ChaosConfig:
    """One chaos run's shape."""

    seconds: float
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 1
    rate: float = 1.0  # messages a second, all coordinators together
    workers: int = 3
    coordinators: int = 4
    helpers: int = 3
    lease_ms: int = 2000
    drain_s: float = 120.0
    fault_gap: tuple[float, float] = (3.0, 7.0)


@dataclass
class Report:
    """The figures of a run and what went wrong."""

    config: ChaosConfig
    faults: Counter[str] = field(default_factory=Counter)
    messages: int = 0
    retries: int = 0
    resends: int = 0
    refused: list[str] = field(default_factory=list)
    findings: Findings = field(default_factory=Findings)
    problems: list[str] = field(default_factory=list)
    chaos_s: float = 0.0
    drain_s: float = 0.0

    @property
    def ok(self) -> bool:
        f = self.findings
        return not (self.problems or f.problems or f.lost or f.duplicated)

    def table(self) -> str:
        """The figures, one per line."""
        c, f = self.config, self.findings
        rows = [
            ("seed", str(c.seed)),
            ("chaos seconds", f"{self.chaos_s:.0f} (drained in {self.drain_s:.1f} s)"),
            ("workers / coordinators / helpers", f"{c.workers} / {c.coordinators} / {c.helpers}"),
            *((f"faults: {k}", str(self.faults[k])) for k in c.kinds),
            ("faults: total", str(sum(self.faults.values()))),
            ("messages accepted", str(self.messages)),
            ("sends retried (same otid)", str(self.retries)),
            ("accepted sends resent", str(self.resends)),
            ("sends never accepted", str(len(self.refused))),
            ("runs (all agents)", str(f.runs)),
            ("runs attempted again after a fault", str(f.rerun)),
            ("lost", str(f.lost)),
            ("duplicated", str(f.duplicated)),
            ("other problems", str(len(self.problems) + len(f.problems))),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)

    def details(self, limit: int = 30) -> str:
        lines = [*self.problems, *self.findings.problems]
        more = f"\n... and {len(lines) - limit} more" if len(lines) > limit else ""
        return "\n".join(lines[:limit]) + more


async def _setup(
    api_url: str, config: ChaosConfig
) -> tuple[list[tuple[str, str]], dict[str, str], str]:
    """Coordinators (id, name), helpers (name to id) and the shared block, made via the API."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:

        async def post(path: str, body: dict[str, object]) -> dict[str, object]:
            response = await client.post(path, json=body)
            if response.status_code != 200:
                raise ChaosFailure(f"POST {path}: {response.status_code} {response.text}")
            created: dict[str, object] = response.json()
            return created

        shared = await post("/v1/blocks", {"label": SHARED_LABEL, "value": "", "limit": _BIG})
        helpers: dict[str, str] = {}
        for i in range(config.helpers):
            name = f"helper-{i}"
            agent = await post(
                "/v1/agents",
                {
                    "name": name,
                    "tags": [HELPER_TAG],
                    "embedding": "hashing/384",
                    "memory_blocks": [
                        {"label": "persona", "value": "I help coordinators."},
                        {"label": "human", "value": "", "limit": _BIG},
                    ],
                },
            )
            helpers[name] = str(agent["id"])
        coordinators: list[tuple[str, str]] = []
        for i in range(config.coordinators):
            name = f"coord-{i}"
            agent = await post(
                "/v1/agents",
                {
                    "name": name,
                    "embedding": "hashing/384",
                    "include_multi_agent_tools": True,
                    "block_ids": [str(shared["id"])],
                    "memory_blocks": [{"label": "persona", "value": "I coordinate helpers."}],
                },
            )
            coordinators.append((str(agent["id"]), name))
    return coordinators, helpers, str(shared["id"])


async def _unfinished(redis: aioredis.Redis, agent_ids: list[str]) -> list[str]:
    """Runs of these agents that have not finished (all of them, agent-to-agent ones too)."""
    left: list[str] = []
    for agent_id in agent_ids:
        ids = [i.decode() for i in await redis.zrange(keys.agent_runs(agent_id), 0, -1)]
        raws = await redis.mget([keys.run(agent_id, i) for i in ids]) if ids else []
        left += [
            f"{agent_id}/{i}"
            for i, raw in zip(ids, raws, strict=True)
            if raw is None or decode(Run, raw).status not in _FINISHED
        ]
    return left


async def _drain(redis: aioredis.Redis, agent_ids: list[str], within: float) -> list[str]:
    """Wait until every run finished; what is still unfinished at the deadline."""
    deadline = time.monotonic() + within
    while True:
        try:
            left = await _unfinished(redis, agent_ids)
        except (RedisError, OSError) as exc:
            left = [f"(redis: {exc})"]
        if not left or time.monotonic() > deadline:
            return left
        await anyio.sleep(0.25)


async def _watch(procs: Procs, stop: anyio.Event, faults: Counter[str]) -> None:
    """Fail fast when a process that no fault killed has exited (a crash, not a fault)."""
    while not stop.is_set():
        if procs.exited():
            await anyio.sleep(3)  # the others that the same fault took down exit meanwhile
            exited = procs.exited()
            lines = [f"processes exited on their own after faults {dict(faults)}:"]
            for name, code in exited.items():
                tail = procs.log_tail(name).strip().splitlines()
                lines.append(f"  {name} (exit {code}): {tail[-1] if tail else '(empty log)'}")
            first = next(iter(exited))
            lines.append(f"{first}'s log ends:\n{procs.log_tail(first)}")
            raise ChaosFailure("\n".join(lines))
        with anyio.move_on_after(0.5):
            await stop.wait()


async def run_chaos(config: ChaosConfig, folder: Path) -> Report:
    """One chaos run in ``folder`` (logs under ``folder/logs``); see the module docstring."""
    report = Report(config=config)
    procs = Procs(folder, lease_ms=config.lease_ms)
    redis: aioredis.Redis | None = None
    try:
        await procs.start_redis()
        redis = connect(procs.redis_url)
        await procs.start_model("tests.chaos._policy:policy")
        await procs.start_archival_owner(redis)
        for _ in range(config.workers):
            await procs.start_worker(redis)
        await procs.start_api()
        coordinators, helpers, shared = await _setup(procs.api_url, config)
        driver = Driver(
            api_url=procs.api_url,
            redis=redis,
            coordinators=coordinators,
            helpers=list(helpers),
            rate=config.rate,
            seed=config.seed,
        )
        injector = Injector(
            procs,
            redis,
            config.kinds,
            config.seed,
            gap=config.fault_gap,
            agents=[a for a, _ in coordinators] + list(helpers.values()),
        )
        stop = anyio.Event()
        crashed = False
        started = time.monotonic()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(driver.run, stop)
                tg.start_soon(injector.run, stop)
                tg.start_soon(_watch, procs, stop, injector.injected)
                with anyio.move_on_after(config.seconds):
                    await stop.wait()
                stop.set()
        except* ChaosFailure as group:
            report.problems += [str(exc) for exc in group.exceptions]
            crashed = True
        finally:
            report.chaos_s = time.monotonic() - started
            report.faults = injector.injected
            report.messages, report.retries = len(driver.jobs), driver.retries
            report.resends, report.refused = driver.resends, driver.refused
            report.problems += driver.problems
        if crashed:  # a process died on its own: what it left behind is not worth checking
            return report
        started = time.monotonic()
        agent_ids = [a for a, _ in coordinators] + list(helpers.values())
        left = await _drain(redis, agent_ids, config.drain_s)
        report.drain_s = time.monotonic() - started
        if left:
            report.problems.append(
                f"{len(left)} runs unfinished {config.drain_s:g}s after the chaos: {left[:10]}"
            )
        report.findings = await check(redis, procs.api_url, driver.jobs, helpers, shared)
        return report
    finally:
        if redis is not None:
            with anyio.CancelScope(shield=True):
                await redis.aclose()
        await procs.aclose()


def _kinds(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return FAULT_KINDS
    kinds = tuple(k.strip() for k in raw.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise SystemExit(
            f"MEMGRID_CHAOS_KINDS: unknown kind(s) {unknown}; choose from {', '.join(FAULT_KINDS)}"
        )
    return kinds


def main() -> int:
    """The long form: run for ``MEMGRID_CHAOS_SECONDS`` and print the figures."""
    env = os.environ
    try:
        config = ChaosConfig(
            seconds=float(env.get("MEMGRID_CHAOS_SECONDS") or 1800),
            seed=int(env.get("MEMGRID_CHAOS_SEED") or 1),
            rate=float(env.get("MEMGRID_CHAOS_RATE") or 1.0),
            kinds=_kinds(env.get("MEMGRID_CHAOS_KINDS")),
        )
    except ValueError as exc:
        raise SystemExit(f"MEMGRID_CHAOS_SECONDS/SEED/RATE must be numbers: {exc}") from None
    folder = Path(tempfile.mkdtemp(prefix="memgrid-chaos-"))
    print(f"chaos: {config.seconds:g}s, seed {config.seed}, kinds {config.kinds}; logs in {folder}")
    report = anyio.run(run_chaos, config, folder)
    print(report.table())
    if not report.ok:
        print("\nproblems:\n" + report.details(), file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
