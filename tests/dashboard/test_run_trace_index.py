"""The run view finds the runs one outside message caused through the root run's index of
them (written when a run is submitted with ``root_run_id``), not by reading every agent's run
list: its cost does not grow with the number of agents (issue 16)."""

from __future__ import annotations

import httpx
import pytest
import redis.asyncio as aioredis

from agents.runs import RUN_INDEX_TTL_S
from agents.scripted import Policy
from storage import keys
from storage.agents import AgentStore
from storage.records import Agent, new_id
from tests.api.conftest import make_agent, say_to
from tests.dashboard.test_runs_and_operations import relay_policy


@pytest.fixture
def policy() -> Policy:
    return relay_policy


async def _bystanders(redis: aioredis.Redis, count: int) -> None:
    store = AgentStore(redis)
    for n in range(count):
        await store.create(
            Agent(
                id=new_id("agent"),
                name=f"bystander-{n}",
                system="s",
                model="openai/m",
                embedding="hashing/384",
            )
        )


async def _keys_looked_up(redis: aioredis.Redis, client: httpx.AsyncClient, path: str) -> int:
    await redis.config_resetstat()
    (await client.get(path)).raise_for_status()
    stats = await redis.info("stats")
    return int(stats["keyspace_hits"]) + int(stats["keyspace_misses"])


async def test_the_trace_reads_the_runs_the_root_caused_not_every_agent(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    bob = await make_agent(client, name="bob")
    alice = await make_agent(client, name="alice", include_multi_agent_tools=True)
    result = await say_to(client, alice["id"], f"ask {bob['id']}")
    root = result["messages"][0]["run_id"]
    [bob_run] = [r["id"] for r in (await client.get(f"/v1/runs/?agent_ids={bob['id']}")).json()]

    # The root's index holds the run it caused, and expires with the runs' retention.
    caused = await redis_client.zrange(keys.run_caused(root), 0, -1)
    assert [m.decode() for m in caused] == [f"{bob['id']} {bob_run}"]
    assert 0 < await redis_client.ttl(keys.run_caused(root)) <= RUN_INDEX_TTL_S

    path = f"/dashboard/api/runs/{root}/trace"
    alone = await _keys_looked_up(redis_client, client, path)
    await _bystanders(redis_client, 300)
    crowded = await _keys_looked_up(redis_client, client, path)
    assert crowded - alone < 20, (alone, crowded)  # one run list per agent would be 300 more

    for start in (root, bob_run):  # from any run of the chain, the same trace
        trace = (await client.get(f"/dashboard/api/runs/{start}/trace")).json()
        assert trace["root_run_id"] == root
        assert [r["id"] for r in trace["runs"]] == [root, bob_run]
