"""Agent names across hash slots: create, rename and delete are ordered single-slot steps, and
a name entry left by a crash between them never hides, blocks or doubles an agent."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from storage import keys
from storage.agents import AgentStore
from storage.errors import Conflict
from storage.records import Agent, new_id


def _agent(name: str) -> Agent:
    return Agent(
        id=new_id("agent"), name=name, model="openai/scripted", system="s", embedding="hashing/384"
    )


async def test_a_name_left_by_a_crashed_create_is_no_agent_and_is_taken_over(
    redis_client: aioredis.Redis,
) -> None:
    store = AgentStore(redis_client)
    # A create that died after claiming the name: the entry points to no record.
    await redis_client.hset(keys.agent_names(), "ghost", "agent-never-stored")
    assert await store.id_for_name("ghost") is None
    created = await store.create(_agent("ghost"))
    assert await store.id_for_name("ghost") == created.id
    assert [a.id for a in await store.list(name="ghost")] == [created.id]
    with pytest.raises(Conflict, match="already exists"):
        await store.create(_agent("ghost"))  # a live agent's name stays its own


async def test_a_rename_cut_short_leaves_no_second_owner_of_the_old_name(
    redis_client: aioredis.Redis,
) -> None:
    store = AgentStore(redis_client)
    agent = await store.create(_agent("before"))
    renamed = await store.update(agent.id, name="after")
    assert renamed.name == "after"
    assert await store.id_for_name("after") == agent.id
    assert await store.id_for_name("before") is None
    # As if the rename had died before dropping the old name: it points to an agent that is
    # no longer so named, so it is no agent, and a new agent may take it.
    await redis_client.hset(keys.agent_names(), "before", agent.id)
    assert await store.id_for_name("before") is None
    other = await store.create(_agent("before"))
    assert await store.id_for_name("before") == other.id
    with pytest.raises(Conflict, match="already exists"):
        await store.update(agent.id, name="before")
    assert (await store.get(agent.id)).name == "after"


async def test_deleting_frees_the_name(redis_client: aioredis.Redis) -> None:
    store = AgentStore(redis_client)
    agent = await store.create(_agent("once"))
    await store.delete(agent.id)
    assert await store.id_for_name("once") is None
    assert await redis_client.hget(keys.agent_names(), "once") is None
    again = await store.create(_agent("once"))
    assert await store.id_for_name("once") == again.id


async def test_agent_pages_outlast_a_crash_between_the_steps_of_create_rename_and_delete(
    redis_client: aioredis.Redis,
) -> None:
    store = AgentStore(redis_client)
    first = await store.create(_agent("first"))
    second = await store.create(_agent("second"))
    # A create that died after the list, before the creation index: the next page extends it.
    await redis_client.zrem(keys.agents_by_created(), second.id)
    assert [a.id for a in await store.page()] == [first.id, second.id]
    # A rename that died before dropping the old name: the old name finds no agent.
    await store.update(first.id, name="renamed")
    await redis_client.hset(keys.agent_names(), "first", first.id)
    assert await store.page(name="first") == []
    assert await store.page(query_text="firs") == []
    assert [a.id for a in await store.page(name="renamed")] == [first.id]
    # A delete that died after the record: its index entries point to nothing, and are skipped.
    await redis_client.delete(keys.agent(second.id))
    assert [a.id for a in await store.page()] == [first.id]
