"""``GET /v1/runs/`` and ``/v1/runs/active`` without an agent: every agent's runs through the
index of runs by creation time (:mod:`agents.run_pages`), not agent by agent."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from agents.scripted import ChatRequest, Outcome, Policy, echo
from storage import keys
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
    await redis_client.delete(keys.runs_by_created(), keys.runs_by_created_filled())
    runs.append(await run(0))  # oldest first; the last agent has none
    newest = runs[::-1]
    assert await _listed(client) == newest
    assert await redis_client.exists(keys.runs_by_created_filled())
    read_before = await _calls(redis_client, "zrevrange")
    assert await _listed(client, limit=50) == newest
    # One read of the index, not one run list per agent (nor any agent record).
    assert await _calls(redis_client, "zrevrange") - read_before == 1

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
    assert await redis_client.zcard(keys.runs_by_created()) == 3


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
