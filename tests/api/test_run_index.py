"""``GET /v1/runs/`` and ``/v1/runs/active`` without an agent: every agent's runs through the
index of runs by creation time (:mod:`agents.run_pages`), not agent by agent."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from agents import run_pages
from agents.scripted import ChatRequest, Outcome, Policy, echo
from bus import keys as bus_keys
from storage import keys
from storage.agents import UnknownCursor
from storage.records import Run, encode
from tests.api.conftest import Hold, make_agent, say_to, sse_frames


@pytest.fixture
def policy(hold: Hold) -> Policy:
    async def held(request: ChatRequest) -> Outcome:
        if hold.active:
            hold.entered.set()
            await hold.release.wait()
        return echo(request)

    return held


async def _calls(redis: aioredis.Redis, command: str) -> int:
    """How many times Redis (every node of a cluster) ran ``command``."""
    if isinstance(redis, RedisCluster):
        per_node = await redis.info("commandstats", target_nodes=RedisCluster.ALL_NODES)
        stats: list[dict[str, Any]] = list(per_node.values())
    else:
        stats = [await redis.info("commandstats")]
    return sum(int(s.get(f"cmdstat_{command}", {}).get("calls", 0)) for s in stats)


async def _shards_of(redis: aioredis.Redis, member: str) -> list[str]:
    """The shards of the index that hold ``member``."""
    shards = bus_keys.runs_by_time_shards()
    return [s for s in shards if await redis.zscore(s, member) is not None]


async def _listed(client: httpx.AsyncClient, path: str = "/v1/runs/", **params: Any) -> list[str]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()]


async def test_every_agents_runs_page_in_creation_order_through_the_index(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    agents = [await make_agent(client, name=f"a{n}") for n in range(4)]

    async def run(n: int) -> str:
        return str((await say_to(client, agents[n]["id"], f"m{n}"))["messages"][0]["run_id"])

    runs = [await run(0), await run(1), await run(2)]
    # As a deployment upgraded from a version without the index finds its runs: the first
    # listing copies them in.
    await redis_client.delete(*bus_keys.runs_by_time_shards(), bus_keys.runs_by_time_filled())
    runs.append(await run(0))  # oldest first; the last agent has none
    newest = runs[::-1]
    assert await _listed(client) == newest
    assert await redis_client.exists(bus_keys.runs_by_time_filled())
    for run_id in runs:  # each in its agent's shard only
        agent_id = (await redis_client.get(keys.run_index(run_id))).decode()
        assert await _shards_of(redis_client, f"{run_id} {agent_id}") == [
            bus_keys.runs_by_time(agent_id)
        ]
    read_before = await _calls(redis_client, "zrevrange")
    assert await _listed(client, limit=50) == newest
    # One read of each shard of the index, not one run list per agent (nor any agent record).
    assert await _calls(redis_client, "zrevrange") - read_before == bus_keys.READY_SHARDS

    assert await _listed(client, order="asc") == runs
    assert await _listed(client, ascending="true") == runs  # Letta 0.11
    assert await _listed(client, limit=2) == newest[:2]
    assert await _listed(client, limit=2, after=newest[1]) == newest[2:]
    assert await _listed(client, before=newest[2]) == newest[:2]
    assert await _listed(client, before=newest[2], limit=1) == [newest[1]]
    assert await _listed(client, after=newest[0], before=newest[3]) == newest[1:3]
    assert await _listed(client, order="asc", after=runs[1], limit=1) == [runs[2]]
    assert await _listed(client, order="asc", before=runs[1]) == [runs[0]]
    assert await _listed(client, limit=0) == []
    missing = await client.get("/v1/runs/", params={"after": "run-nope"})
    assert missing.status_code == 404 and "after" in missing.text

    assert await _listed(client, statuses=["completed"]) == newest
    assert await _listed(client, statuses=["failed"]) == []
    assert await _listed(client, stop_reason="end_turn", order_by="created_at") == newest
    assert await _listed(client, stop_reason="max_steps") == []
    assert await _listed(client, active="false", limit=3) == newest[:3]
    assert await _listed(client, active="true") == []
    assert await _listed(client, "/v1/runs/active") == []

    # A deleted agent's runs leave the index with it.
    assert (await client.delete(f"/v1/agents/{agents[1]['id']}")).status_code == 200
    assert await _listed(client) == [r for r in newest if r != runs[1]]
    assert sum([await redis_client.zcard(k) for k in bus_keys.runs_by_time_shards()]) == 3


async def test_unfinished_runs_are_listed_active_until_they_end(
    client: httpx.AsyncClient, hold: Hold
) -> None:
    other = await make_agent(client, name="other")
    done = (await say_to(client, other["id"], "before"))["messages"][0]["run_id"]
    agent = await make_agent(client, name="busy")
    hold.active = True
    path = f"/v1/agents/{agent['id']}/messages/async"
    running = (await client.post(path, json={"input": "first"})).json()["id"]
    with anyio.fail_after(20):
        await hold.entered.wait()  # the first run is in its model call
    queued = (await client.post(path, json={"input": "second"})).json()["id"]

    assert await _listed(client, active="true") == [queued, running]
    assert await _listed(client, "/v1/runs/active") == [queued, running]
    # Both still read "created": a run's record is first written by its first step's commit.
    assert await _listed(client, statuses=["created", "running"], limit=1) == [queued]
    assert await _listed(client, statuses=["completed"]) == [done]
    assert await _listed(client, active="false") == [done]
    assert await _listed(client, active="true", after=queued) == [running]

    hold.active = False
    hold.release.set()
    for run_id in (running, queued):
        with anyio.fail_after(20):
            assert (await sse_frames(client, f"/v1/runs/{run_id}/stream"))[-1] == "[DONE]"
    assert await _listed(client, "/v1/runs/active") == []
    assert await _listed(client, active="false") == [queued, running, done]


def test_the_index_is_sharded_by_the_ready_streams_agent_to_shard_function() -> None:
    from redis.cluster import key_slot

    shards = bus_keys.runs_by_time_shards()
    assert len({key_slot(s.encode()) for s in shards}) == len(shards) == bus_keys.READY_SHARDS
    for agent_id in (f"agent-{i}" for i in range(200)):
        index = bus_keys.runs_by_time(agent_id)
        assert key_slot(index.encode()) == key_slot(bus_keys.ready(agent_id).encode())
    assert {bus_keys.runs_by_time(f"agent-{i}") for i in range(1000)} == set(shards)


async def test_pages_merge_the_shards_in_creation_then_run_id_order(
    redis_client: aioredis.Redis,
) -> None:
    """Every page of the shards is the page that the one ordered list of runs gives."""
    runs: list[tuple[float, str, str]] = []  # (created, run id, agent id)
    for n in range(240):  # most in one shard (read in several batches)
        agent_id = "agent-0" if n % 4 else f"agent-{n % 23}"
        runs.append((1000.0 + n // 4, f"run-{(n * 37) % 240:03d}", agent_id))  # ties: 4 a time
    gone = runs[100][1]  # its record expired: skipped, still a cursor
    async with redis_client.pipeline(transaction=False) as pipe:
        for created, run_id, agent_id in runs:
            if run_id != gone:
                status = "failed" if run_id in _FAILED else "completed"
                run = Run(id=run_id, agent_id=agent_id, created_at=created, status=status)
                pipe.set(keys.run(agent_id, run_id), encode(run))
            pipe.set(keys.run_index(run_id), agent_id)
            pipe.zadd(bus_keys.runs_by_time(agent_id), {f"{run_id} {agent_id}": created})
        await pipe.execute()
    oldest_first = [r for _, r, _ in sorted(runs)]
    for descending in (False, True):
        order = oldest_first[::-1] if descending else oldest_first
        cursors = (order[0], order[1], gone, order[117], order[-1])
        pairs = [(c, None) for c in cursors] + [(None, c) for c in cursors]
        pairs += [(None, None), (order[3], order[150]), (order[150], order[3])]
        for limit in (None, 1, 7, 60):
            for (after, before), failed in itertools.product(pairs, (False, True)):
                low = order.index(after) + 1 if after else 0
                high = order.index(before) if before else None
                within = [r for r in order[low:high] if r != gone and (r in _FAILED or not failed)]
                nearest = before is not None and after is None  # the limit nearest to it
                want = within[-limit:] if nearest and limit else within[:limit]
                got = await run_pages.page(
                    redis_client,
                    keep=(lambda r: r.status == "failed") if failed else _all,
                    after=after,
                    before=before,
                    limit=limit,
                    descending=descending,
                )
                assert [r.id for r in got] == want, (descending, after, before, limit, failed)
    with pytest.raises(UnknownCursor):
        await run_pages.page(
            redis_client, keep=_all, after="run-nope", before=None, limit=1, descending=True
        )


_FAILED = {f"run-{n:03d}" for n in range(0, 240, 9)}  # few: pages read several batches


def _all(run: Run) -> bool:
    return True
