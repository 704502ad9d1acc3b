"""API keys, body size limits, health."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import Served


@pytest.fixture
def api_key() -> str | None:
    return "sekrit"


async def test_every_path_but_health_needs_the_key(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as anonymous:
        assert (await anonymous.get("/v1/health/")).json()["status"] == "ok"
        for path in ("/v1/agents/", "/v1/blocks/", "/v1/tools/", "/openapi.json"):
            response = await anonymous.get(path)
            assert response.status_code == 401, path
            assert "Bearer" in response.json()["detail"]
        wrong = await anonymous.get("/v1/agents/", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await anonymous.get("/v1/agents/", headers={"Authorization": "Bearer sekrit"})
        assert right.status_code == 200
        assert right.json() == []


async def test_oversized_bodies_are_refused(client: httpx.AsyncClient, served: Served) -> None:
    huge = "x" * (served.settings.max_body_bytes + 1)
    response = await client.post("/v1/blocks/", json={"label": "big", "value": huge})
    assert response.status_code == 413
