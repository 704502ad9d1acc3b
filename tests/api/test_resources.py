"""Blocks, tools (upserted from source and run in the sandbox), archival memory, OpenAPI."""

from __future__ import annotations

import json

import httpx
import pytest

from agents.scripted import ChatRequest, Outcome, Policy, say, tool_call
from tests.api.conftest import make_agent, say_to

DICE = '''
def roll_dice(sides: int = 6) -> str:
    """Roll a die.

    Args:
        sides: how many sides the die has.
    """
    return f"rolled {sides}"
'''


def dice_policy(request: ChatRequest) -> Outcome:
    last = request.last_message
    if last is not None and last.role == "tool":
        return say(f"result: {last.text}")
    return tool_call("roll_dice", sides=20, request_heartbeat=True)


@pytest.fixture
def policy() -> Policy:
    return dice_policy


async def test_blocks_crud(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/blocks/", json={"label": "team", "value": "we ship"})
    assert created.status_code == 200, created.text
    block = created.json()
    assert block["limit"] >= 7
    assert block["id"].startswith("block-")
    assert (await client.get(f"/v1/blocks/{block['id']}")).json()["value"] == "we ship"
    changed = await client.patch(f"/v1/blocks/{block['id']}", json={"value": "we test"})
    assert changed.json()["value"] == "we test"
    listed = (await client.get("/v1/blocks/", params={"label": "team"})).json()
    assert [b["id"] for b in listed] == [block["id"]]
    assert (await client.get("/v1/blocks/", params={"after": block["id"]})).json() == []
    missing = await client.post("/v1/blocks/", json={"label": "x"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "value"]
    agent = await make_agent(client, block_ids=[block["id"]])
    await _letta_block_filters(client, block["id"])
    assert (await client.delete(f"/v1/blocks/{block['id']}")).status_code == 200
    assert (await client.get(f"/v1/blocks/{block['id']}")).status_code == 404
    after = (await client.get(f"/v1/agents/{agent['id']}")).json()
    assert [b["label"] for b in after["blocks"]] == ["human"]


async def _letta_block_filters(client: httpx.AsyncClient, attached: str) -> None:
    """``GET /v1/blocks/`` with Letta's filters, besides a block ``attached`` to one agent
    (labelled "team", value "we test") and the agent's own "human" block."""
    template = {
        "label": "Persona-Draft",
        "value": "Loves Tea",
        "description": "The Default persona",
        "template_name": "draft",
        "is_template": True,
        "tags": ["x", "y"],
        "project_id": "proj-1",
    }
    t = (await client.post("/v1/blocks/", json=template)).json()["id"]
    notes = {"label": "notes", "value": "tea and cake", "name": "old-style", "tags": ["y"]}
    made = (await client.post("/v1/blocks/", json=notes)).json()
    assert (made["name"], made["template_name"], made["tags"]) == ("old-style", "old-style", ["y"])
    n = made["id"]

    async def listed(**params: object) -> list[str]:
        response = await client.get("/v1/blocks/", params=params)
        assert response.status_code == 200, response.text
        return [b["id"] for b in response.json()]

    assert t not in await listed()  # templates only when asked for (Letta's default)
    assert await listed(templates_only="true") == [t]
    assert await listed(value_search="TEA") == [n]
    assert await listed(value_search="tea", templates_only="true") == [t]
    assert await listed(label_search="persona", templates_only="true") == [t]
    assert await listed(description_search="default", templates_only="true") == [t]
    assert await listed(label="notes", label_search="nothing like it") == [n]
    assert await listed(name="old-style") == [n]
    assert await listed(name="draft", templates_only="true") == [t]
    assert await listed(tags=["y"]) == [n]
    assert await listed(tags=["x", "y"], match_all_tags="true", templates_only="true") == [t]
    assert await listed(tags=["x", "z"], match_all_tags="true", templates_only="true") == []
    assert await listed(project_id="proj-1", templates_only="true") == [t]
    assert await listed(project_id="proj-1") == []
    assert await listed(value_search="we test", connected_to_agents_count_gt=0) == [attached]
    assert await listed(value_search="we test", connected_to_agents_count_lt=1) == []
    assert await listed(tags=["y"], connected_to_agents_count_eq=[0, 2]) == [n]
    assert await listed(identity_id="identity-1") == []  # memgrid has no identities
    assert await listed(order_by="created_at", order="desc", limit=1) == [n]
    refused = await client.get("/v1/blocks/", params={"order_by": "label"})
    assert refused.status_code == 422 and "order_by" in refused.text
    for block_id in (t, n):
        assert (await client.delete(f"/v1/blocks/{block_id}")).status_code == 200


async def test_tools_upsert_from_source_then_an_agent_calls_it(client: httpx.AsyncClient) -> None:
    created = await client.put("/v1/tools/", json={"source_code": DICE, "tags": ["fun"]})
    assert created.status_code == 200, created.text
    tool = created.json()
    assert tool["name"] == "roll_dice"
    assert tool["tool_type"] == "custom"
    assert tool["json_schema"]["parameters"]["properties"]["sides"]["type"] == "integer"
    again = (await client.put("/v1/tools/", json={"source_code": DICE})).json()
    assert again["id"] == tool["id"]
    assert (await client.post("/v1/tools/", json={"source_code": DICE})).status_code == 409
    assert (await client.get(f"/v1/tools/{tool['id']}")).json()["name"] == "roll_dice"
    names = [t["name"] for t in (await client.get("/v1/tools/")).json()]
    assert "roll_dice" in names
    assert "send_message" in names
    agent = await make_agent(client, tools=["roll_dice"])
    result = await say_to(client, agent["id"], "roll a d20")
    returns = [m for m in result["messages"] if m["message_type"] == "tool_return_message"]
    assert returns[0]["name"] == "roll_dice"
    assert json.loads(returns[0]["tool_return"])["message"] == "rolled 20"  # ran in the sandbox
    assert returns[0]["status"] == "success"
    patched = await client.patch(f"/v1/tools/{tool['id']}", json={"description": "d20"})
    assert patched.json()["description"] == "d20"
    assert (await client.delete(f"/v1/tools/{tool['id']}")).status_code == 200
    assert (await client.get(f"/v1/tools/{tool['id']}")).status_code == 404


async def test_tool_errors(client: httpx.AsyncClient) -> None:
    broken = await client.put("/v1/tools/", json={"source_code": "def f(:\n  pass"})
    assert broken.status_code == 400
    assert broken.json()["detail"].startswith("source_code:")
    variadic = await client.put("/v1/tools/", json={"source_code": "def f(*a):\n  pass"})
    assert variadic.status_code == 400
    base = (await client.get("/v1/tools/", params={"name": "send_message"})).json()[0]
    assert (await client.delete(f"/v1/tools/{base['id']}")).status_code == 409
    shadow = "def send_message(message: str) -> str:\n    return message\n"
    assert (await client.put("/v1/tools/", json={"source_code": shadow})).status_code == 409
    assert (await client.post("/v1/tools/", json={})).status_code == 422


async def test_archival_memory(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    path = f"/v1/agents/{agent['id']}/archival-memory"
    texts = ["the sky is blue", "grass is green", "coffee is hot"]
    ids = []
    for text in texts:
        created = await client.post(path, json={"text": text, "tags": ["fact"]})
        assert created.status_code == 200, created.text
        passage = created.json()[0]
        assert passage["text"] == text
        assert passage["embedding_config"]["embedding_dim"] == 384
        ids.append(passage["id"])
    listed = (await client.get(path)).json()
    assert [p["text"] for p in listed] == texts
    paged = (await client.get(path, params={"after": ids[0], "limit": 1})).json()
    assert [p["id"] for p in paged] == [ids[1]]
    newest = (await client.get(path, params={"ascending": "false", "limit": 1})).json()
    assert [p["id"] for p in newest] == [ids[2]]
    search = (await client.get(f"{path}/search", params={"query": "sky blue"})).json()
    assert search["count"] == len(search["results"]) >= 1
    assert search["results"][0]["content"] == "the sky is blue"
    tagged = (await client.get(f"{path}/search", params={"query": "sky", "tags": "nope"})).json()
    assert tagged["count"] == 0
    assert (await client.delete(f"{path}/{ids[0]}")).status_code == 200
    assert (await client.delete(f"{path}/{ids[0]}")).status_code == 404
    assert [p["id"] for p in (await client.get(path)).json()] == ids[1:]
    assert (await client.post(path, json={"text": "  "})).status_code == 422
    assert (await client.get(f"{path}/search")).status_code == 422


async def test_openapi_is_generated_from_the_structs(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert "/v1/agents/{agent_id}/messages/stream" in document["paths"]
    schemas = document["components"]["schemas"]
    assert "CreateAgentIn" in schemas
    assert "AgentState" in schemas
