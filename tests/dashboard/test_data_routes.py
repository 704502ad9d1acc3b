"""The dashboard's read routes: the agents list pages by name and searches without reading
every agent, block history names its sharers, and bad input is a 4xx naming the field."""

from __future__ import annotations

import httpx

from tests.api.conftest import make_agent, say_to


async def test_agents_page_by_name_with_search_and_activity(client: httpx.AsyncClient) -> None:
    made = [await make_agent(client, name=f"agent-{n}") for n in (3, 1, 2)]
    await say_to(client, made[0]["id"], "hi")
    first = (await client.get("/dashboard/api/agents", params={"limit": 2})).json()
    assert [a["name"] for a in first["agents"]] == ["agent-1", "agent-2"]
    assert (first["total"], first["matching"]) == (3, 3)
    after = first["agents"][-1]["id"]
    rest = (await client.get("/dashboard/api/agents", params={"after": after})).json()
    [third] = rest["agents"]
    assert third["name"] == "agent-3"
    assert third["runs_in_flight"] == 0 and third["inbox_depth"] == 0
    assert third["last_activity"] >= third["created_at"]
    found = (await client.get("/dashboard/api/agents", params={"query_text": "NT-2"})).json()
    assert [a["name"] for a in found["agents"]] == ["agent-2"] and found["matching"] == 1


async def test_bad_input_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard/api/agents", params={"limit": 0})
    assert response.status_code == 422 and "limit" in response.text
    response = await client.get("/dashboard/api/agents", params={"after": "agent-nope"})
    assert response.status_code == 404 and "after" in response.text
    response = await client.post("/dashboard/api/dead-letters/1-1/retry")
    assert response.status_code == 404
    response = await client.get("/dashboard/api/runs/run-nope/trace")
    assert response.status_code == 404
    response = await client.get("/dashboard/api/blocks/block-nope/history")
    assert response.status_code == 404


async def test_block_history_names_the_agents_sharing_it(client: httpx.AsyncClient) -> None:
    block = (await client.post("/v1/blocks/", json={"label": "team", "value": "v1"})).json()
    ann = await make_agent(client, name="ann", block_ids=[block["id"]])
    await make_agent(client, name="ben", block_ids=[block["id"]])
    path = f"/v1/agents/{ann['id']}/core-memory/blocks/team"
    assert (await client.patch(path, json={"value": "v2"})).status_code == 200
    history = (await client.get(f"/dashboard/api/blocks/{block['id']}/history")).json()
    assert [(e["version"], e["value"]) for e in history["edits"]] == [(2, "v2"), (1, "v1")]
    assert sorted(a["name"] for a in history["agents"]) == ["ann", "ben"]
    assert history["agent_count"] == 2


async def test_agents_list_shows_each_agents_type(client: httpx.AsyncClient) -> None:
    await make_agent(client, name="classic")
    await make_agent(client, name="plain", agent_type="letta_v1_agent")
    listed = (await client.get("/dashboard/api/agents")).json()["agents"]
    assert {a["name"]: a["agent_type"] for a in listed} == {
        "classic": "memgpt_agent",
        "plain": "letta_v1_agent",
    }
