"""Many machines: workers as separate hosts (network namespaces) against one Redis, and one host
cut off from the network in the middle of a step.

Redis and the scripted model listen on a bridge in the root namespace; each ``memgrid worker``
runs in a namespace of its own, reaching them only across its own veth link (tests/_netns.py).
Cutting a link is a partition, not a crash: the cut worker lives on with its connections open,
mid-step, and nothing tells it that the world moved on. Its leases must pass to the other
hosts, its step must be re-run there, and once the link is back whatever it tries to commit
must be refused by the fencing token: nothing lost, nothing done twice.

Needs root and iproute2 (CI runs as root; .ci/run installs iproute2 when missing). Where
namespaces cannot be made the test fails saying what is missing: it never skips.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
import redis
import redis.asyncio as aioredis

from agents.runtime import Runtime
from agents.scripted import ScriptedModel, ThreadedScriptedModel, echo
from bus import connect, find_redis_server
from bus import keys as bus_keys
from storage.records import Agent, Run
from tests._cluster import wait_until
from tests._netns import NetnsUnavailable, Network, network
from tests._util import model_env, owning_archival, scripted_runtime
from tests.test_distributed import (
    Fleet,
    Submission,
    _agent_state,
    _held_by,
    appended,
    assert_exactly_once,
    assert_streams_drained,
    human_block,
    make_agents,
    multi_step,
    poll,
    runs_of,
    submit_all,
    wait_all_finished,
)

HOSTS = 3
LEASE_MS = 2000
STEPS = 2  # an append to the human block, then the reply
STEP_S = 0.3  # the model's latency: a worker holding an agent is mostly inside a step


@pytest.fixture
def net() -> Iterator[Network]:
    try:
        with network(HOSTS) as made:
            yield made
    except NetnsUnavailable as exc:
        pytest.fail(f"this test runs workers in network namespaces, and here it cannot: {exc}")


@pytest.fixture
def bridge_redis(net: Network, tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test, listening on the bridge only."""
    folder = tmp_path / "redis"
    folder.mkdir()
    port = _free_port(net.gateway)
    proc = subprocess.Popen(
        [
            find_redis_server(os.environ.get("REDIS_SERVER")),
            *("--port", str(port), "--bind", net.gateway, "--dir", str(folder)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://{net.gateway}:{port}/0"
    try:
        with redis.Redis.from_url(url) as client:
            wait_until(
                client.ping, f"the bridge's redis-server at {url} did not answer", [proc], within=10
            )
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def model(net: Network) -> Iterator[ThreadedScriptedModel]:
    with ScriptedModel.start_in_thread(echo, host=net.gateway) as served:
        yield served
        assert not served.model.policy_errors


@pytest.fixture
def env(bridge_redis: str, model: ThreadedScriptedModel, tmp_path: Path) -> dict[str, str]:
    return model_env(tmp_path / "home", model.base_url, MEMGRID_REDIS_URL=bridge_redis)


@pytest.fixture
async def rt(bridge_redis: str, model: ThreadedScriptedModel) -> AsyncIterator[Runtime]:
    client = connect(bridge_redis)
    try:
        async with scripted_runtime(client, model.model) as runtime:
            yield runtime
    finally:
        await client.aclose()  # the runtime does not own the client it was given


@pytest.fixture
def archival_owner(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test process (root namespace) owns the embedded passage engine, as in
    test_distributed: a cut worker must not take archival memory away from the others."""
    with owning_archival(env, monkeypatch):
        yield


class Hosts(Fleet):
    """:class:`Fleet` whose worker ``<prefix>-<i>`` runs inside host ``i``'s namespace."""

    def __init__(self, env: dict[str, str], logs: Path, net: Network) -> None:
        super().__init__(env, logs)
        self.net = net

    def argv(self, name: str, args: Sequence[str]) -> list[str]:
        return self.net.argv(int(name.rsplit("-", 1)[1]), super().argv(name, args))


@pytest.fixture
async def hosts(
    env: dict[str, str], tmp_path: Path, net: Network, archival_owner: None
) -> AsyncIterator[Hosts]:
    logs = tmp_path / "logs"
    logs.mkdir()
    fleet = Hosts(env, logs, net)
    try:
        yield fleet
    finally:
        await fleet.aclose()


async def _states(rt: Runtime, agents: Sequence[Agent]) -> list[dict[str, Any]]:
    return [await _agent_state(rt.redis, a, (await human_block(rt, a)).id) for a in agents]


async def _in_run(redis: aioredis.Redis, submitted: Sequence[Submission]) -> set[str]:
    """The agents whose current run (their first one not finished) has committed a step (its
    attempt count is written with it)."""
    current: dict[str, Run | None] = {}
    for (agent_id, _run_id, _text), run in zip(
        submitted, await runs_of(redis, submitted), strict=True
    ):
        if agent_id not in current and (run is None or run.status not in ("completed", "failed")):
            current[agent_id] = run
    return {a for a, run in current.items() if run is not None and run.attempts >= 1}


def _lease_keys(agents: Sequence[Agent]) -> set[bytes]:
    """Keys that a worker writes when it takes an idle agent's lease afresh (a new token): no
    stale write, and a rejoining worker may do it for the signals it read before the cut."""
    return {key.encode() for a in agents for key in (bus_keys.lease(a.id), bus_keys.fence(a.id))}


def _changes(
    before: list[dict[str, Any]], after: list[dict[str, Any]], *, skip: set[bytes]
) -> list[str]:
    """What differs between two snapshots of :func:`_states`, one line per key."""
    lines = []
    for old, new in zip(before, after, strict=True):
        for key in sorted(set(old) | set(new), key=str):
            if key in skip:
                continue
            if key == "keys":
                old_keys = [k for k in old["keys"] if k not in skip]
                if old_keys != [k for k in new["keys"] if k not in skip]:
                    lines.append(f"keys: {old['keys']!r} -> {new['keys']!r}")
            elif old.get(key) != new.get(key):
                lines.append(f"{key!r}: {old.get(key)!r} -> {new.get(key)!r}")
    return lines


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_host_cut_off_mid_step_loses_its_leases_and_writes_nothing(
    rt: Runtime, hosts: Hosts, net: Network, model: ThreadedScriptedModel
) -> None:
    model.model.policy = multi_step(STEPS, STEP_S)
    agents = await make_agents(rt, 6, "net")
    names = [f"net-{i}" for i in range(HOSTS)]
    async with anyio.create_task_group() as tg:  # three interpreters start at once
        for name in names:
            tg.start_soon(lambda n: hosts.worker(rt.redis, n, lease_ms=LEASE_MS), name)
    submitted = await submit_all(rt, agents, 4)

    async def a_busy_host() -> tuple[str, list[str]] | None:
        # A host inside the runs of two agents: each has its run's attempt recorded (the
        # first fenced write of a run), so what comes next is the model call of a step.
        running = await _in_run(rt.redis, submitted)
        for name in names:
            mine = [a for a in await _held_by(rt.redis, agents, name) if a in running]
            if len(mine) >= 2:
                return name, mine
        return None

    victim, cut_agents = await poll(a_busy_host, within=30, what="a host holding two agents")
    index = names.index(victim)
    net.cut(index)
    cut_at = time.monotonic()
    others = [name for name in names if name != victim]

    # Its agents pass to the hosts still on the network once its leases run out.
    moved: set[str] = set()

    async def all_moved() -> bool:
        for name in others:
            moved.update(a for a in await _held_by(rt.redis, agents, name) if a in cut_agents)
        return moved == set(cut_agents)

    try:
        await poll(all_moved, within=20, what=f"{victim}'s agents {cut_agents} to move")
        moved_after = time.monotonic() - cut_at
        runs = await wait_all_finished(rt.redis, submitted, within=40, fleet=hosts)
        before = await _states(rt, agents)
        # Whatever health record it has was written before the cut; a new one shows it is back.
        await rt.redis.delete(bus_keys.worker_health(victim))
    finally:
        net.restore(index)
    log = hosts.log(victim)
    await poll(
        lambda: rt.redis.exists(bus_keys.worker_health(victim)),
        within=30,
        what=f"{victim} to reach Redis again",
        alive=hosts.procs[victim],
        log=log,
    )
    # Back on the network it is inside steps it no longer owns. SIGTERM lets each finish its
    # current step (a model answer, then a commit) before the process exits: every write it
    # would make has been tried once it has exited, cleanly.
    hosts.signal(victim, signal.SIGTERM)
    assert await hosts.wait(victim, within=30) == 0, log()
    changed = _changes(before, await _states(rt, agents), skip=_lease_keys(agents))
    assert not changed, f"{victim} wrote after it was cut off: {changed}\n{log()}"
    # It was cut mid-run: another host ran that run again, and it still ended once.
    cut_runs = [run for run in runs if run.agent_id in cut_agents]
    attempts = [(run.id, run.attempts) for run in cut_runs]
    assert max(n for _, n in attempts) >= 2, f"no run of {cut_agents} was re-run: {attempts}"
    await assert_exactly_once(rt, agents, submitted, runs)
    expected = appended(submitted, STEPS - 1)
    for agent in agents:
        assert (await human_block(rt, agent)).value == expected[agent.id]
    await assert_streams_drained(rt.redis, agents)
    print(f"{victim} cut holding {len(cut_agents)} agents; they moved in {moved_after:.1f}s")
