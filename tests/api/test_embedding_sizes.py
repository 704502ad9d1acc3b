"""Embedding sizes come from the endpoint, not from the model's name (issue #12, item 1).

The scripted model stands in for an OpenAI-compatible endpoint (LiteLLM, Ollama, vLLM) that
serves ``text-embedding-3-small`` as 256-d vectors: neither OpenAI's 1536 nor MiniLM's 384.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from agents.scripted import ScriptedModel
from orchestrator.api import ApiSettings
from orchestrator.shared_archival import SharedArchival
from storage import keys
from storage.settings import StorageSettings
from tests._util import archival_policy
from tests.api.conftest import (
    StartApi,
    api_client,
    job_finished,
    make_agent,
    model_env,
    say_to,
    serve_api,
)

DIM = 256
SMALL = "openai/text-embedding-3-small"
HANDBOOK = b"Vacation policy\n\nEvery employee gets 25 days of paid vacation.\n"


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    async with ScriptedModel.serve(archival_policy, embedding_dimension=DIM) as served:
        yield served


@pytest.fixture
async def client(start_api: StartApi, model: ScriptedModel) -> AsyncIterator[httpx.AsyncClient]:
    async with start_api(model.base_url, embedding=SMALL) as http:
        yield http


def _tool_return(result: dict[str, Any]) -> str:
    """What the turn's first tool (the archival one; send_message follows) returned."""
    returns = [m for m in result["messages"] if m["message_type"] == "tool_return_message"]
    assert returns, result
    assert returns[0]["status"] == "success", returns[0]
    text: str = returns[0]["tool_return"]
    return text


async def test_archival_memory_of_a_256d_endpoint_through_api_and_tools(
    client: httpx.AsyncClient,
) -> None:
    agent = await make_agent(client, embedding=SMALL)
    path = f"/v1/agents/{agent['id']}/archival-memory"
    created = await client.post(path, json={"text": "the sky is blue"})
    assert created.status_code == 200, created.text
    assert created.json()[0]["embedding_config"]["embedding_dim"] == DIM
    search = await client.get(f"{path}/search", params={"query": "sky blue"})
    assert search.status_code == 200, search.text
    assert search.json()["results"][0]["content"] == "the sky is blue"

    inserted = await say_to(client, agent["id"], "remember: grass is green")
    _tool_return(inserted)
    found = await say_to(client, agent["id"], "recall: green grass")
    assert "grass is green" in _tool_return(found)
    shown = (await client.get(f"/v1/agents/{agent['id']}")).json()
    assert shown["embedding_config"]["embedding_dim"] == DIM


async def test_an_upload_embedded_by_a_256d_endpoint_completes(
    client: httpx.AsyncClient,
) -> None:
    body = {"name": "handbook", "embedding": SMALL}
    source = (await client.post("/v1/sources/", json=body)).json()
    agent = await make_agent(client, embedding=SMALL, source_ids=[source["id"]])
    uploaded = await client.post(
        f"/v1/sources/{source['id']}/upload", files={"file": ("policy.md", HANDBOOK)}
    )
    assert uploaded.status_code == 200, uploaded.text
    assert (await job_finished(client, uploaded.json()["id"]))["status"] == "completed"
    found = await say_to(client, agent["id"], "recall: vacation days")
    assert "25 days" in _tool_return(found)


async def test_agents_of_different_sizes_coexist(client: httpx.AsyncClient) -> None:
    wide = await make_agent(client, name="wide", embedding=SMALL)
    narrow = await make_agent(client, name="narrow", embedding="hashing/64")
    for agent, fact in ((wide, "tea is warm"), (narrow, "ice is cold")):
        path = f"/v1/agents/{agent['id']}/archival-memory"
        assert (await client.post(path, json={"text": fact})).status_code == 200
    for agent, fact in ((wide, "tea is warm"), (narrow, "ice is cold")):
        path = f"/v1/agents/{agent['id']}/archival-memory/search"
        hits = (await client.get(path, params={"query": fact})).json()["results"]
        assert [hit["content"] for hit in hits] == [fact]


