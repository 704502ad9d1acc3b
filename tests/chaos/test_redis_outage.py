"""Redis outages: every long-running memgrid process rides them out (issue #11).

- ``memgrid up --workers 2`` under load: the redis-server it started is SIGKILLed; ``up``
  restarts it on the same data (AOF), its workers and API stay the same processes, and every
  accepted message ends with exactly one completed run and one reply;
- ``memgrid serve`` (which owns the embedded passage engine and serves archival memory to the
  others) answers 503 with ``Retry-After`` naming the Redis URL while Redis is down, and
  recovers by itself;
- ``memgrid serve`` with its worker, started while Redis is down, answers 503 meanwhile;
- a ``memgrid worker`` whose Redis restarts mid-turn keeps running and finishes the turn, at
  the cost of one attempt, also when the outage outlasts its leases; and serves a Redis that
  came back empty;
- the archival RPC server answers again after a Redis restart and after a failover (its
  primary demoted to replica, then promoted back);
- clients reconnect on their first command after a restart; the local redis-server comes
  back on the same address and data.

Real processes, a real redis-server, the scripted model over HTTP. Nothing sleeps to wait for
work: the tests poll (with deadlines) for what they wait on; the two sleeps set how long an
outage lasts or let the event loop take in closed connections, as a live process's would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import httpx
import pytest
import redis
import redis.asyncio as aioredis

from agents.llm import LLMSettings
from agents.runs import RunStore, live_workers
from agents.runtime import LLMPool, Runtime
from agents.scripted import ThreadedScriptedModel
from bus import (
    connect,
    ensure_local_redis,
    find_redis_server,
    restart_local_redis_if_down,
    stop_local_redis,
)
from bus.envelopes import InboxMessage
from bus.local_redis import local_redis_dir
from bus.streams import list_dead_letters
from tests._util import model_env, owning_archival
from tests.test_distributed import (
    Fleet,
    Submission,
    appended,
    assert_exactly_once,
    human_block,
    make_agents,
    multi_step,
    poll,
    runs_of,
    wait_all_finished,
)

if TYPE_CHECKING:
    from agents.archival_rpc import RemoteArchival

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own (AOF on), to kill and start again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                find_redis_server(os.environ.get("REDIS_SERVER")),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:  # BusyLoadingError included
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def scripted(scripted_model_thread: ThreadedScriptedModel) -> ThreadedScriptedModel:
    """The scripted model on a thread of its own (memgrid's pytest plugin), for the workers."""
    return scripted_model_thread


@pytest.fixture
async def client(own_redis: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client of this test's own Redis."""
    client = connect(own_redis.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def fleet(
    tmp_path: Path, own_redis: RedisServer, scripted: ThreadedScriptedModel
) -> AsyncIterator[Fleet]:
    """Memgrid processes on this test's own Redis (:func:`_fleet`), killed at the end."""
    fleet = _fleet(tmp_path, scripted, MEMGRID_REDIS_URL=own_redis.url)
    try:
        yield fleet
    finally:
        await fleet.aclose()


def _fleet(
    tmp_path: Path, scripted: ThreadedScriptedModel, home: str = "home", **extra: str
) -> Fleet:
    """Memgrid processes with their home at ``tmp_path/home`` and their logs in
    ``tmp_path/logs``, whose model is ``scripted``; with ``extra`` in their environment."""
    logs = tmp_path / "logs"
    logs.mkdir()
    return Fleet(model_env(tmp_path / home, scripted.base_url, **extra), logs)


async def _count_once_answering(archival: RemoteArchival, owner: str, down: type[Exception]) -> int:
    """``owner``'s passage count from ``archival`` once its server answers again, that is
    once asking no longer raises ``down`` (within 20 s)."""

    async def answered() -> int | None:
        try:
            return await archival.count(owner) + 1
        except down:
            return None

    return int(await poll(answered, within=20, what="the archival server")) - 1


async def _ok(call: Any) -> Any:
    """``call()``'s result, or None while Redis is away (the test's own client fails too)."""
    try:
        return await call()
    except redis.ConnectionError:
        return None


async def _down(client: aioredis.Redis) -> bool:
    try:
        await client.ping()
    except redis.ConnectionError:
        return True
    return False


async def _healthy(http: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await http.get(f"{url}/v1/health/")).status_code == 200
    except httpx.TransportError:
        return False


async def _logged(log: Any, needle: str) -> bool:
    return needle in log()


async def _submit_via_api(
    http: httpx.AsyncClient, url: str, agent_id: str, text: str, answers: list[int]
) -> str:
    """Send one message as a client that retries (same otid) until the API accepts it."""
    body = {"messages": [{"role": "user", "content": text, "otid": f"otid-{text}"}]}
    deadline = time.monotonic() + 30
    while True:
        response = await http.post(f"{url}/v1/agents/{agent_id}/messages/async", json=body)
        answers.append(response.status_code)
        if response.status_code == 200:
            return str(response.json()["id"])
        assert response.status_code == 503, response.text
        assert response.headers.get("retry-after"), response.headers
        assert time.monotonic() < deadline, f"the API kept answering 503: {response.text}"
        await anyio.sleep(float(response.headers["retry-after"]) / 10)


async def test_a_client_reconnects_on_its_first_command_after_a_restart(
    own_redis: RedisServer, client: aioredis.Redis
) -> None:
    # Every pooled connection is dead after a restart: none of them may fail a command.
    async with anyio.create_task_group() as tg:  # several pooled connections
        for _ in range(4):
            tg.start_soon(client.blpop, ["nothing"], 0.2)
    own_redis.kill()
    own_redis.start()
    # A live process's loop runs through the outage and takes in the old connections' EOF.
    await anyio.sleep(0.05)
    for _ in range(4):
        assert await client.ping()


@pytest.mark.parametrize("address", ["unix", "tcp"])
def test_the_local_redis_restarts_on_the_same_address_and_data(
    tmp_path: Path, address: str
) -> None:
    # A home too deep for a unix socket path gets a TCP port instead.
    home = tmp_path / "home" if address == "unix" else tmp_path / ("d" * 60) / ("e" * 60)
    home.mkdir(parents=True)
    try:
        url = ensure_local_redis(home)
        assert url.startswith("unix://" if address == "unix" else "redis://127.0.0.1:")
        client = redis.Redis.from_url(url)
        try:
            client.set("kept", b"1")
            assert not restart_local_redis_if_down(home)  # it runs: nothing to do
            folder = local_redis_dir(home)
            killed = int((folder / "redis.pid").read_text())
            os.kill(killed, signal.SIGKILL)
            assert restart_local_redis_if_down(home)
            assert int((folder / "redis.pid").read_text()) != killed
            assert ensure_local_redis(home) == url  # clients of the old address reconnect
            assert client.get("kept") == b"1"  # the AOF brought the data back
        finally:
            client.close()
    finally:
        stop_local_redis(home)


async def _answers(http: httpx.AsyncClient, url: str) -> int:
    try:
        return (await http.get(f"{url}/v1/health/")).status_code
    except httpx.TransportError:
        return 0


@pytest.mark.timeout(60)
async def test_serve_with_its_worker_starts_while_redis_is_down(
    own_redis: RedisServer, scripted: ThreadedScriptedModel, fleet: Fleet, client: aioredis.Redis
) -> None:
    scripted.model.policy = multi_step(1, 0.0)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    own_redis.kill()
    api = await fleet.spawn("api", "serve", "--port", str(port))  # a worker in it
    log = fleet.log("api")
    async with httpx.AsyncClient(timeout=10) as http:
        # It answers (503: try again) instead of refusing connections until Redis is up.
        status = await poll(
            lambda: _answers(http, url), within=30, what="the API", alive=api, log=log
        )
        assert status == 503, status
        own_redis.start()
        await poll(lambda: _healthy(http, url), within=20, what="recovery", alive=api, log=log)
        rt = Runtime(redis=client, llm=LLMPool(LLMSettings(base_url=scripted.base_url)))
        (agent,) = await make_agents(rt, 1, "late")
        response = await http.post(
            f"{url}/v1/agents/{agent.id}/messages",
            json={"messages": [{"role": "user", "content": "hello"}]},
        )
        assert response.status_code == 200, response.text
        texts = [m.get("content") for m in response.json()["messages"]]
        assert "re: hello" in texts, texts  # its embedded worker ran the turn


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("lease_ms", "outage_s"),
    [
        # A lease far longer than the test waits: the agents must go on once Redis is back,
        # not once the leases taken before the outage have expired.
        (30_000, 0.0),
        # An outage three lease times long: the leases are gone when Redis comes back.
        (2_000, 6.0),
    ],
    ids=["short-outage", "outage-beyond-the-lease"],
)
async def test_worker_finishes_a_turn_across_a_redis_restart(
    own_redis: RedisServer,
    scripted: ThreadedScriptedModel,
    lease_ms: int,
    outage_s: float,
    fleet: Fleet,
    client: aioredis.Redis,
) -> None:
    steps, delay = 3, 0.4
    scripted.model.policy = multi_step(steps, delay)
    # Two attempts: an outage may cost the turn it cut one attempt, never more.
    worker = await fleet.worker(
        client, "outage-w", "--max-attempts", "2", lease_ms=lease_ms, concurrency=4
    )
    log = fleet.log("outage-w")
    rt = Runtime(redis=client, llm=LLMPool(LLMSettings(base_url=scripted.base_url)))
    agents = await make_agents(rt, 2, "restart")
    runs = RunStore(client)
    submitted: list[Submission] = []
    for index, agent in enumerate(agents):
        for n in range(2):
            text = f"w{index}-m{n}"
            sub = await runs.submit(agent.id, [InboxMessage(content=text)], otid=text)
            submitted.append((agent.id, sub.run_id, text))

    async def mid_turn() -> bool:
        found = await runs_of(client, submitted)
        return any(r is not None and r.status == "running" and r.steps == 1 for r in found)

    await poll(mid_turn, within=20, what="a turn in flight", alive=worker, log=log)
    own_redis.kill()
    await poll(lambda: _down(client), within=10, what="the outage")

    async def gave_up_the_turn() -> bool:  # its turn failed; it tried to release the agent
        return "worker outage-w release" in log() or "agent_handling_failed" in log()

    await poll(gave_up_the_turn, within=10, what="the turn to fail", alive=worker, log=log)
    await anyio.sleep(outage_s)  # how long Redis stays away: the scenario, not a wait
    own_redis.start()
    done = await wait_all_finished(client, submitted, within=20, fleet=fleet)
    await assert_exactly_once(rt, agents, submitted, done)
    expected = appended(submitted, steps - 1)
    for agent in agents:
        assert (await human_block(rt, agent)).value == expected[agent.id]
    assert worker.returncode is None
    assert not await list_dead_letters(client)
    assert max(r.attempts for r in done) == 2, [r.attempts for r in done]  # the cut turn
    fleet.signal("outage-w", signal.SIGTERM)
    assert await fleet.wait("outage-w", within=15) == 0, log()


@pytest.mark.timeout(60)
async def test_worker_serves_a_redis_that_came_back_without_its_data(
    own_redis: RedisServer, scripted: ThreadedScriptedModel, fleet: Fleet, client: aioredis.Redis
) -> None:
    scripted.model.policy = multi_step(1, 0.0)
    worker = await fleet.worker(client, "empty-w")
    log = fleet.log("empty-w")
    rt = Runtime(redis=client, llm=LLMPool(LLMSettings(base_url=scripted.base_url)))
    own_redis.kill()
    await poll(lambda: _down(client), within=10, what="the outage")
    shutil.rmtree(own_redis.folder)  # no AOF: it comes back empty, groups and all
    own_redis.folder.mkdir()
    own_redis.start()
    (agent,) = await make_agents(rt, 1, "empty")
    sub = await RunStore(client).submit(agent.id, [InboxMessage(content="hi")], otid="e1")
    submitted = [(agent.id, sub.run_id, "hi")]
    done = await wait_all_finished(client, submitted, within=20, fleet=fleet)
    await assert_exactly_once(rt, [agent], submitted, done)
    assert worker.returncode is None, log()


@pytest.fixture
def archival_owner(
    own_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """This process owns the embedded passage engine and serves it over Redis, on a thread of
    its own (as ``memgrid up`` does in its main loop)."""
    monkeypatch.setenv("MEMGRID_EMBEDDING", "hashing/384")
    env = {"MEMGRID_HOME": str(tmp_path / "owner"), "MEMGRID_REDIS_URL": own_redis.url}
    with owning_archival(env, monkeypatch):
        yield


@pytest.mark.timeout(60)
async def test_archival_server_answers_again_after_a_redis_restart(
    own_redis: RedisServer, archival_owner: None, client: aioredis.Redis
) -> None:
    from agents.archival_rpc import RemoteArchival

    remote = RemoteArchival(client, timeout_s=10)
    await remote.insert("agent-x", "hashing/384", "before the outage", [])
    assert await remote.count("agent-x") == 1
    own_redis.kill()
    with pytest.raises(redis.ConnectionError):
        await remote.count("agent-y")
    # The server's blocked read broke with the server: its loop must ride that out.
    own_redis.start()
    fresh = RemoteArchival(client, timeout_s=10, stats_ttl_s=0)

    assert await _count_once_answering(fresh, "agent-x", redis.ConnectionError) == 1
    inserted = await fresh.insert("agent-x", "hashing/384", "after the outage", [])
    assert inserted.text == "after the outage"


@pytest.mark.timeout(90)
async def test_api_answers_503_while_redis_is_down_and_recovers(
    own_redis: RedisServer, scripted: ThreadedScriptedModel, fleet: Fleet, client: aioredis.Redis
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # It owns the embedded passage engine, so it also serves archival memory over Redis.
    api = await fleet.spawn("api", "serve", "--no-worker", "--port", str(port))
    log = fleet.log("api")
    async with httpx.AsyncClient(timeout=10) as http:
        await poll(lambda: _healthy(http, url), within=60, what="the API", alive=api, log=log)
        rt = Runtime(redis=client, llm=LLMPool(LLMSettings(base_url=scripted.base_url)))
        (agent,) = await make_agents(rt, 1, "api-outage")
        assert (await http.get(f"{url}/v1/agents/{agent.id}")).status_code == 200

        own_redis.kill()
        for path in (f"/v1/agents/{agent.id}", "/v1/agents/", "/v1/health/"):
            response = await http.get(f"{url}{path}")
            assert response.status_code == 503, (path, response.status_code, response.text)
            assert int(response.headers["retry-after"]) >= 1, response.headers
            if path != "/v1/health/":
                assert f"127.0.0.1:{own_redis.port}" in response.json()["detail"]
        response = await http.post(
            f"{url}/v1/agents/{agent.id}/messages/async",
            json={"messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code == 503, response.text

        # Long enough for the process's loops (archival server) to meet the outage.
        await poll(
            lambda: _logged(log, "redis_unavailable"),
            within=10,
            what="the outage to be noticed",
            alive=api,
            log=log,
        )
        own_redis.start()
        await poll(lambda: _healthy(http, url), within=20, what="recovery", alive=api, log=log)
        assert (await http.get(f"{url}/v1/agents/{agent.id}")).status_code == 200
        assert api.returncode is None
        # Once per outage and loop (the archival server's, the callback sender's), and
        # once for the requests answered 503.
        loops = [
            json.loads(line).get("loop")
            for line in log().splitlines()
            if '"event": "redis_unavailable"' in line
        ]
        assert loops and sorted(loops) == sorted(set(loops)), log()
        assert log().count('"event": "api_redis_unavailable"') == 1, log()


@pytest.mark.timeout(120)
async def test_memgrid_up_rides_out_a_killed_redis(
    tmp_path: Path, scripted: ThreadedScriptedModel
) -> None:
    steps, delay = 2, 0.3
    scripted.model.policy = multi_step(steps, delay)
    home = tmp_path / "up"
    fleet = _fleet(tmp_path, scripted, "up")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    client: aioredis.Redis | None = None
    try:
        up = await fleet.spawn(
            "up", "up", "--workers", "2", "--concurrency", "4", "--port", str(port)
        )
        log = fleet.log("up")
        async with httpx.AsyncClient(timeout=10) as http:
            await poll(lambda: _healthy(http, url), within=60, what="the API", alive=up, log=log)
            client = connect(await anyio.to_thread.run_sync(ensure_local_redis, home))
            redis_client = client

            async def two_workers() -> list[dict[str, Any]]:
                alive = await live_workers(redis_client)
                return alive if len(alive) == 2 else []

            before = await poll(two_workers, within=30, what="2 workers", alive=up, log=log)
            worker_pids = sorted(int(w["pid"]) for w in before)
            rt = Runtime(redis=client, llm=LLMPool(LLMSettings(base_url=scripted.base_url)))
            agents = await make_agents(rt, 6, "outage")
            submitted: list[Submission] = []
            answers: list[int] = []

            async def send(round_: int) -> None:
                async def one(index: int, agent_id: str) -> None:
                    text = f"a{index}-m{round_}"
                    run_id = await _submit_via_api(http, url, agent_id, text, answers)
                    submitted.append((agent_id, run_id, text))

                async with anyio.create_task_group() as tg:
                    for index, agent in enumerate(agents):
                        tg.start_soon(one, index, agent.id)

            await send(0)
            await send(1)

            async def mid_turn() -> bool:  # some runs have committed a step, none finished
                runs = await runs_of(redis_client, submitted)
                return any(r is not None and r.status == "running" and r.steps >= 1 for r in runs)

            await poll(mid_turn, within=20, what="runs in flight", alive=up, log=log)
            folder = local_redis_dir(home)
            killed = int((folder / "redis.pid").read_text())
            os.kill(killed, signal.SIGKILL)
            killed_at = time.monotonic()
            # Clients keep sending while Redis is away: 503 + Retry-After, then accepted.
            await send(2)

            async def restarted() -> int:
                pid = int((folder / "redis.pid").read_text() or 0)
                return pid if pid != killed and await _ok(redis_client.ping) else 0

            await poll(restarted, within=20, what="up to restart Redis", alive=up, log=log)
            back_at = time.monotonic()
            await send(3)
            runs = await wait_all_finished(client, submitted, within=60, fleet=fleet)
            done_at = time.monotonic()
            await assert_exactly_once(rt, agents, submitted, runs)
            expected = appended(submitted, steps - 1)
            for agent in agents:
                assert (await human_block(rt, agent)).value == expected[agent.id]
            assert all(r.attempts <= 2 for r in runs), [(r.id, r.attempts) for r in runs]
            # The same processes did it all: nothing exited, nothing was restarted.
            assert up.returncode is None
            after = await live_workers(client)
            assert sorted(int(w["pid"]) for w in after) == worker_pids, log()
            assert "exited with" not in log() and log().count("api started") == 1, log()
            assert await _healthy(http, url)
            print(
                f"Redis back {back_at - killed_at:.2f}s after SIGKILL; all {len(runs)} runs done "
                f"{done_at - back_at:.2f}s later; API answers {sorted(set(answers))}; "
                f"attempts {sorted(r.attempts for r in runs)}"
            )

        os.killpg(up.pid, signal.SIGINT)
        assert await fleet.wait("up", within=40) == 0, log()
        assert "memgrid up: stopped" in log(), log()
    finally:
        if client is not None:
            await client.aclose()
        await fleet.aclose()
        await anyio.to_thread.run_sync(stop_local_redis, home)


@pytest.mark.timeout(30)
async def test_a_scripts_write_on_a_demoted_primary_is_an_outage_to_wait_out(
    own_redis: RedisServer, client: aioredis.Redis
) -> None:
    """A Lua script that writes on a replica fails with ``Error running script ... -READONLY``
    (a plain ResponseError, not ReadOnlyError): every loop that waits out a failover must read it
    as one, or the archival server's ack after a demotion ends its loop."""
    from bus import streams
    from bus.connection import is_transient

    await streams.ensure_group(client, "mg:test:demoted")
    await client.xadd("mg:test:demoted", {"r": "x"})
    admin = redis.Redis.from_url(own_redis.url)
    try:
        admin.replicaof("127.0.0.1", str(_free_port()))  # a primary that never answers
        with pytest.raises(redis.RedisError) as refused:
            await streams.ack_and_delete(client, "mg:test:demoted", "0-1")
        assert "READONLY" in str(refused.value)
        assert is_transient(refused.value)
        assert not is_transient(redis.ResponseError("Error running script: @user_script:1: oops"))
    finally:
        admin.replicaof("NO", "ONE")
        admin.close()


@pytest.mark.timeout(60)
async def test_archival_server_rides_out_a_demotion_to_replica(
    own_redis: RedisServer, archival_owner: None, client: aioredis.Redis
) -> None:
    from agents.archival_rpc import RemoteArchival

    # A failover demotes the primary: blocked reads end with UNBLOCKED, writes get READONLY.
    admin = redis.Redis.from_url(own_redis.url)
    try:
        remote = RemoteArchival(client, timeout_s=10, stats_ttl_s=0)
        await remote.insert("agent-r", "hashing/384", "before the failover", [])
        admin.replicaof("127.0.0.1", str(_free_port()))  # a primary that never answers
        with pytest.raises(redis.RedisError):
            await remote.count("agent-r")
        admin.replicaof("NO", "ONE")

        assert await _count_once_answering(remote, "agent-r", redis.RedisError) == 1
    finally:
        admin.close()
