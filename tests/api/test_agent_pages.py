"""``GET /v1/agents`` pages through the creation index: it reads and decodes only the agents it
returns, whatever the number of agents, and filters by tag through the tag index (issue 16)."""

from __future__ import annotations

from typing import Any

import httpx
import redis.asyncio as aioredis

from storage.agents import AgentStore
from storage.records import Agent, new_id

T0 = 1_700_000_000.0


async def _agents(redis: aioredis.Redis, count: int) -> list[Agent]:
    """``count`` agents created one second apart, tagged ``all``, ``even``/``odd`` and
    ``third`` (every third one)."""
    store = AgentStore(redis)
    made = []
    for n in range(count):
        tags = ["all", "even" if n % 2 == 0 else "odd", *(["third"] if n % 3 == 0 else [])]
        agent = Agent(
            id=new_id("agent"),
            name=f"Agent-{n:04d}",
            system="You are a helpful agent.",
            model="openai/gpt-4o-mini",
            embedding="hashing/384",
            tags=tags,
            created_at=T0 + n,
            updated_at=T0 + n,
        )
        made.append(await store.create(agent))
    return made


async def _ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/v1/agents/", params=params)
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()]


async def _keys_read(redis: aioredis.Redis, client: httpx.AsyncClient, **params: Any) -> int:
    """How many keys Redis looked up (``keyspace_hits``) while one list request ran."""
    await redis.config_resetstat()
    assert len(await _ids(client, **params)) == params["limit"]
    return int((await redis.info("stats"))["keyspace_hits"])


async def test_a_page_reads_what_it_returns_not_every_agent(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    made = await _agents(redis_client, 400)
    middle = made[200].id
    # A page of 5 looks up a handful of keys (indexes, the 5 records); reading every record
    # would be over 400. The embedded worker's polling adds a few.
    assert await _keys_read(redis_client, client, limit=5) < 60
    assert await _keys_read(redis_client, client, limit=5, after=middle) < 60
    assert await _keys_read(redis_client, client, limit=5, order="asc", before=middle) < 60
    assert await _keys_read(redis_client, client, limit=5, tags="odd") < 60
    assert await _keys_read(redis_client, client, limit=5, query_text="agent-03") < 60


async def test_cursors_order_and_filters_follow_letta(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    made = await _agents(redis_client, 12)
    ids = [a.id for a in made]
    newest_first = ids[::-1]
    assert await _ids(client) == newest_first
    assert await _ids(client, limit=3) == newest_first[:3]
    assert await _ids(client, order="asc", limit=3) == ids[:3]
    assert await _ids(client, ascending="true", limit=2) == ids[:2]
    # after/before are positions in the order asked; `before` alone gives the nearest ones.
    assert await _ids(client, after=ids[5], limit=2) == [ids[4], ids[3]]
    assert await _ids(client, order="asc", after=ids[5], limit=2) == [ids[6], ids[7]]
    assert await _ids(client, order="asc", before=ids[5], limit=2) == [ids[3], ids[4]]
    assert await _ids(client, order="asc", after=ids[2], before=ids[6]) == ids[3:6]
    assert await _ids(client, order="asc", after=ids[-1]) == []
    assert await _ids(client, limit=0) == []
    # Tags through the tag index: any of them, or all of them; with cursors and order.
    evens, thirds = ids[0::2], ids[0::3]
    assert await _ids(client, order="asc", tags="even") == evens
    assert await _ids(client, order="asc", tags=["even", "third"]) == sorted(
        set(evens) | set(thirds), key=ids.index
    )
    both = [i for i in evens if i in thirds]
    assert await _ids(client, order="asc", tags=["even", "third"], match_all_tags="true") == both
    assert await _ids(client, tags="even", after=ids[8], limit=2) == [ids[6], ids[4]]
    assert await _ids(client, tags="nobody-has-this") == []
    # Name (exact) and query_text (a substring of the name, any case).
    assert await _ids(client, name="Agent-0004") == [ids[4]]
    assert await _ids(client, name="agent-0004") == []
    assert await _ids(client, order="asc", query_text="AGENT-001") == ids[10:12]
    assert await _ids(client, query_text="0001", tags="odd") == [ids[1]]


async def test_bad_cursors_and_limits_name_the_field(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    made = await _agents(redis_client, 4)
    for field in ("after", "before"):
        response = await client.get("/v1/agents/", params={field: "agent-nope"})
        assert response.status_code == 404, response.text
        assert field in response.text and "agent-nope" in response.text
    # A cursor outside the filtered list is unknown to that list, as Letta's ids are.
    response = await client.get("/v1/agents/", params={"tags": "odd", "after": made[0].id})
    assert response.status_code == 404 and "after" in response.text
    response = await client.get("/v1/agents/", params={"limit": -1})
    assert response.status_code == 422 and "limit" in response.text


async def test_agents_stored_before_the_creation_index_are_listed(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    """Data from a release without the index (no ``agents-by-created``) lists as before: the
    first list indexes it."""
    made = await _agents(redis_client, 6)
    await redis_client.delete("mg:agents-by-created")
    assert await _ids(client, order="asc") == [a.id for a in made]
    assert await _ids(client, tags="odd", limit=2) == [made[5].id, made[3].id]
    await client.delete(f"/v1/agents/{made[0].id}")
    assert await _ids(client, order="asc", limit=1) == [made[1].id]