async def test_changing_the_embedding_of_an_agent_with_passages_is_refused(
    client: httpx.AsyncClient,
) -> None:
    agent = await make_agent(client, embedding=SMALL)
    empty = await make_agent(client, name="empty", embedding=SMALL)
    path = f"/v1/agents/{agent['id']}/archival-memory"
    assert (await client.post(path, json={"text": "the sky is blue"})).status_code == 200

    refused = await client.patch(f"/v1/agents/{agent['id']}", json={"embedding": "hashing/64"})
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert detail.startswith("embedding:") and "archival" in detail
    same = await client.patch(f"/v1/agents/{agent['id']}", json={"embedding": SMALL})
    assert same.status_code == 200, same.text
    search = await client.get(f"{path}/search", params={"query": "sky"})
    assert search.json()["results"][0]["content"] == "the sky is blue"

    changed = await client.patch(f"/v1/agents/{empty['id']}", json={"embedding": "hashing/64"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["embedding_config"]["embedding_dim"] == 64
    moved = f"/v1/agents/{empty['id']}/archival-memory"
    assert (await client.post(moved, json={"text": "ice is cold"})).status_code == 200


async def test_embedding_dim_given_is_asked_of_the_endpoint(
    client: httpx.AsyncClient, model: ScriptedModel
) -> None:
    config = {
        "embedding_endpoint_type": "openai",
        "embedding_model": "text-embedding-3-small",
        "embedding_dim": 128,
    }
    agent = await make_agent(client, embedding_config=config)
    assert agent["embedding_config"]["embedding_dim"] == 128
    path = f"/v1/agents/{agent['id']}/archival-memory"
    created = await client.post(path, json={"text": "the sky is blue"})
    assert created.status_code == 200, created.text
    assert model.embedding_requests[-1].dimensions == 128
    search = await client.get(f"{path}/search", params={"query": "sky"})
    assert search.json()["results"][0]["content"] == "the sky is blue"
    # What the API shows can be sent back unchanged: it is the same embedder.
    again = await client.patch(
        f"/v1/agents/{agent['id']}", json={"embedding_config": agent["embedding_config"]}
    )
    assert again.status_code == 200, again.text
    assert again.json()["embedding_config"]["embedding_dim"] == 128

    plain = await make_agent(client, name="plain", embedding=SMALL)
    plain_path = f"/v1/agents/{plain['id']}/archival-memory"
    assert (await client.post(plain_path, json={"text": "ice is cold"})).status_code == 200
    assert model.embedding_requests[-1].dimensions is None
    shown = (await client.get(f"/v1/agents/{plain['id']}")).json()["embedding_config"]
    assert shown["embedding_dim"] == DIM  # what this endpoint was seen to serve
    same = await client.patch(f"/v1/agents/{plain['id']}", json={"embedding_config": shown})
    assert same.json()["embedding_config"]["handle"] == SMALL  # its own size: not pinned

    fixed = {"embedding_model": "hashing/64", "embedding_dim": 32}
    refused = await client.post("/v1/agents/", json={"embedding_config": fixed})
    assert refused.status_code == 400, refused.text
    detail = refused.json()["detail"]
    assert detail.startswith("embedding_config.embedding_dim:") and "64" in detail
    zero = {**config, "embedding_dim": 0}
    invalid = await client.post("/v1/agents/", json={"embedding_config": zero})
    assert invalid.status_code == 422, invalid.text
    assert "embedding_dim" in invalid.text


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def dead(memgrid_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The model and embedding endpoint configured for the API: a port nobody listens on."""
    url = f"http://127.0.0.1:{_dead_port()}/v1"
    model_env(monkeypatch, url)
    return url


async def _insert_fails_naming(client: httpx.AsyncClient, dead: str) -> str:
    """An archival insert that needs the dead endpoint: a 502 naming it and the variable that
    sets it. Returns the agent's archival path."""
    agent = await make_agent(client, embedding=SMALL)
    path = f"/v1/agents/{agent['id']}/archival-memory"
    failed = await client.post(path, json={"text": "the sky is blue"})
    assert failed.status_code == 502, failed.text
    detail = failed.json()["detail"]
    assert dead in detail and "OPENAI_BASE_URL" in detail
    return path


async def test_an_unreachable_embedding_endpoint_is_a_502_naming_it(
    redis_url: str,
    redis_client: aioredis.Redis,
    dead: str,
) -> None:
    async with api_client(redis_url) as client:
        path = await _insert_fails_naming(client, dead)
        searched = await client.get(f"{path}/search", params={"query": "sky"})
        assert searched.status_code == 502, searched.text
        assert dead in searched.json()["detail"]


@contextlib.asynccontextmanager
async def _engine_owned_elsewhere(redis_client: aioredis.Redis) -> AsyncIterator[None]:
    """Another process (a worker, say) owns the embedded engine and serves it over Redis; the
    API started in the block gets the remote handle, as under ``memgrid up``."""
    async with anyio.create_task_group() as tg:
        owner = SharedArchival(StorageSettings.from_env(), redis_client, tg)
        try:
            await owner.inner()
            assert owner.owner
            yield
        finally:
            tg.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await owner.aclose()


async def test_an_endpoint_failure_in_the_engine_owning_process_is_a_502_too(
    redis_url: str,
    redis_client: aioredis.Redis,
    dead: str,
) -> None:
    async with _engine_owned_elsewhere(redis_client), api_client(redis_url) as client:
        await _insert_fails_naming(client, dead)


async def test_the_size_learnt_by_the_engine_owner_is_shared_through_redis(
    redis_url: str,
    redis_client: aioredis.Redis,
    memgrid_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = 96
    async with ScriptedModel.serve(archival_policy, embedding_dimension=other) as model:
        model_env(monkeypatch, model.base_url, embedding=None)
        async with _engine_owned_elsewhere(redis_client), api_client(redis_url) as client:
            agent = await make_agent(client, embedding="openai/served-elsewhere")
            path = f"/v1/agents/{agent['id']}/archival-memory"
            created = await client.post(path, json={"text": "the sky is blue"})
            assert created.status_code == 200, created.text
            assert created.json()[0]["embedding_config"]["embedding_dim"] == other
            shared = await redis_client.hgetall(keys.embedding_sizes())
            assert shared[f"{model.base_url} served-elsewhere".encode()] == str(other).encode()


async def test_the_api_shows_sizes_that_other_processes_learnt(
    redis_url: str,
    redis_client: aioredis.Redis,
    memgrid_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under ``memgrid up`` a worker embeds; the API process never sees the endpoint."""
    endpoint = f"http://127.0.0.1:{_dead_port()}/v1"  # never contacted by this test
    model_env(monkeypatch, endpoint, embedding=None)
    await redis_client.hset(keys.embedding_sizes(), f"{endpoint} embedded-by-a-worker", "72")
    async with api_client(redis_url) as client:
        agent = await make_agent(client, embedding="openai/embedded-by-a-worker")
        assert agent["embedding_config"]["embedding_dim"] == 72
        unseen = await make_agent(client, name="unseen", embedding="openai/never-seen")
        assert unseen["embedding_config"]["embedding_dim"] == 1536  # OpenAI's default


async def test_an_unconfigured_embedding_endpoint_is_a_503_saying_what_to_set(
    redis_url: str,
    redis_client: aioredis.Redis,
    memgrid_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "MEMGRID_QDRANT_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MEMGRID_EMBEDDING", "hashing/384")
    settings = ApiSettings(redis_url=redis_url, run_timeout_s=30)
    async with (
        serve_api(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        agent = await make_agent(client, embedding=SMALL)
        path = f"/v1/agents/{agent['id']}/archival-memory"
        failed = await client.post(path, json={"text": "the sky is blue"})
        assert failed.status_code == 503, failed.text
        assert "OPENAI_API_KEY" in failed.json()["detail"]
