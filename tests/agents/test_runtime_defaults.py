"""A runtime built by hand (tests, embedders) enforces tool rules and workflow routes: they are
the runtime's defaults, not something only `memgrid worker` plugs in."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from agents.manage import AgentSpec, create_agent
from agents.runtime import Runtime
from agents.scripted import FunctionModel
from storage import keys
from storage.errors import InvalidRecord
from storage.records import Agent, RunFirst
from tests.agents.test_messaging import _messenger, _run, _send_to


async def test_tool_rules_are_checked_by_default(
    redis_client: aioredis.Redis, function_model: FunctionModel
) -> None:
    rt = Runtime(redis=redis_client, llm=function_model)
    with pytest.raises(InvalidRecord, match="nope"):
        await create_agent(rt, AgentSpec(name="ruled", tool_rules=[RunFirst(tool_name="nope")]))


async def _member(rt: Runtime, name: str, workflow: str) -> Agent:
    return await _messenger(rt, name, "a workflow member", metadata={"workflow": workflow})


async def test_workflow_routes_are_checked_by_default(
    redis_client: aioredis.Redis, function_model: FunctionModel
) -> None:
    rt = Runtime(redis=redis_client, llm=function_model)
    # A workflow that declares one route, as `memgrid run` applies it.
    await redis_client.hset(keys.workflow("team"), "routes_declared", "1")
    await redis_client.sadd(keys.workflow_routes("team"), "lead -> dev")

    function_model.policy = _send_to("lead")
    dev = await _member(rt, "dev", "team")
    await _member(rt, "lead", "team")
    [reply] = await _run(rt, dev, "report to the lead")
    assert "workflow 'team' has no route from 'dev' to 'lead'" in reply
