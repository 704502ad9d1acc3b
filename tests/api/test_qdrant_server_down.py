"""With ``MEMGRID_QDRANT_URL`` set, a Qdrant server that cannot be reached is a 502 that names
it, on every route that touches archival memory: never a 500 with "internal error"."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from agents.scripted import ScriptedModel
from tests.api.conftest import StartApi, make_agent, policy_echo


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
async def qdrant_url() -> str:
    return _closed_port_url()


@pytest.fixture
async def client(start_api: StartApi, qdrant_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        ScriptedModel.serve(policy_echo) as model,
        start_api(model.base_url, MEMGRID_QDRANT_URL=qdrant_url) as http,
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
