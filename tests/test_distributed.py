"""Distributed workers end to end: a real redis-server, real worker subprocesses, the scripted
model over HTTP.

- load: 2 workers, 50 agents, 1,000 messages: every run finishes, per-agent order holds,
  exactly one reply per message;
- chaos: workers SIGKILLed mid-step, again and again, under load: nothing lost, no second
  reply or memory edit, the dead worker's agents resume within a few lease times;
- SIGTERM drains; a worker paused (SIGSTOP) past its lease writes nothing once resumed;
- ``memgrid up --workers 3`` runs agents that use archival memory in every worker;
- ``memgrid worker --check`` and ``memgrid dlq list / retry``.

Nothing here sleeps to wait for work: tests poll Redis (bounded, with a deadline) or wait for
processes. The only delays are the scripted model's :class:`Slow` replies.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.from_thread
import pytest
import redis.asyncio as aioredis
from anyio.abc import Process

from agents.llm import LLMSettings
from agents.manage import AgentSpec, create_agent
from agents.runs import RunStore, live_workers
from agents.runtime import LLMPool, Runtime
from agents.scripted import (
    ChatRequest,
    Outcome,
    Slow,
    ThreadedScriptedModel,
    say,
    tool_call,
)
from bus import connect
from bus import keys as bus_keys
from bus.envelopes import InboxMessage
from bus.streams import GROUP, list_dead_letters
from storage import keys
from storage.records import Agent, Block, Run, decode
from tests._util import model_env, owning_archival, scripted_runtime
from tests.chaos._procs import reap, wait_for

LEASE_MS = 2000
MEMGRID = (sys.executable, "-m", "orchestrator.cli")
HEARTBEAT = '{"type": "heartbeat"'


# --- policies of the scripted model --------------------------------------------------------


def _input_of(request: ChatRequest) -> str:
    """The user input this turn answers (heartbeats skipped)."""
    for message in reversed(request.messages):
        if message.role == "user" and not message.text.startswith(HEARTBEAT):
            return message.text
    return ""


def _answers_user(request: ChatRequest) -> bool:
    last = request.last_message
    return last is not None and last.role == "user" and not last.text.startswith(HEARTBEAT)


def reply_policy(request: ChatRequest) -> Outcome:
    """One step: ``send_message("re: <input>")``."""
    return say(f"re: {_input_of(request)}")


def _steps_taken(request: ChatRequest) -> int:
    """How many steps of this turn came before this request."""
    for index in range(len(request.messages) - 1, -1, -1):
        message = request.messages[index]
        if message.role == "user" and not message.text.startswith(HEARTBEAT):
            return sum(m.role == "assistant" for m in request.messages[index + 1 :])
    return 0


def multi_step(steps: int, delay: float) -> Callable[[ChatRequest], Outcome]:
    """A turn of ``steps`` steps, each ``delay`` long: ``steps - 1`` appends of ``<input:k>``
    to the human block (each asking for a heartbeat), then ``send_message("re: <input>")``."""

    def policy(request: ChatRequest) -> Outcome:
        text, k = _input_of(request), _steps_taken(request)
        if k < steps - 1:
            append = tool_call(
                "core_memory_append", label="human", content=f"<{text}:{k}>", request_heartbeat=True
            )
            return Slow(delay, append)
        return Slow(delay, say(f"re: {text}"))

    return policy


def archival_policy(request: ChatRequest) -> Outcome:
    """Save a fact, search for it, then say whether it was found."""
    text, k = _input_of(request), _steps_taken(request)
    fact = f"the user mentioned {text}"
    if k == 0:
        return Slow(0.1, tool_call("archival_memory_insert", content=fact, request_heartbeat=True))
    if k == 1:
        return tool_call("archival_memory_search", query=fact, request_heartbeat=True)
    result = request.last_tool_result
    found = (
        result is not None and result.name == "archival_memory_search" and fact in result.content
    )
    return say(f"{'found' if found else 'missing'} {text}")


# --- processes -----------------------------------------------------------------------------


class Fleet:
    """The memgrid subprocesses of one test, each in a session of its own (so that its whole
    process group can be killed), with its output in a log file. :meth:`aclose` kills and
    reaps whatever is left."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, Process] = {}
        self._files: list[IO[bytes]] = []

    def argv(self, name: str, args: Sequence[str]) -> list[str]:
        """The command line of process ``name``: ``memgrid ARGS``."""
        return [*MEMGRID, *args]

    async def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> Process:
        """Start ``memgrid ARGS`` as process ``name`` (:meth:`argv`), its output in its log."""
        log = (self.logs / f"{name}.log").open("ab")
        self._files.append(log)
        proc = await anyio.open_process(
            self.argv(name, args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or self.env,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    async def worker(
        self,
        redis: aioredis.Redis,
        worker_id: str,
        *extra: str,
        lease_ms: int = LEASE_MS,
        concurrency: int = 8,
    ) -> Process:
        """Start ``memgrid worker`` and return once its health key is up."""
        proc = await self.spawn(
            worker_id,
            "worker",
            "--worker-id",
            worker_id,
            "--concurrency",
            str(concurrency),
            "--lease-ms",
            str(lease_ms),
            *extra,
        )
        await poll(
            lambda: redis.exists(bus_keys.worker_health(worker_id)),
            within=30,
            what=f"worker {worker_id} to start",
            alive=proc,
            log=self.log(worker_id),
        )
        return proc

    def log(self, name: str) -> Callable[[], str]:
        path = self.logs / f"{name}.log"
        return lambda: path.read_text(errors="replace") if path.exists() else ""

    def signal(self, name: str, sig: int) -> None:
        os.kill(self.procs[name].pid, sig)

    async def wait(self, name: str, within: float) -> int:
        with anyio.fail_after(within):
            return await self.procs[name].wait()

    async def aclose(self) -> None:
        await reap(self.procs.values(), self._files)


# Call a check until it returns something true (tests.chaos._procs.wait_for), every 50 ms.
poll = functools.partial(wait_for, interval=0.05)


# --- runs and agents -----------------------------------------------------------------------

Submission = tuple[str, str, str]  # agent id, run id, input text


async def runs_of(redis: aioredis.Redis, submitted: Sequence[Submission]) -> list[Run | None]:
    raws = await redis.mget([keys.run(agent_id, run_id) for agent_id, run_id, _ in submitted])
    return [None if raw is None else decode(Run, raw) for raw in raws]


async def wait_all_finished(
    redis: aioredis.Redis, submitted: Sequence[Submission], *, within: float, fleet: Fleet
) -> list[Run]:
    async def finished() -> list[Run] | None:
        runs = await runs_of(redis, submitted)
        if all(r is not None and r.status in ("completed", "failed") for r in runs):
            return [r for r in runs if r is not None]
        return None

    def logs() -> str:
        return "\n".join(f"--- {name}\n{fleet.log(name)()[-3000:]}" for name in fleet.procs)

    runs: list[Run] = await poll(
        finished, within=within, what="every run to finish", interval=0.2, log=logs
    )
    return runs


async def make_agents(rt: Runtime, count: int, prefix: str) -> list[Agent]:
    return [
        await create_agent(rt, AgentSpec(name=f"{prefix}{i}", embedding="hashing/384"))
        for i in range(count)
    ]


async def submit_all(rt: Runtime, agents: Sequence[Agent], per_agent: int) -> list[Submission]:
    """Each agent's messages in order, all agents at once."""
    runs = RunStore(rt.redis)
    submitted: list[Submission] = []

    async def one_agent(index: int, agent: Agent) -> None:
        for n in range(per_agent):
            text = f"a{index:02d}-m{n:02d}"
            sub = await runs.submit(agent.id, [InboxMessage(content=text)], otid=f"otid-{text}")
            submitted.append((agent.id, sub.run_id, text))

    async with anyio.create_task_group() as tg:
        for index, agent in enumerate(agents):
            tg.start_soon(one_agent, index, agent)
    return submitted


async def assert_exactly_once(
    rt: Runtime, agents: Sequence[Agent], submitted: Sequence[Submission], runs: Sequence[Run]
) -> None:
    """Every run completed with one reply; per-agent order; one send_message per input."""
    assert [r.status for r in runs] == ["completed"] * len(runs), [
        (r.id, r.status, r.error) for r in runs if r.status != "completed"
    ]
    assert {r.stop_reason for r in runs} == {"end_turn"}
    for (_agent_id, _run_id, text), run in zip(submitted, runs, strict=True):
        assert run.replies == [f"re: {text}"]
    by_agent: dict[str, list[str]] = {}
    for agent_id, _run_id, text in submitted:
        by_agent.setdefault(agent_id, []).append(text)
    for agent in agents:
        expected = by_agent[agent.id]
        users = await rt.messages.list(agent.id, roles=["user"], limit=10_000)
        inputs = [m.content for m in users if not m.content.startswith(HEARTBEAT)]
        assert inputs == expected, f"agent {agent.id}: inputs out of order or duplicated"
        assistants = await rt.messages.list(agent.id, roles=["assistant"], limit=10_000)
        replies = Counter(
            json.loads(call.arguments)["message"]
            for m in assistants
            for call in m.tool_calls
            if call.name == "send_message"
        )
        assert replies == Counter(f"re: {text}" for text in expected), agent.id
    assert not await list_dead_letters(rt.redis)


def appended(submitted: Sequence[Submission], per_run: int) -> dict[str, str]:
    """What each agent's human block must hold: every input's markers once, in order."""
    lines: dict[str, list[str]] = {}
    for agent_id, _run_id, text in submitted:
        lines.setdefault(agent_id, []).extend(f"<{text}:{k}>" for k in range(per_run))
    return {agent_id: "\n".join(found) for agent_id, found in lines.items()}


async def human_block(rt: Runtime, agent: Agent) -> Block:
    return next(b for b in await rt.blocks.get_many(agent.block_ids) if b.label == "human")


async def assert_streams_drained(redis: aioredis.Redis, agents: Sequence[Agent]) -> None:
    for agent in agents:
        assert await redis.xlen(bus_keys.inbox(agent.id)) == 0
        pending = await redis.xpending(bus_keys.inbox(agent.id), GROUP)
        assert pending["pending"] == 0


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def scripted(scripted_model_thread: ThreadedScriptedModel) -> ThreadedScriptedModel:
    """The scripted model on a thread of its own (memgrid's pytest plugin), for the workers."""
    return scripted_model_thread


@pytest.fixture
def worker_env(redis_url: str, scripted: ThreadedScriptedModel, tmp_path: Path) -> dict[str, str]:
    return model_env(tmp_path / "home", scripted.base_url, MEMGRID_REDIS_URL=redis_url)


@pytest.fixture
async def rt(
    redis_client: aioredis.Redis, scripted: ThreadedScriptedModel
) -> AsyncIterator[Runtime]:
    async with scripted_runtime(redis_client, scripted.model) as runtime:
        yield runtime


@pytest.fixture
def archival_owner(
    worker_env: dict[str, str], redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The test process owns the embedded passage engine and serves it to the workers, as
    ``memgrid up`` does: killing or pausing a worker then tests leases, not the hand-over of
    the engine (a worker that owns it takes archival memory down with it)."""
    with owning_archival(worker_env, monkeypatch):
        yield


@pytest.fixture
async def fleet(
    worker_env: dict[str, str], tmp_path: Path, archival_owner: None
) -> AsyncIterator[Fleet]:
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Fleet(worker_env, logs)
    try:
        yield procs
    finally:
        await procs.aclose()


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_two_workers_fifty_agents_a_thousand_messages(
    rt: Runtime, fleet: Fleet, scripted: ThreadedScriptedModel
) -> None:
    scripted.model.policy = reply_policy
    agents = await make_agents(rt, 50, "load")
    for worker_id in ("load-a", "load-b"):
        await fleet.worker(rt.redis, worker_id)
    started = time.monotonic()
    submitted = await submit_all(rt, agents, 20)
    assert len(submitted) == 1000
    runs = await wait_all_finished(rt.redis, submitted, within=120, fleet=fleet)
    elapsed = time.monotonic() - started
    print(f"1000 runs in {elapsed:.1f}s ({1000 / elapsed:.0f} runs/s)")
    await assert_exactly_once(rt, agents, submitted, runs)
    await assert_streams_drained(rt.redis, agents)


async def _held_by(redis: aioredis.Redis, agents: Sequence[Agent], worker_id: str) -> list[str]:
    values = await redis.mget([bus_keys.lease(a.id) for a in agents])
    return [
        a.id
        for a, value in zip(agents, values, strict=True)
        if value is not None and value.decode().rsplit(":", 1)[0] == worker_id
    ]


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_sigkilled_workers_lose_nothing_and_do_nothing_twice(
    rt: Runtime, fleet: Fleet, scripted: ThreadedScriptedModel
) -> None:
    delay = 0.05
    scripted.model.policy = multi_step(2, delay)
    agents = await make_agents(rt, 8, "chaos")
    per_agent = 20
    names = {"a": "chaos-a-0", "b": "chaos-b-0"}
    for name in names.values():
        await fleet.worker(rt.redis, name)
    submitted = await submit_all(rt, agents, per_agent)
    total = len(submitted)

    # Past 10%, 30%, 50% and 70% done, SIGKILL the worker in the middle of the steps of the
    # most agents, start a new one in its place, and time until each of the agents it held
    # finishes a run again.
    recoveries: list[float] = []
    seen: dict[str, Any] = {}
    for round_, share in enumerate((0.1, 0.3, 0.5, 0.7)):

        async def busiest(share: float = share) -> str | None:
            runs = await runs_of(rt.redis, submitted)
            seen["done"] = sum(r is not None and r.status == "completed" for r in runs)
            seen["held"] = {n: len(await _held_by(rt.redis, agents, n)) for n in names.values()}
            if seen["done"] < share * total or not any(seen["held"].values()):
                return None
            return max(names, key=lambda k: seen["held"][names[k]])

        side = await poll(busiest, within=60, what=f"{share:.0%} done", log=lambda: str(seen))
        victim = names[side]
        fleet.signal(victim, signal.SIGKILL)
        killed_at = time.time()
        await fleet.wait(victim, within=10)
        held = await _held_by(rt.redis, agents, victim)  # its leases outlive it a while
        assert held
        names[side] = f"chaos-{side}-{round_ + 1}"
        await fleet.worker(rt.redis, names[side])

        async def resumed(held: list[str] = held, killed_at: float = killed_at) -> list[float]:
            firsts: dict[str, float] = {}
            for run in await runs_of(rt.redis, submitted):
                if run and run.agent_id in held and (run.completed_at or 0) > killed_at:
                    firsts[run.agent_id] = min(firsts.get(run.agent_id, 1e20), run.completed_at)
            return [t - killed_at for t in firsts.values()] if len(firsts) == len(held) else []

        recoveries += await poll(resumed, within=30, what=f"{victim}'s agents to resume")

    runs = await wait_all_finished(rt.redis, submitted, within=90, fleet=fleet)
    await assert_exactly_once(rt, agents, submitted, runs)
    await assert_streams_drained(rt.redis, agents)

    # Exactly one memory edit per input, in order: the block and every version of it.
    expected = appended(submitted, 1)
    for agent in agents:
        human = await human_block(rt, agent)
        assert human.value == expected[agent.id]
        history = [h.value for h in await rt.blocks.history(human.id)]
        lines = expected[agent.id].split("\n")
        assert history == ["\n".join(lines[:n]) for n in range(per_agent + 1)]

    # Recovery: the dead worker's signals are reclaimed once idle for a lease time (checked
    # every half lease), then its agents go on after their last committed step.
    bound = 3 * LEASE_MS / 1000 + 2 * delay
    print(f"{len(recoveries)} agents recovered from 4 kills, the slowest in {max(recoveries):.2f}s")
    assert max(recoveries) < bound, sorted(recoveries)


@pytest.mark.slow
async def test_sigterm_drains_and_another_worker_resumes(
    rt: Runtime, fleet: Fleet, scripted: ThreadedScriptedModel
) -> None:
    # A long lease: the other worker must resume at once because the lease was released, not
    # because it expired.
    steps, delay, lease_ms = 5, 0.4, 10_000
    scripted.model.policy = multi_step(steps, delay)
    agents = await make_agents(rt, 2, "drain")
    await fleet.worker(rt.redis, "drain-a", "--drain-seconds", "5", lease_ms=lease_ms)
    submitted = await submit_all(rt, agents, 3)

    async def holds_both() -> bool:
        return len(await _held_by(rt.redis, agents, "drain-a")) == len(agents)

    # drain-b starts once drain-a holds both agents (it keeps them while their inboxes last):
    # started earlier, on a loaded machine it could take one first and drain-a never would.
    await poll(holds_both, within=20, what="drain-a to hold both agents")
    await fleet.worker(rt.redis, "drain-b", lease_ms=lease_ms)

    async def mid_turn() -> bool:  # drain-a holds both agents, a run has steps to go
        runs = await runs_of(rt.redis, submitted)
        to_go = any(r is not None and r.status == "running" and r.steps in (1, 2) for r in runs)
        return to_go and len(await _held_by(rt.redis, agents, "drain-a")) == len(agents)

    await poll(mid_turn, within=20, what="drain-a to be mid-turn")
    fleet.signal("drain-a", signal.SIGTERM)
    asked = time.monotonic()
    assert await fleet.wait("drain-a", within=10) == 0
    exited_at, took = time.time(), time.monotonic() - asked
    assert took < 5, f"drain took {took:.1f}s"
    assert "stopping (finishing current steps)" in fleet.log("drain-a")()
    # It stopped after a committed step and released its leases on the way out.
    assert not await _held_by(rt.redis, agents, "drain-a")
    in_flight = [r for r in await runs_of(rt.redis, submitted) if r and r.status == "running"]
    assert in_flight, "SIGTERM landed after the work was done"
    assert all(1 <= r.steps < steps for r in in_flight)

    runs = await wait_all_finished(rt.redis, submitted, within=30, fleet=fleet)
    await assert_exactly_once(rt, agents, submitted, runs)
    resumed = {r.id for r in in_flight}
    for run in runs:
        if run.id in resumed:  # finished by drain-b, well within the lease it did not wait for
            assert run.attempts == 2 and run.steps == steps
            assert run.completed_at is not None and run.completed_at - exited_at < lease_ms / 1000
    # No step ran twice: the one in flight at SIGTERM was committed, not asked again.
    assert len(scripted.requests) == steps * len(submitted)
    expected = appended(submitted, steps - 1)
    for agent in agents:
        assert (await human_block(rt, agent)).value == expected[agent.id]
    print(f"drained in {took:.2f}s; {len(resumed)} runs resumed")


async def _agent_state(redis: aioredis.Redis, agent: Agent, block_id: str) -> dict[str, Any]:
    """Everything of the agent's shard a stale worker could write, as comparable values."""
    found = sorted([k async for k in redis.scan_iter(match=f"mg:{{{agent.id}}}:*", count=1000)])
    state: dict[str, Any] = {"keys": found}
    for key in found:
        kind = (await redis.type(key)).decode()
        if kind == "string":
            state[key] = await redis.get(key)
        elif kind == "stream":
            state[key] = await redis.xrange(key)
        elif kind == "zset":
            state[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            state[key] = await redis.hgetall(key)
        elif kind == "set":
            state[key] = sorted(await redis.smembers(key))
        elif kind == "list":
            state[key] = await redis.lrange(key, 0, -1)
    state["block"] = await redis.get(keys.block(block_id))
    state["history"] = await redis.lrange(keys.block_history(block_id), 0, -1)
    return state


@pytest.mark.slow
async def test_a_paused_worker_cannot_write_after_its_lease(
    rt: Runtime, fleet: Fleet, scripted: ThreadedScriptedModel
) -> None:
    slow_once: set[str] = set()
    two_steps = multi_step(2, 0.0)

    def policy(request: ChatRequest) -> Outcome:
        text = _input_of(request)
        if _answers_user(request) and text not in slow_once:
            slow_once.add(text)  # the first worker's answer comes late: it is paused by then
            return Slow(3.0, two_steps(request))  # type: ignore[arg-type]
        return two_steps(request)

    scripted.model.policy = policy
    (agent,) = await make_agents(rt, 1, "pause")
    human = await human_block(rt, agent)
    for worker_id in ("pause-a", "pause-b"):
        await fleet.worker(rt.redis, worker_id)
    submitted = await submit_all(rt, [agent], 1)

    async def asked() -> bool:
        return len(scripted.requests) > 0

    await poll(asked, within=10, what="the first model call")
    # The lease holder waits for the model's answer, in the middle of step 0: pause it there.
    lease = await rt.redis.get(bus_keys.lease(agent.id))
    assert lease is not None
    paused = lease.decode().rsplit(":", 1)[0]
    fleet.signal(paused, signal.SIGSTOP)
    stopped_at = time.time()
    try:
        (run,) = await wait_all_finished(rt.redis, submitted, within=20, fleet=fleet)
        recovered = (run.completed_at or 0) - stopped_at
        before = await _agent_state(rt.redis, agent, human.id)
    finally:
        fleet.signal(paused, signal.SIGCONT)
    # The paused worker wakes up mid-step: it must find out it lost the agent, write nothing.
    log = fleet.log(paused)

    async def noticed() -> bool:
        return "lease_lost" in log() or "lease_expired" in log()

    await poll(noticed, within=15, what=f"{paused} to notice its lost lease", log=log)
    fleet.signal(paused, signal.SIGTERM)
    assert await fleet.wait(paused, within=10) == 0, log()  # it lived on, and drained
    after = await _agent_state(rt.redis, agent, human.id)
    assert after == before
    await assert_exactly_once(rt, [agent], submitted, [run])
    assert (await human_block(rt, agent)).value == appended(submitted, 1)[agent.id]
    events, ended = await RunStore(rt.redis).events(agent.id, run.id)
    ends = [
        f
        for _id, f in await rt.redis.xrange(bus_keys.run_events(agent.id, run.id))
        if f.get(b"end") == b"1"
    ]
    assert ended and len(ends) == 1
    print(f"paused worker's run finished {recovered:.2f}s after SIGSTOP; {len(events)} events")


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is not running either


@pytest.mark.slow
async def test_memgrid_up_runs_archival_agents_in_every_worker(
    tmp_path: Path, scripted: ThreadedScriptedModel
) -> None:
    from bus import ensure_local_redis, stop_local_redis

    scripted.model.policy = archival_policy
    home = tmp_path / "up"
    # No MEMGRID_REDIS_URL, no MEMGRID_QDRANT_URL: all embedded.
    env = model_env(home, scripted.base_url)
    logs = tmp_path / "logs"
    logs.mkdir()
    fleet = Fleet(env, logs)
    redis: aioredis.Redis | None = None
    try:
        # No REST API: this is about the workers (and port 8283 may be taken).
        up = await fleet.spawn("up", "up", "--workers", "3", "--concurrency", "2", "--no-api")
        log = fleet.log("up")

        async def started() -> bool:
            return "starting 3 workers" in log()

        await poll(started, within=30, what="memgrid up", alive=up, log=log)
        redis = connect(await anyio.to_thread.run_sync(ensure_local_redis, home))  # its Redis
        workers: list[dict[str, Any]] = await poll(
            lambda: _n_live(redis, 3), within=30, what="3 live workers", alive=up, log=log
        )
        pids = [int(w["pid"]) for w in workers]
        rt = Runtime(redis=redis, llm=LLMPool(LLMSettings(base_url=scripted.base_url)))
        agents = await make_agents(rt, 12, "up")
        submitted = await submit_all(rt, agents, 2)
        runs = await wait_all_finished(redis, submitted, within=60, fleet=fleet)
        assert [(r.status, r.error) for r in runs] == [("completed", None)] * len(runs)
        for (_agent_id, _run_id, text), run in zip(submitted, runs, strict=True):
            assert run.replies == [f"found {text}"]
            assert run.calls == ["archival_memory_insert", "archival_memory_search", "send_message"]

        # Every worker ran some of them (the health records' counters beat every 10 s).
        async def counted() -> list[int]:
            counts = [int(w["runs"]) for w in await live_workers(redis)]
            return counts if len(counts) == 3 and sum(counts) == len(runs) else []

        counts = await poll(counted, within=15, what="the workers' run counters", interval=0.5)
        assert all(counts), counts
        # Each worker serves Prometheus metrics (9464 on, or a free port if taken), and says where.
        assert log().count(": metrics at http://127.0.0.1:") == 3, log()

        # Ctrl-C, as a terminal sends it: SIGINT to the whole process group.
        os.killpg(up.pid, signal.SIGINT)
        assert await fleet.wait("up", within=30) == 0, log()
        assert "memgrid up: stopped" in log() and "Traceback" not in log(), log()
        assert await live_workers(redis) == []  # they all left cleanly
        assert not await redis.smembers(bus_keys.workers())
        for pid in pids:
            assert _gone(pid), f"worker pid {pid} outlived memgrid up"
        print(f"runs per worker: {counts}")
    finally:
        if redis is not None:
            await redis.aclose()
        await fleet.aclose()
        await anyio.to_thread.run_sync(stop_local_redis, home)


async def _n_live(redis: aioredis.Redis, n: int) -> list[dict[str, Any]]:
    alive = await live_workers(redis)
    return alive if len(alive) == n else []


async def _memgrid(env: dict[str, str], *args: str) -> tuple[int, str]:
    done = await anyio.run_process([*MEMGRID, *args], env=env, check=False)
    return done.returncode, (done.stdout + done.stderr).decode()


@pytest.mark.slow
async def test_worker_check_and_dead_letter_retry(
    rt: Runtime, fleet: Fleet, scripted: ThreadedScriptedModel, worker_env: dict[str, str]
) -> None:
    scripted.model.policy = reply_policy
    worker = await fleet.worker(rt.redis, "dlq-w", "--max-attempts", "2")
    code, out = await _memgrid(worker_env, "worker", "--check", "--worker-id", "dlq-w")
    assert code == 0 and "alive: dlq-w" in out, out

    # An operator's hand edit broke the agent's record: every attempt fails on it.
    (agent,) = await make_agents(rt, 1, "poison")
    good = await rt.redis.get(keys.agent(agent.id))
    assert good is not None
    broken = json.loads(good) | {"max_steps": "ten"}
    await rt.redis.set(keys.agent(agent.id), json.dumps(broken))
    submitted = await submit_all(rt, [agent], 1)
    (run,) = await wait_all_finished(rt.redis, submitted, within=30, fleet=fleet)
    assert run.status == "failed" and run.attempts == 3

    code, out = await _memgrid(worker_env, "dlq", "list", "--json")
    assert code == 0, out
    (dead,) = json.loads(out)
    assert (dead["agent_id"], dead["run_id"]) == (agent.id, run.id)
    assert "gave up after 2 attempts" in dead["error"]
    code, out = await _memgrid(worker_env, "dlq", "list")
    assert code == 0 and dead["id"] in out and run.id in out, out

    # Fixed, then retried: it completes, once.
    await rt.redis.set(keys.agent(agent.id), good)
    code, out = await _memgrid(worker_env, "dlq", "retry", dead["id"])
    assert code == 0 and f"requeued run {run.id}" in out, out
    (run,) = await wait_all_finished(rt.redis, submitted, within=30, fleet=fleet)
    await assert_exactly_once(rt, [agent], submitted, [run])
    code, out = await _memgrid(worker_env, "dlq", "list")
    assert code == 0 and "no dead letters" in out, out
    code, out = await _memgrid(worker_env, "dlq", "retry", dead["id"])
    assert code == 2 and "no dead letter" in out, out

    worker.send_signal(signal.SIGTERM)
    assert await fleet.wait("dlq-w", within=10) == 0
    code, out = await _memgrid(worker_env, "worker", "--check", "--worker-id", "dlq-w")
    assert code == 1 and "no live worker" in out, out


# --- replies and wake-ups across crashes (issue #11) ---------------------------------------

WAITS_ON = "send_message_to_agent_and_wait_for_reply"


def _waits_policy(slow_reply: float) -> Callable[[ChatRequest], Outcome]:
    """``pinger`` waits on ``ponger`` and says what came back; ``ponger`` answers "pong"."""

    def policy(request: ChatRequest) -> Outcome:
        if "ROLE:ponger" in request.system_prompt:
            return Slow(slow_reply, say("pong"))
        last = request.last_message
        if last is not None and last.text.startswith(HEARTBEAT):
            result = request.last_tool_result
            return say(f"got {json.loads(result.content)['message'] if result else None}")
        return tool_call(WAITS_ON, message="ping", other_agent_id="ponger")

    return policy


async def _pinger_and_ponger(rt: Runtime) -> tuple[Agent, Agent]:
    from agents.manage import BlockSpec

    made = []
    for name in ("pinger", "ponger"):
        spec = AgentSpec(
            name=name,
            embedding="hashing/384",
            include_base_tools=False,
            tools=["send_message", WAITS_ON],
            memory_blocks=[BlockSpec(label="persona", value=f"ROLE:{name}")],
        )
        made.append(await create_agent(rt, spec))
    return made[0], made[1]


async def _crash_then_recover(
    rt: Runtime, fleet: Fleet, worker_env: dict[str, str], point: str, timeout_s: int
) -> None:
    """A worker that SIGKILLs itself at ``point``, then a healthy one in its place."""
    env = {**worker_env, "MEMGRID_AGENT_REPLY_TIMEOUT": str(timeout_s)}
    crashing = await fleet.spawn(
        "crashing",
        "worker",
        "--worker-id",
        "crashing",
        "--lease-ms",
        str(LEASE_MS),
        env={**env, "MEMGRID_TEST_CRASH_AT": point},
    )
    with anyio.fail_after(40):
        assert await crashing.wait() == -signal.SIGKILL, fleet.log("crashing")()
    fleet.env = env
    await fleet.worker(rt.redis, "healthy")


async def _ping_across_a_crash(
    rt: Runtime,
    fleet: Fleet,
    worker_env: dict[str, str],
    point: str,
    *,
    timeout_s: int,
    within: float,
) -> tuple[Run, Agent]:
    """The pinger is told "go" (it waits on the ponger with a ``timeout_s`` reply timeout) on a
    worker that crashes at ``point`` and is replaced; the pinger's run, once finished within
    ``within`` seconds, and the ponger."""
    pinger, ponger = await _pinger_and_ponger(rt)
    sub = await RunStore(rt.redis).submit(pinger.id, [InboxMessage(content="go")])
    await _crash_then_recover(rt, fleet, worker_env, point, timeout_s=timeout_s)
    [run] = await wait_all_finished(
        rt.redis, [(pinger.id, sub.run_id, "go")], within=within, fleet=fleet
    )
    return run, ponger


@pytest.mark.timeout(90)
async def test_a_reply_committed_just_before_a_crash_still_reaches_the_waiter(
    rt: Runtime, fleet: Fleet, scripted: ThreadedScriptedModel, worker_env: dict[str, str]
) -> None:
    scripted.model.policy = _waits_policy(0)
    # The worker dies right after the ponger's final commit: its reply must not die with it.
    run, ponger = await _ping_across_a_crash(
        rt, fleet, worker_env, "reply_committed", timeout_s=120, within=20
    )
    assert run.status == "completed" and run.replies == ["got pong"]
    [pong_run] = await RunStore(rt.redis).recent(ponger.id)
    assert pong_run.status == "completed" and pong_run.replies == ["pong"]


@pytest.mark.timeout(90)
async def test_a_timer_fired_just_before_a_crash_still_wakes_the_waiter(
    rt: Runtime, fleet: Fleet, scripted: ThreadedScriptedModel, worker_env: dict[str, str]
) -> None:
    scripted.model.policy = _waits_policy(8)
    # The worker dies as it fires the pinger's timer (2 s): the wake-up must survive it.
    run, _ponger = await _ping_across_a_crash(
        rt, fleet, worker_env, "timer_fired", timeout_s=2, within=6
    )
    assert run.status == "completed"
    assert "did not reply within the timeout" in run.replies[0], run.replies
