"""With ``MEMGRID_QDRANT_URL`` set, a Qdrant server that cannot be reached is a 502 that names
it, on every route that touches archival memory: never a 500 with "internal error"."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from agents.scripted import ScriptedModel
from orchestrator.api import ApiSettings
from tests.api.conftest import make_agent, policy_echo, serve_api


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
async def qdrant_url() -> str:
    return _closed_port_url()


@pytest.fixture
async def client(
    redis_url: str,
    redis_client: aioredis.Redis,
    memgrid_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    qdrant_url: str,
) -> AsyncIterator[httpx.AsyncClient]:
    async with ScriptedModel.serve(policy_echo) as model:
        monkeypatch.setenv("OPENAI_BASE_URL", model.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("MEMGRID_EMBEDDING", "hashing/384")
        monkeypatch.setenv("MEMGRID_QDRANT_URL", qdrant_url)
        settings = ApiSettings(redis_url=redis_url, run_timeout_s=30)
        async with (
            serve_api(settings) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            yield http


async def test_an_unreachable_qdrant_server_is_a_502_naming_it(
    client: httpx.AsyncClient, qdrant_url: str
) -> None:
    agent = await make_agent(client)
    path = f"/v1/agents/{agent['id']}/archival-memory"
    for method, url, body in (
        ("POST", path, {"text": "the sky is blue"}),
        ("GET", f"{path}/search?query=sky", None),
        ("GET", path, None),
    ):
        response = await client.request(method, url, json=body)
        assert response.status_code == 502, (method, url, response.text)
        detail = response.json()["detail"]
        assert f"Qdrant server at {qdrant_url} could not be reached" in detail, detail
        assert "MEMGRID_QDRANT_URL" in detail
