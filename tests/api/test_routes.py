"""The routes Letta's clients and tools call besides messages: models, an agent's context
window, a run's steps, cancelling an agent's runs, and tags (httpx; the official clients in
:mod:`tests.api.test_letta_clients`)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from agents.scripted import ChatRequest, Outcome, Policy, echo, tool_call
from bus import keys as bus_keys
from tests.api.conftest import (
    Hold,
    Served,
    api_client,
    make_agent,
    model_env,
    say_to,
    sse_frames,
)


@pytest.fixture
def policy(hold: Hold) -> Policy:
    """While held, each call stops until released and then asks for another step: a run that
    would go on to its step limit unless cancelled."""

    async def held(request: ChatRequest) -> Outcome:
        if not hold.active:
            return echo(request)
        hold.entered.set()
        await hold.release.wait()
        return tool_call("conversation_search", query="nothing", request_heartbeat=True)

    return held


async def _run_end(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    """The run's frames, once it has ended (its SSE stream closes at its end)."""
    with anyio.fail_after(20):
        frames = await sse_frames(client, f"/v1/runs/{run_id}/stream")
    assert frames[-1] == "[DONE]"
    return [f for f in frames[:-1] if isinstance(f, dict)]


async def test_models_list_the_endpoint_and_the_embedders(client: httpx.AsyncClient) -> None:
    models = (await client.get("/v1/models/")).json()
    handles = [m["handle"] for m in models]
    assert "openai/gpt-4o-mini" in handles and "openai/scripted" in handles
    assert "openai/text-embedding-3-small" not in handles
    mini = models[handles.index("openai/gpt-4o-mini")]
    assert mini["model"] == mini["name"] == "gpt-4o-mini"
    assert mini["context_window"] == mini["max_context_window"] == 128_000
    assert mini["model_endpoint_type"] == "openai" and mini["model_endpoint"].endswith("/v1")
    embedders = {e["handle"]: e for e in (await client.get("/v1/models/embedding")).json()}
    assert set(embedders) >= {
        "openai/text-embedding-3-small",
        "hashing/384",
        "local/all-MiniLM-L6-v2",
    }
    local = embedders["local/all-MiniLM-L6-v2"]
    assert local["embedding_dim"] == 384 and local["embedding_endpoint_type"] == "hugging-face"
    assert embedders["hashing/384"]["embedding_dim"] == 384


