"""``/v1/archives`` over real HTTP: archives shared by agents (issue #12, item 4).

An agent attached to an archive finds the archive's passages with ``archival_memory_search``
(the scripted model calls it) and through its archival-memory search routes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from agents.archival_rpc import RemoteArchival
from agents.scripted import Policy, ScriptedModel
from tests._util import archival_policy
from tests.api.conftest import api_client, make_agent, model_env, say_to
from tests.api.test_embedding_sizes import _engine_owned_elsewhere
from tests.api.test_retention import _keys_of

FACT = "The launch code for project Nimbus is 7731."
DOOMED = {"text": "Doomed", "tags": ["x"]}


@pytest.fixture
def policy() -> Policy:
    return archival_policy


async def _archive(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/archives/", json={"name": "handbook", **body})
    assert response.status_code == 200, response.text
    archive: dict[str, Any] = response.json()
    return archive


async def _search(client: httpx.AsyncClient, agent_id: str, query: str) -> list[str]:
    response = await client.get(
        f"/v1/agents/{agent_id}/archival-memory/search", params={"query": query}
    )
    assert response.status_code == 200, response.text
    return [r["content"] for r in response.json()["results"]]


async def test_archive_lifecycle(client: httpx.AsyncClient) -> None:
    archive = await _archive(client, description="company facts")
    assert archive["id"].startswith("archive-")
    assert archive["embedding_config"]["embedding_model"] == "hashing/384"
    assert archive["vector_db_provider"] == "native" and archive["created_at"]
    other = await _archive(client, name="other")
    listed = (await client.get("/v1/archives/")).json()
    assert [a["id"] for a in listed] == [other["id"], archive["id"]]  # newest first
    asc = (await client.get("/v1/archives/", params={"order": "asc", "name": "handbook"})).json()
    assert [a["id"] for a in asc] == [archive["id"]]
    renamed = await client.patch(f"/v1/archives/{archive['id']}", json={"name": "manual"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "manual"
    got = (await client.get(f"/v1/archives/{archive['id']}")).json()
    assert (got["name"], got["description"]) == ("manual", "company facts")

    one = await client.post(
        f"/v1/archives/{archive['id']}/passages", json={"text": FACT, "tags": ["ops"]}
    )
    assert one.status_code == 200, one.text
    assert one.json()["archive_id"] == archive["id"] and one.json()["tags"] == ["ops"]
    batch = await client.post(
        f"/v1/archives/{archive['id']}/passages/batch",
        json={
            "passages": [{"text": "The cafeteria opens at 8."}, {"text": "Doomed", "tags": ["x"]}]
        },
    )
    assert batch.status_code == 200, batch.text
    assert [p["text"] for p in batch.json()] == ["The cafeteria opens at 8.", "Doomed"]
    doomed = batch.json()[1]["id"]
    gone = await client.delete(f"/v1/archives/{archive['id']}/passages/{doomed}")
    assert gone.status_code == 204
    again = await client.delete(f"/v1/archives/{archive['id']}/passages/{doomed}")
    assert again.status_code == 404 and "passage_id" in again.json()["detail"]

    agent = await make_agent(client)
    assert FACT not in await _search(client, agent["id"], "launch code Nimbus")
    attach = f"/v1/agents/{agent['id']}/archives/attach/{archive['id']}"
    assert (await client.patch(attach)).status_code == 200
    own = await client.post(
        f"/v1/agents/{agent['id']}/archival-memory", json={"text": "Nimbus launch is Friday."}
    )
    assert own.status_code == 200
    found = await _search(client, agent["id"], "launch code Nimbus")
    assert FACT in found and "Nimbus launch is Friday." in found and "Doomed" not in found
    nearest = await client.get(
        f"/v1/agents/{agent['id']}/archival-memory", params={"search": "launch code Nimbus"}
    )
    assert FACT in [p["text"] for p in nearest.json()]
    listed = (await client.get(f"/v1/agents/{agent['id']}/archival-memory")).json()
    assert [(p["text"], p["archive_id"]) for p in listed] == [
        (FACT, archive["id"]),
        ("The cafeteria opens at 8.", archive["id"]),
        ("Nimbus launch is Friday.", None),
    ]
    after = f"/v1/agents/{agent['id']}/archival-memory?after={listed[0]['id']}&limit=1"
    assert [p["text"] for p in (await client.get(after)).json()] == [listed[1]["text"]]
    # The agent's own routes delete only its own passages.
    foreign = await client.delete(f"/v1/agents/{agent['id']}/archival-memory/{listed[0]['id']}")
    assert foreign.status_code == 404
    by_agent = (await client.get("/v1/archives/", params={"agent_id": agent["id"]})).json()
    assert [a["id"] for a in by_agent] == [archive["id"]]
    agents = (await client.get(f"/v1/archives/{archive['id']}/agents")).json()
    assert [a["id"] for a in agents] == [agent["id"]]

    detach = f"/v1/agents/{agent['id']}/archives/detach/{archive['id']}"
    assert (await client.patch(detach)).status_code == 200
    assert FACT not in await _search(client, agent["id"], "launch code Nimbus")
    assert (await client.patch(attach)).status_code == 200

    # Deleting an agent leaves its archives; deleting an archive detaches it everywhere.
    assert (await client.delete(f"/v1/agents/{agent['id']}")).status_code == 200
    assert (await client.get(f"/v1/archives/{archive['id']}/agents")).json() == []
    second = await make_agent(client, name="second")
    await client.patch(f"/v1/agents/{second['id']}/archives/attach/{archive['id']}")
    assert FACT in await _search(client, second["id"], "launch code Nimbus")
    assert (await client.delete(f"/v1/archives/{archive['id']}")).status_code == 204
    assert (await client.get(f"/v1/archives/{archive['id']}")).status_code == 404
    assert FACT not in await _search(client, second["id"], "launch code Nimbus")
    assert (await client.get("/v1/archives/", params={"agent_id": second["id"]})).json() == []
    assert [a["id"] for a in (await client.get("/v1/archives/")).json()] == [other["id"]]


async def test_an_agent_finds_an_archive_passage_with_archival_memory_search(
    client: httpx.AsyncClient,
) -> None:
    archive = await _archive(client)
    await client.post(f"/v1/archives/{archive['id']}/passages", json={"text": FACT})
    agent = await make_agent(client)
    await client.patch(f"/v1/agents/{agent['id']}/archives/attach/{archive['id']}")
    result = await say_to(client, agent["id"], "recall: launch code for project Nimbus")
    returns = [m for m in result["messages"] if m["message_type"] == "tool_return_message"]
    assert returns and FACT in returns[0]["tool_return"]
    # archival_memory_insert writes to the agent's own passages, not to the archive.
    await say_to(client, agent["id"], "remember: Nimbus ships in March.")
    listed = (await client.get(f"/v1/agents/{agent['id']}/archival-memory")).json()
    own = [p["text"] for p in listed if p["archive_id"] is None]
    assert own == ["Nimbus ships in March."]
    shared = (await client.get(f"/v1/archives/{archive['id']}/agents")).json()
    assert [a["id"] for a in shared] == [agent["id"]]
    found = json.dumps(await _search(client, agent["id"], "Nimbus"))
    assert FACT in found and "March" in found


async def test_refusals_name_the_field(client: httpx.AsyncClient) -> None:
    empty = await client.post("/v1/archives/", json={"name": " "})
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "name"]
    bad = await client.post("/v1/archives/", json={"name": "x", "embedding": "nope/nope"})
    assert bad.status_code == 400 and "embedding" in bad.text
    small = await _archive(client, name="small", embedding="hashing/64")
    agent = await make_agent(client)
    refused = await client.patch(f"/v1/agents/{agent['id']}/archives/attach/{small['id']}")
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert "64-dimensional" in detail and "384-dimensional" in detail
    missing = "archive-00000000-0000-4000-8000-000000000000"
    assert (await client.get(f"/v1/archives/{missing}")).status_code == 404
    assert (
        await client.patch(f"/v1/agents/{agent['id']}/archives/attach/{missing}")
    ).status_code == 404
    text = await client.post(f"/v1/archives/{small['id']}/passages", json={"text": ""})
    assert text.status_code == 422
    batch = await client.post(
        f"/v1/archives/{small['id']}/passages/batch", json={"passages": [{"text": "ok"}, {}]}
    )
    assert batch.status_code in (400, 422)
    # An agent with an attached archive keeps the archive's embedding.
    archive = await _archive(client)
    await client.patch(f"/v1/agents/{agent['id']}/archives/attach/{archive['id']}")
    changed = await client.patch(f"/v1/agents/{agent['id']}", json={"embedding": "hashing/64"})
    assert changed.status_code == 409 and archive["id"] in changed.text


async def test_archives_are_searched_where_another_process_owns_the_engine(
    redis_url: str,
    redis_client: aioredis.Redis,
    memgrid_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under ``memgrid up`` the API reaches the embedded engine over Redis: the archive ids
    travel with the search request."""
    async with ScriptedModel.serve(archival_policy) as model:
        model_env(monkeypatch, model.base_url)
        async with _engine_owned_elsewhere(redis_client), api_client(redis_url) as client:
            archive = await _archive(client)
            await client.post(f"/v1/archives/{archive['id']}/passages", json={"text": FACT})
            agent = await make_agent(client)
            await client.patch(f"/v1/agents/{agent['id']}/archives/attach/{archive['id']}")
            assert FACT in await _search(client, agent["id"], "launch code Nimbus")
            listed = await client.get(f"/v1/agents/{agent['id']}/archival-memory")
            assert [p["text"] for p in listed.json()] == [FACT]
            engine = RemoteArchival(redis_client, timeout_s=10, stats_ttl_s=0)
            assert await engine.count(archive["id"]) == 1
            assert (await client.delete(f"/v1/archives/{archive['id']}")).status_code == 204
            assert FACT not in await _search(client, agent["id"], "launch code Nimbus")
            assert await engine.count(archive["id"]) == 0  # its passages went with it


