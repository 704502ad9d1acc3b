"""Hostile requests for every route of the served OpenAPI document: never a 5xx (issue #11).

The cases come from :mod:`tests.api.hostile` (shared with ``benchmarks/fuzz_api.py``),
deterministic by seed: ``MEMGRID_FUZZ_SEED=7 pytest tests/api/test_fuzz.py`` replays seed 7.
Path parameters are pinned to real resources (agent, block, source, file, passage, tool, run),
so that cases reach the handlers and not only the router. The run is bounded by a time
budget; the cases go round-robin over the operations, so every operation is covered evenly
whatever the machine's speed.
"""

from __future__ import annotations

import os
import time

import anyio
import httpx
import pytest

from tests.api.conftest import Served, make_agent, say_to
from tests.api.hostile import DESTRUCTIVE, cases, make_pins, operations

SEED = int(os.environ.get("MEMGRID_FUZZ_SEED") or 11)
PER_OPERATION = int(os.environ.get("MEMGRID_FUZZ_CASES") or 40)
BUDGET_S = 45.0
MIN_PER_OPERATION = 4  # what even a slow machine must get through within the budget


async def _pins(served: Served) -> dict[str, str]:
    def make() -> dict[str, str]:
        with httpx.Client(base_url=served.url, timeout=30) as http:
            return make_pins(http)

    return await anyio.to_thread.run_sync(make)


@pytest.mark.timeout(120)
async def test_hostile_requests_never_get_a_server_error(
    served: Served, client: httpx.AsyncClient
) -> None:
    document = (await client.get("/openapi.json")).json()
    ops = operations(document)
    assert len(ops) >= 50, "the served OpenAPI document lost its routes"
    pins = await _pins(served)
    failures: list[str] = []
    tried: dict[str, int] = dict.fromkeys((op.label for op in ops), 0)
    deadline = time.monotonic() + BUDGET_S
    for case in cases(document, SEED, PER_OPERATION, pins, skip=DESTRUCTIVE):
        if time.monotonic() > deadline:
            break
        try:
            with anyio.fail_after(30):
                response = await client.request(**case.request())
        except (httpx.TransportError, TimeoutError) as exc:
            failures.append(f"{type(exc).__name__} {exc}: {case.describe()}")
            continue
        tried[case.operation] += 1
        if response.status_code >= 500:
            failures.append(f"{response.status_code} {response.text[:300]!r}: {case.describe()}")
    assert not failures, f"seed {SEED}: {len(failures)} failures:\n" + "\n".join(failures[:30])
    thin = {label: n for label, n in tried.items() if n < MIN_PER_OPERATION}
    assert not thin, f"operations tried fewer than {MIN_PER_OPERATION} times: {thin}"
    # The server is still up and still runs turns.
    health = await client.get("/v1/health/")
    assert health.status_code == 200, health.text
    # A fresh agent: the fuzz may have given the pinned one a model that does not exist.
    fresh = await make_agent(client, name="after-fuzz")
    again = await say_to(client, fresh["id"], "still alive?")
    assert again["stop_reason"]["stop_reason"] == "end_turn"


def test_cases_are_deterministic_by_seed() -> None:
    document = {
        "paths": {
            "/v1/things/{thing_id}": {
                "patch": {
                    "parameters": [{"name": "thing_id", "in": "path", "required": True}],
                    "requestBody": {
                        "content": {"application/json": {"schema": {"$ref": "#/c/Thing"}}}
                    },
                }
            }
        },
        "c": {"Thing": {"type": "object", "properties": {"n": {"type": "integer"}}}},
    }
    one = list(cases(document, 3, 20))
    assert one == list(cases(document, 3, 20))
    assert one != list(cases(document, 4, 20))
    assert one[0].what == "well-formed"
    assert len({c.what for c in one}) > 3


@pytest.mark.parametrize(
    "body",
    [b"[" * 20_000 + b"]" * 20_000, b'{"name": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"],
    ids=["top-level", "in-a-field"],
)
async def test_a_body_nested_too_deep_is_a_400_that_says_so(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post(
        "/v1/agents/", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["detail"]


async def test_absurd_page_limits_are_served_not_a_5xx(client: httpx.AsyncClient) -> None:
    # Found by the fuzz: a limit past 64 bits reached Redis (ZRANGE: 503 "Redis did not
    # answer") and the Qdrant engine (OverflowError: 500).
    agent = await make_agent(client)
    await say_to(client, agent["id"], "hello")
    passage = await client.post(
        f"/v1/agents/{agent['id']}/archival-memory", json={"text": "a passage"}
    )
    assert passage.status_code == 200, passage.text
    huge = str(10**23)
    for path, params, least in [
        (f"/v1/agents/{agent['id']}/messages", {"limit": huge}, 2),
        (f"/v1/agents/{agent['id']}/archival-memory", {"limit": huge}, 1),
        (f"/v1/agents/{agent['id']}/archival-memory", {"limit": huge, "search": "a"}, 1),
        ("/v1/agents", {"limit": huge}, 1),
        ("/v1/runs", {"limit": huge}, 1),
    ]:
        response = await client.get(path, params=params)
        assert response.status_code == 200, (path, params, response.text)
        assert len(response.json()) >= least, (path, params)
