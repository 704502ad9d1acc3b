"""Agents, core memory blocks and agent tools over HTTP."""

from __future__ import annotations

import httpx

from tests.api.conftest import make_agent


async def test_create_returns_a_letta_agent_state(client: httpx.AsyncClient) -> None:
    agent = await make_agent(
        client,
        model="openai/gpt-4o-mini",
        embedding="hashing/384",
        tags=["team"],
        system="You are Sam.",
        tool_rules=[{"type": "exit_loop", "tool_name": "send_message"}],
    )
    for field in ("id", "name", "system", "agent_type", "llm_config", "embedding_config"):
        assert field in agent
    for field in ("memory", "blocks", "tools", "sources", "tags", "tool_rules", "message_ids"):
        assert field in agent
    assert agent["llm_config"]["model"] == "gpt-4o-mini"
    assert agent["llm_config"]["handle"] == "openai/gpt-4o-mini"
    assert agent["llm_config"]["model_endpoint_type"] == "openai"
    assert agent["embedding_config"]["embedding_dim"] == 384
    assert [b["label"] for b in agent["memory"]["blocks"]] == ["human"]
    assert "send_message" in [t["name"] for t in agent["tools"]]
    assert agent["tool_rules"] == [{"type": "exit_loop", "tool_name": "send_message"}]
    assert agent["tags"] == ["team"]


