"""Every kind of key has a retention policy: a deleted agent leaves nothing behind, finished
runs expire, event streams of runs that never finish expire, block history is bounded."""

from __future__ import annotations

import time

import httpx
import redis.asyncio as aioredis

from bus import keys as bus_keys
from bus.run_events import stage_events
from storage import keys
from storage.blocks import BlockStore, new_block
from storage.settings import StorageSettings
from tests.api.conftest import make_agent, say_to


async def _keys_of(redis: aioredis.Redis, agent_id: str) -> list[str]:
    return sorted([k.decode() async for k in redis.scan_iter(match=f"*{agent_id}*", count=1000)])


async def test_deleting_an_agent_leaves_none_of_its_keys(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    agent = await make_agent(client)
    body = {"messages": [{"role": "user", "content": "remember me", "otid": "otid-1"}]}
    first = await client.post(f"/v1/agents/{agent['id']}/messages", json=body)
    assert first.status_code == 200, first.text
    await say_to(client, agent["id"], "and this too")
    runs = [r.decode() for r in await redis_client.zrange(keys.agent_runs(agent["id"]), 0, -1)]
    assert len(runs) == 2
    assert await redis_client.exists(bus_keys.otid(agent["id"], "otid-1"))
    assert await redis_client.exists(bus_keys.fence(agent["id"]))
    assert (await client.delete(f"/v1/agents/{agent['id']}")).status_code == 200
    assert await _keys_of(redis_client, agent["id"]) == []
    assert await redis_client.exists(*(keys.run_index(r) for r in runs)) == 0


async def test_a_finished_run_expires_and_leaves_the_agents_run_list(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    agent = await make_agent(client)
    ttl = StorageSettings().run_ttl_s
    runs_key = keys.agent_runs(agent["id"])
    # A run from long ago whose record has expired already: the list forgets it too.
    await redis_client.zadd(runs_key, {"run-ancient": time.time() - ttl - 60})
    ancient = f"run-ancient {agent['id']}"  # and every agent's runs by creation time
    index = bus_keys.runs_by_time(agent["id"])
    await redis_client.zadd(index, {ancient: time.time() - ttl - 60})
    await say_to(client, agent["id"], "hello")
    [run_id] = [r.decode() for r in await redis_client.zrange(runs_key, 0, -1)]
    listed = await redis_client.zrange(index, 0, -1)
    assert [r.decode() for r in listed] == [f"{run_id} {agent['id']}"]
    assert 0 < await redis_client.ttl(keys.run(agent["id"], run_id)) <= ttl
    assert await redis_client.ttl(bus_keys.run_events(agent["id"], run_id)) > 0


async def test_the_events_of_a_run_that_never_finishes_expire(
    redis_client: aioredis.Redis,
) -> None:
    async with redis_client.pipeline(transaction=True) as pipe:
        stage_events(pipe, "A", "run-1", [b"{}"], final=False)
        await pipe.execute()
    assert await redis_client.ttl(bus_keys.run_events("A", "run-1")) > 0


async def test_block_history_keeps_the_latest_versions_only(
    redis_client: aioredis.Redis,
) -> None:
    blocks = BlockStore(redis_client, history_max=3)
    block = await blocks.create(new_block("notes", "v1"))
    for n in range(2, 8):
        await blocks.set_fields(block.id, value=f"v{n}")
    history = await blocks.history(block.id)
    assert [(h.version, h.value) for h in history] == [(5, "v5"), (6, "v6"), (7, "v7")]


def test_retention_settings_come_from_the_environment() -> None:
    settings = StorageSettings.from_env(
        {
            "MEMGRID_BLOCK_HISTORY_MAX": "7",
            "MEMGRID_RUN_TTL_S": "3600",
            "MEMGRID_EVENTS_TTL_S": "60",
            "MEMGRID_OPEN_EVENTS_TTL_S": "600",
        }
    )
    assert (settings.block_history_max, settings.run_ttl_s) == (7, 3600)
    assert (settings.events_ttl_s, settings.open_events_ttl_s) == (60, 600)
