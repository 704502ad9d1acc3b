"""The operations view's "recent errors" come from a capped stream the workers write: a tool
that raises, a model that refuses the request (after retries), a sandbox limit and a dead
letter, each with its agent, run, time and a short message."""

from __future__ import annotations

import httpx
import pytest
import redis.asyncio as aioredis

from agents.scripted import ChatRequest, Outcome, Policy, ServerError, say, tool_call
from bus import keys as bus_keys
from bus.recent_errors import MAX_ERRORS
from tests.api.conftest import make_agent, say_to
from tests.dashboard._seed import dead_letter_of

EXPLODE = '''
def explode(reason: str) -> str:
    """Always raises.

    Args:
        reason: why.
    """
    raise ValueError("kaboom: " + reason)
'''

SPILL = '''
def spill() -> str:
    """Takes longer than its sandbox time limit (1 s here)."""
    import time
    time.sleep(30)
    return "late"
'''


def errors_policy(request: ChatRequest) -> Outcome:
    said = request.last_message.text if request.last_message is not None else ""
    if "refuse" in said:  # a 401 is not retried: the run ends llm_api_error at once
        return ServerError(status=401, message="Incorrect API key (scripted)", type="auth")
    if request.last_tool_result is not None:
        return say("done")
    if "explode" in said:
        return tool_call("explode", reason="asked to")
    if "spill" in said:
        return tool_call("spill")
    return say("ok")


@pytest.fixture
def policy(monkeypatch: pytest.MonkeyPatch) -> Policy:
    monkeypatch.setenv("MEMGRID_SANDBOX_TOOL_LIMITS", '{"spill": {"timeout_s": 1}}')
    return errors_policy


async def _errors(client: httpx.AsyncClient) -> list[dict[str, object]]:
    response = await client.get("/dashboard/api/operations")
    assert response.status_code == 200, response.text
    errors: list[dict[str, object]] = response.json()["recent_errors"]
    return errors


async def test_tool_model_and_dead_letter_errors_show_in_operations(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    created = await client.put("/v1/tools/", json={"source_code": EXPLODE})
    assert created.status_code == 200, created.text
    agent = await make_agent(client, name="errant", tools=["explode"])
    exploded = await say_to(client, agent["id"], "please explode")
    tool_run = exploded["messages"][0]["run_id"]

    [tool_error] = await _errors(client)
    assert tool_error["kind"] == "tool"
    assert tool_error["agent_id"] == agent["id"] and tool_error["agent_name"] == "errant"
    assert tool_error["run_id"] == tool_run
    assert "explode" in str(tool_error["message"]) and "kaboom: asked to" in str(
        tool_error["message"]
    )
    assert str(tool_error["at"]).startswith("20")

    refused = await client.post(
        f"/v1/agents/{agent['id']}/messages",
        json={"messages": [{"role": "user", "content": "refuse this"}]},
    )
    assert refused.status_code == 200, refused.text
    await dead_letter_of(redis_client, agent["id"], "bad envelope: broken")
    newest_first = await _errors(client)
    assert [e["kind"] for e in newest_first] == ["dead_letter", "model_auth", "tool"]
    model = newest_first[1]
    assert "Incorrect API key" in str(model["message"]) and model["run_id"]
    assert "bad envelope: broken" in str(newest_first[0]["message"])
    # /metrics is as it was; the stream is capped (XADD MAXLEN ~).
    assert (await client.get("/metrics")).status_code == 200
    info = await redis_client.xinfo_stream(bus_keys.recent_errors())
    assert info["length"] == 3 and MAX_ERRORS <= 10_000


async def test_a_sandbox_limit_is_recorded_as_such(client: httpx.AsyncClient) -> None:
    created = await client.put("/v1/tools/", json={"source_code": SPILL})
    assert created.status_code == 200, created.text
    agent = await make_agent(client, tools=["spill"])
    result = await say_to(client, agent["id"], "spill it")
    [error] = await _errors(client)
    assert error["kind"] == "sandbox_limit" and error["run_id"] == result["messages"][0]["run_id"]
    assert "spill" in str(error["message"])
    assert "(sandbox limit timeout_s=1)" in str(error["message"])