async def test_list_retrieve_modify_delete(client: httpx.AsyncClient) -> None:
    first = await make_agent(client, name="a1", tags=["x"])
    second = await make_agent(client, name="a2")
    listed = (await client.get("/v1/agents/")).json()
    assert [a["name"] for a in listed] == ["a2", "a1"]  # newest first, as Letta
    page = (await client.get("/v1/agents/", params={"order": "asc", "limit": 1})).json()
    assert [a["name"] for a in page] == ["a1"]
    after = (await client.get("/v1/agents/", params={"order": "asc", "after": first["id"]})).json()
    assert [a["name"] for a in after] == ["a2"]
    tagged = (await client.get("/v1/agents/", params={"tags": "x"})).json()
    assert [a["id"] for a in tagged] == [first["id"]]
    got = (await client.get(f"/v1/agents/{second['id']}")).json()
    assert got["name"] == "a2"
    changed = await client.patch(
        f"/v1/agents/{second['id']}", json={"name": "a3", "tags": ["y"], "model": "openai/other"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "a3"
    assert changed.json()["llm_config"]["model"] == "other"
    assert (await client.delete(f"/v1/agents/{second['id']}")).status_code == 200
    assert (await client.get(f"/v1/agents/{second['id']}")).status_code == 404


async def test_unknown_ids_are_404(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/v1/agents/agent-nope"),
        ("PATCH", "/v1/agents/agent-nope"),
        ("DELETE", "/v1/agents/agent-nope"),
        ("GET", "/v1/agents/agent-nope/core-memory/blocks"),
        ("GET", "/v1/agents/agent-nope/messages"),
        ("GET", "/v1/blocks/block-nope"),
        ("GET", "/v1/tools/tool-nope"),
        ("GET", "/v1/runs/run-nope"),
    ]:
        response = await client.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 404, (path, response.text)
        assert "detail" in response.json()


async def test_bad_bodies_name_the_field(client: httpx.AsyncClient) -> None:
    wrong_type = await client.post("/v1/agents/", json={"name": 5})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["detail"][0]["loc"] == ["body", "name"]
    nested = await client.post("/v1/agents/", json={"memory_blocks": [{"value": "x"}]})
    assert nested.status_code == 422
    assert "label" in nested.json()["detail"][0]["msg"]
    bad_rule = await client.post("/v1/agents/", json={"tool_rules": [{"type": "nope"}]})
    assert bad_rule.status_code == 422
    assert bad_rule.json()["detail"][0]["loc"][:2] == ["body", "tool_rules"]
    unknown_tool = await client.post("/v1/agents/", json={"tools": ["no_such_tool"]})
    assert unknown_tool.status_code == 400
    assert unknown_tool.json()["detail"].startswith("tools: unknown tools")
    rule_on_missing = await client.post(
        "/v1/agents/", json={"tool_rules": [{"type": "run_first", "tool_name": "ghost"}]}
    )
    assert rule_on_missing.status_code == 400
    assert rule_on_missing.json()["detail"].startswith("tool_rules:")
    not_json = await client.post(
        "/v1/agents/", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert 400 <= not_json.status_code < 500
    bad_query = await client.get("/v1/agents/", params={"limit": "many"})
    assert bad_query.status_code == 422
    assert bad_query.json()["detail"][0]["loc"] == ["query", "limit"]
    bad_embedding = await client.post("/v1/agents/", json={"embedding": "nowhere/else"})
    assert bad_embedding.status_code == 400
    assert bad_embedding.json()["detail"].startswith("embedding:")


async def test_duplicate_name_is_409(client: httpx.AsyncClient) -> None:
    await make_agent(client, name="twin")
    response = await client.post("/v1/agents/", json={"name": "twin"})
    assert response.status_code == 409


async def test_core_memory_blocks(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    base = f"/v1/agents/{agent['id']}/core-memory"
    assert [b["label"] for b in (await client.get(f"{base}/blocks")).json()] == ["human"]
    assert (await client.get(f"{base}/blocks/human")).json()["value"] == "Name: Bob"
    assert (await client.get(f"{base}/blocks/nope")).status_code == 404
    changed = await client.patch(f"{base}/blocks/human", json={"value": "Name: Alice"})
    assert changed.json()["value"] == "Name: Alice"
    too_long = await client.patch(f"{base}/blocks/human", json={"value": "x", "limit": -1})
    assert too_long.status_code == 400
    shared = (await client.post("/v1/blocks/", json={"label": "team", "value": "we"})).json()
    attached = await client.patch(f"{base}/blocks/attach/{shared['id']}")
    assert [b["label"] for b in attached.json()["memory"]["blocks"]] == ["human", "team"]
    again = (await client.post("/v1/blocks/", json={"label": "team", "value": "dup"})).json()
    clash = await client.patch(f"{base}/blocks/attach/{again['id']}")
    assert clash.status_code == 409
    detached = await client.patch(f"{base}/blocks/detach/{shared['id']}")
    assert [b["label"] for b in detached.json()["blocks"]] == ["human"]
    assert (await client.get(f"{base}")).json()["blocks"][0]["label"] == "human"
    # the detached block lives on, and survives deleting the agent
    await client.delete(f"/v1/agents/{agent['id']}")
    assert (await client.get(f"/v1/blocks/{shared['id']}")).status_code == 200


async def test_agent_tools_attach_detach(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client, include_base_tools=False, tools=["send_message"])
    tools = (await client.get("/v1/tools/", params={"name": "conversation_search"})).json()
    tool_id = tools[0]["id"]
    path = f"/v1/agents/{agent['id']}/tools"
    attached = (await client.patch(f"{path}/attach/{tool_id}")).json()
    assert [t["name"] for t in attached["tools"]] == ["send_message", "conversation_search"]
    listed = (await client.get(path)).json()
    assert [t["name"] for t in listed] == ["send_message", "conversation_search"]
    assert (await client.get(path, params={"after": listed[-1]["id"]})).json() == []
    detached = (await client.patch(f"{path}/detach/{tool_id}")).json()
    assert [t["name"] for t in detached["tools"]] == ["send_message"]
    by_id = await make_agent(client, name="by-id", include_base_tools=False, tool_ids=[tool_id])
    assert [t["name"] for t in by_id["tools"]] == ["conversation_search"]


async def test_malformed_json_is_named_as_such(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    for path in ("/v1/agents/", f"/v1/agents/{agent['id']}/messages"):
        answer = await client.post(
            path, content=b'{"messages": [', headers={"content-type": "application/json"}
        )
        assert answer.status_code == 400, answer.text
        detail = answer.json()["detail"]
        assert detail.startswith("the request body is not valid JSON"), detail
        assert "truncated" in detail  # msgspec's own words stay, with where it failed


async def test_agent_names_are_free_text_but_not_blank_padded_or_control(
    client: httpx.AsyncClient,
) -> None:
    spaced = await make_agent(client, name="Support agent 2!")
    assert spaced["name"] == "Support agent 2!"
    for name, complaint in [
        ("   ", "non-empty name"),
        (" padded", "starts or ends with spaces"),
        ("two\nlines", "control characters"),
        ("x" * 257, "at most 256"),
    ]:
        answer = await client.post("/v1/agents/", json={"name": name})
        assert answer.status_code == 400, (name, answer.text)
        assert complaint in answer.json()["detail"]


async def test_the_docs_page_and_its_assets_come_from_memgrid_itself(
    client: httpx.AsyncClient,
) -> None:
    import re

    page = await client.get("/schema")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    referenced = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert referenced, page.text[:500]
    for url in referenced:
        assert url.startswith("/"), f"the docs page references another host: {url}"
        asset = await client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert "http://" not in page.text.split("<body", 1)[0]
    assert "https://" not in page.text.split("<body", 1)[0]
