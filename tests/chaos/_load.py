"""The chaos suite's load driver and fault injector.

The driver sends coordinators their jobs through the REST API at a steady rate, one lane per
coordinator so that each agent's order is the order of acceptance. A send that fails (the API
restarting, Redis down) is retried with the same ``otid`` until it is accepted or gives up; a
share of accepted sends are sent again, as a client that lost the answer would, and must get
the same run back. The injector injects a fault every few seconds, the kinds in rounds of
random (seeded) order; worker faults strike a worker in the middle of a run, and a paused
worker stays paused while the next faults land.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field

import anyio
import httpx
import redis.asyncio as aioredis
from anyio.abc import TaskGroup
from redis.exceptions import RedisError

from bus import keys as bus_keys
from storage import keys
from storage.records import Run, decode
from tests.chaos._policy import KINDS, job_text
from tests.chaos._procs import Procs

__all__ = ("FAULT_KINDS", "Driver", "Injector", "Job")

FAULT_KINDS = ("worker_sigkill", "worker_sigstop", "api_restart", "redis_restart")
_FINISHED = ("completed", "failed", "cancelled")
_SEND_GIVE_UP_S = 60.0


@dataclass(frozen=True)
class Job:
    """One accepted message: which coordinator, what it asked for, the run it got."""

    agent_id: str
    job: str
    kind: str
    target: str
    run_id: str


@dataclass
class Driver:
    """Sends jobs to ``coordinators`` (id, name) at ``rate`` messages a second in all."""

    api_url: str
    redis: aioredis.Redis
    coordinators: list[tuple[str, str]]
    helpers: list[str]
    rate: float
    seed: int
    max_outstanding: int = 4
    jobs: list[Job] = field(default_factory=list)
    retries: int = 0  # sends retried after a failure, same otid
    resends: int = 0  # accepted sends sent again, as a client that lost the answer
    refused: list[str] = field(default_factory=list)  # never accepted (no run promised)
    problems: list[str] = field(default_factory=list)

    async def run(self, stop: anyio.Event) -> None:
        async with (
            httpx.AsyncClient(base_url=self.api_url, timeout=10) as client,
            anyio.create_task_group() as tg,
        ):
            for lane, (agent_id, _name) in enumerate(self.coordinators):
                tg.start_soon(self._lane, client, lane, agent_id, stop)

    async def _lane(
        self, client: httpx.AsyncClient, lane: int, agent_id: str, stop: anyio.Event
    ) -> None:
        rng = random.Random(f"{self.seed}:lane:{lane}")
        interval = len(self.coordinators) / self.rate
        mine: list[Job] = []
        next_at = time.monotonic() + rng.uniform(0, interval)
        n = 0
        while not stop.is_set():
            with anyio.move_on_after(max(0.0, next_at - time.monotonic())):
                await stop.wait()
            if stop.is_set():
                return
            next_at += interval
            if await self._outstanding(agent_id, mine) >= self.max_outstanding:
                continue  # the system is behind: skip this tick rather than pile up
            kind = rng.choice(KINDS)
            target = rng.choice(self.helpers)
            job = f"c{lane}-{n:05d}"
            n += 1
            run_id = await self._send(client, agent_id, job, kind, target)
            if run_id is None:
                continue
            accepted = Job(agent_id=agent_id, job=job, kind=kind, target=target, run_id=run_id)
            mine.append(accepted)
            self.jobs.append(accepted)
            if rng.random() < 0.1:
                self.resends += 1
                again = await self._send(client, agent_id, job, kind, target)
                if again is not None and again != run_id:
                    self.problems.append(f"{job}: a resent otid got run {again}, not {run_id}")

    async def _outstanding(self, agent_id: str, mine: list[Job]) -> int:
        recent = mine[-self.max_outstanding :]
        if not recent:
            return 0
        try:
            raws = await self.redis.mget([keys.run(agent_id, j.run_id) for j in recent])
        except (RedisError, OSError):
            return len(recent)
        return sum(raw is None or decode(Run, raw).status not in _FINISHED for raw in raws)

    async def _send(
        self, client: httpx.AsyncClient, agent_id: str, job: str, kind: str, target: str
    ) -> str | None:
        body = {
            "messages": [
                {"role": "user", "content": job_text(job, kind, target), "otid": f"otid-{job}"}
            ]
        }
        deadline = time.monotonic() + _SEND_GIVE_UP_S
        while True:
            try:
                response = await client.post(f"/v1/agents/{agent_id}/messages/async", json=body)
                if response.status_code == 200:
                    return str(response.json()["id"])
                if response.status_code < 500:
                    self.problems.append(f"{job}: HTTP {response.status_code}: {response.text}")
                    return None
                why = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                why = type(exc).__name__
            if time.monotonic() > deadline:
                self.refused.append(f"{job}: not accepted within {_SEND_GIVE_UP_S:g}s ({why})")
                return None
            self.retries += 1
            await anyio.sleep(0.25)  # a client's backoff before retrying the same otid


@dataclass
class Injector:
    """Injects a fault every ``gap`` seconds or so, the kinds in rounds of random order."""

    procs: Procs
    redis: aioredis.Redis
    kinds: tuple[str, ...]
    seed: int
    gap: tuple[float, float] = (3.0, 7.0)
    agents: list[str] = field(default_factory=list)  # whose leases tell which workers are busy
    injected: Counter[str] = field(default_factory=Counter)
    _paused: set[str] = field(default_factory=set)
    _pauses: TaskGroup = field(init=False)

    async def run(self, stop: anyio.Event) -> None:
        rng = random.Random(f"{self.seed}:faults")
        order: list[str] = []
        async with anyio.create_task_group() as self._pauses:  # pauses overlap other faults
            while self.kinds and not stop.is_set():
                with anyio.move_on_after(rng.uniform(*self.gap)):
                    await stop.wait()
                if stop.is_set():
                    return
                if not order:  # rounds of every kind in a random order: each comes up early
                    order = rng.sample(self.kinds, len(self.kinds))
                kind = order.pop()
                self.injected[kind] += 1
                await getattr(self, f"_{kind}")(rng)

    async def _victim(self, rng: random.Random, among: list[str]) -> str:
        """A worker of ``among`` that holds an agent's lease (one in the middle of a run),
        waiting up to 2 s for one; else any: a fault that hits an idle worker tests little."""
        deadline = time.monotonic() + 2.0
        while self.agents and time.monotonic() < deadline:
            try:
                leases = await self.redis.mget([bus_keys.lease(a) for a in self.agents])
            except (RedisError, OSError):
                break
            busy = {raw.decode().rsplit(":", 1)[0] for raw in leases if raw is not None}
            if found := sorted(busy & set(among)):
                return rng.choice(found)
            await anyio.sleep(0.05)
        return rng.choice(among)

    async def _worker_sigkill(self, rng: random.Random) -> None:
        victim = await self._victim(rng, self.procs.workers)  # paused ones too
        await self.procs.kill_worker(victim)
        await self.procs.start_worker(self.redis)

    async def _worker_sigstop(self, rng: random.Random) -> None:
        running = [w for w in self.procs.workers if w not in self._paused]
        name = await self._victim(rng, running or self.procs.workers)
        # Past its lease (another worker takes its agents over meanwhile), and maybe across
        # the next fault: a Redis restart or an API restart while it sleeps.
        seconds = self.procs.lease_ms / 1000 * 1.5 + rng.uniform(0.0, 1.0)
        if name in self._paused:  # every worker is paused already: nothing injected
            self.injected["worker_sigstop"] -= 1
            return
        self._paused.add(name)
        self.procs.pause(name)
        self._pauses.start_soon(self._resume_after, name, seconds)

    async def _resume_after(self, name: str, seconds: float) -> None:
        try:
            await anyio.sleep(seconds)
        finally:
            self._paused.discard(name)
            self.procs.resume(name)  # a no-op if it was SIGKILLed meanwhile

    async def _api_restart(self, rng: random.Random) -> None:
        await self.procs.kill_api()
        await self.procs.start_api()

    async def _redis_restart(self, rng: random.Random) -> None:
        await self.procs.kill_redis()
        await anyio.sleep(rng.uniform(0.0, 2.0))  # an outage of a moment to a couple of seconds
        await self.procs.start_redis()