async def test_models_without_a_reachable_endpoint_are_the_configured_ones(
    redis_client: aioredis.Redis,
    redis_url: str,
    memgrid_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model_env(monkeypatch, f"http://127.0.0.1:{port}/v1", embedding="hashing/256")
    monkeypatch.setenv("MEMGRID_MODEL", "openai/my-model")
    async with api_client(redis_url, client_timeout_s=30) as http:
        models = (await http.get("/v1/models/")).json()
        assert [m["handle"] for m in models] == ["openai/my-model"]
        embedders = (await http.get("/v1/models/embedding")).json()
        assert [(e["handle"], e["embedding_dim"]) for e in embedders] == [
            ("hashing/256", 256),
            ("local/all-MiniLM-L6-v2", 384),
            ("hashing/384", 384),
        ]


async def test_context_window_overview(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client, context_window_limit=20_000)
    await say_to(client, agent["id"], "remember the teapot")
    overview = (await client.get(f"/v1/agents/{agent['id']}/context")).json()
    assert overview["context_window_size_max"] == 20_000
    assert "Name: Bob" in overview["core_memory"] and overview["num_tokens_core_memory"] > 0
    assert overview["num_messages"] == len(overview["messages"]) + 1
    assert any("remember the teapot" in str(m.get("content")) for m in overview["messages"])
    sections = [
        "num_tokens_system",
        "num_tokens_core_memory",
        "num_tokens_external_memory_summary",
        "num_tokens_summary_memory",
        "num_tokens_functions_definitions",
        "num_tokens_messages",
    ]
    assert overview["num_tokens_functions_definitions"] > 0
    assert 0 < overview["context_window_size_current"] <= sum(overview[s] for s in sections) + 64
    missing = await client.get("/v1/agents/agent-nope/context")
    assert missing.status_code == 404 and "agent-nope" in missing.json()["detail"]


async def test_tags_of_all_agents(client: httpx.AsyncClient) -> None:
    await make_agent(client, tags=["sales", "eu"])
    await make_agent(client, name="other", tags=["eu", "support"])
    assert (await client.get("/v1/tags/")).json() == ["eu", "sales", "support"]
    assert (await client.get("/v1/tags/", params={"query_text": "S"})).json() == [
        "sales",
        "support",
    ]
    assert (await client.get("/v1/tags/", params={"order": "desc", "limit": 2})).json() == [
        "support",
        "sales",
    ]
    assert (await client.get("/v1/tags/", params={"after": "eu"})).json() == ["sales", "support"]


async def test_a_runs_steps(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    reply = await say_to(client, agent["id"], "one step")
    run_id, step_id = reply["messages"][0]["run_id"], reply["messages"][0]["step_id"]
    steps = (await client.get(f"/v1/runs/{run_id}/steps")).json()
    assert [s["id"] for s in steps] == [step_id]
    step = steps[0]
    assert step["run_id"] == run_id and step["agent_id"] == agent["id"]
    assert step["model_handle"] == agent["model"] and step["stop_reason"] == "end_turn"
    assert step["total_tokens"] == reply["usage"]["total_tokens"] > 0
    assert (await client.get("/v1/runs/run-nope/steps")).status_code == 404
    assert (await client.get(f"/v1/steps/{step_id}")).json() == step
    messages = (await client.get(f"/v1/steps/{step_id}/messages")).json()
    assert messages == reply["messages"]  # all of the step's, in order
    for unknown in (f"step-{run_id}-7", "step-run-nope-0", "nonsense"):
        missing = await client.get(f"/v1/steps/{unknown}")
        assert missing.status_code == 404 and unknown in missing.json()["detail"], unknown


async def test_cancel_stops_the_running_run_and_the_queued_one(
    client: httpx.AsyncClient, served: Served, hold: Hold, redis_client: aioredis.Redis
) -> None:
    agent = await make_agent(client)
    hold.active = True
    path = f"/v1/agents/{agent['id']}/messages"
    running = (await client.post(f"{path}/async", json={"input": "spin"})).json()["id"]
    queued = (await client.post(f"{path}/async", json={"input": "queued"})).json()["id"]
    with anyio.fail_after(20):
        await hold.entered.wait()  # the first run is in its first model call
    answer = await client.post(f"{path}/cancel", json={})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {running: "cancelled", queued: "cancelled"}
    hold.active = False
    hold.release.set()

    first = await _run_end(client, running)
    assert first[-2:-1] == [
        {"message_type": "stop_reason", "stop_reason": "cancelled", "detail": first[-2]["detail"]}
    ]
    assert "cancelled" in first[-2]["detail"]
    assert first[-1]["step_count"] == 1  # the step in flight finished, and no other began
    assert [f["message_type"] for f in first[:-2]] == ["tool_call_message", "tool_return_message"]
    second = await _run_end(client, queued)
    assert [f["message_type"] for f in second] == ["stop_reason", "usage_statistics"]
    assert second[0]["stop_reason"] == "cancelled" and second[1]["step_count"] == 0
    assert len(served.model.requests) == 1  # the queued run never called the model

    for run_id in (running, queued):
        run = (await client.get(f"/v1/runs/{run_id}")).json()
        assert (run["status"], run["stop_reason"]) == ("cancelled", "cancelled")
        assert not await redis_client.exists(bus_keys.run_cancel(agent["id"], run_id))
    assert (await client.get(f"/v1/runs/{running}/steps")).json()[0]["stop_reason"] == "cancelled"

    after = await say_to(client, agent["id"], "still here")  # the agent goes on as before
    assert after["messages"][0]["content"] == "still here"
    done = after["messages"][0]["run_id"]
    again = await client.post(f"{path}/cancel", json={"run_ids": [done]})
    assert again.json() == {done: "completed"}  # finished runs are left as they are
    assert (await client.post(f"{path}/cancel")).json() == {}  # nothing unfinished
    other = await client.post(f"{path}/cancel", json={"run_ids": ["run-nope"]})
    assert other.status_code == 404 and "run-nope" in other.json()["detail"]
    assert (await client.post("/v1/agents/agent-nope/messages/cancel")).status_code == 404


async def test_cancel_a_job(client: httpx.AsyncClient, hold: Hold) -> None:
    agent = await make_agent(client)
    hold.active = True
    path = f"/v1/agents/{agent['id']}/messages/async"
    running = (await client.post(path, json={"input": "spin"})).json()["id"]
    with anyio.fail_after(20):
        await hold.entered.wait()
    job = await client.patch(f"/v1/jobs/{running}/cancel")
    assert job.status_code == 200, job.text
    assert job.json()["id"] == running
    hold.active = False
    hold.release.set()
    frames = await _run_end(client, running)
    assert frames[-2]["stop_reason"] == "cancelled"
    assert (await client.get(f"/v1/jobs/{running}")).json()["status"] == "cancelled"
    assert (await client.patch("/v1/jobs/run-nope/cancel")).status_code == 404