async def test_deletes_leave_no_keys_and_keep_what_they_should(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    archive = await _archive(client)
    await client.post(f"/v1/archives/{archive['id']}/passages", json={"text": FACT})
    agent = await make_agent(client)
    await client.patch(f"/v1/agents/{agent['id']}/archives/attach/{archive['id']}")
    assert (await client.delete(f"/v1/agents/{agent['id']}")).status_code == 200
    assert await _keys_of(redis_client, agent["id"]) == []  # its archive links went too
    reader = await make_agent(client, name="reader")
    await client.patch(f"/v1/agents/{reader['id']}/archives/attach/{archive['id']}")
    assert FACT in await _search(client, reader["id"], "Nimbus launch code")  # kept
    assert (await client.delete(f"/v1/archives/{archive['id']}")).status_code == 204
    assert await _keys_of(redis_client, archive["id"]) == []
    assert await redis_client.sismember("mg:archives", archive["id"]) == 0


async def test_the_context_counts_the_archives_passages(client: httpx.AsyncClient) -> None:
    """What the agent is told about its archival memory (its size) includes its archives."""
    archive = await _archive(client)
    batch = {"passages": [{"text": FACT}, {"text": "The cafeteria opens at 8."}]}
    await client.post(f"/v1/archives/{archive['id']}/passages/batch", json=batch)
    agent = await make_agent(client)
    await client.post(f"/v1/agents/{agent['id']}/archival-memory", json={"text": "own"})
    before = (await client.get(f"/v1/agents/{agent['id']}/context")).json()
    assert before["num_archival_memory"] == 1
    await client.patch(f"/v1/agents/{agent['id']}/archives/attach/{archive['id']}")
    after = (await client.get(f"/v1/agents/{agent['id']}/context")).json()
    assert after["num_archival_memory"] == 3
