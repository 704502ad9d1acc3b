"""API edits against a step committing at the same time: the edit and the step both stay.

A step commits the agent's in-context messages (``message_ids``) and summary into the agent's
record. An API edit that read the record before such a commit and wrote it after would put the
old messages back. The hook below runs a real turn (the scripted model over HTTP, a real
commit) right after the API reads the record, as a concurrent worker would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from agents.llm import LLMSettings
from agents.loop import run_turn
from agents.runtime import LLMPool, Runtime
from bus.envelopes import InboxMessage
from storage.agents import AgentStore
from storage.records import Agent
from tests.api.conftest import Served, make_agent


class StepAfterRead:
    """Runs one real turn of the agent right after each of the next ``n`` reads of its record."""

    def __init__(self, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rt = rt
        self.agent_id = ""
        self.left = 0
        self.stepping = False
        self.committed: set[str] = set()  # every in-context message id a hooked turn committed
        read = AgentStore.get_raw

        async def get_raw(store: AgentStore, agent_id: str) -> tuple[Agent, bytes]:
            found = await read(store, agent_id)
            if agent_id == self.agent_id and self.left and not self.stepping:
                self.left -= 1
                await self.step()
            return found  # what the caller read: now stale

        monkeypatch.setattr(AgentStore, "get_raw", get_raw)

    def arm(self, agent_id: str, n: int) -> None:
        self.agent_id, self.left = agent_id, n

    async def step(self) -> None:
        self.stepping = True
        try:
            async for _event in run_turn(self.rt, self.agent_id, [InboxMessage(content="hi")]):
                pass
            self.committed |= set((await self.rt.agents.get(self.agent_id)).message_ids)
        finally:
            self.stepping = False


@pytest.fixture
async def hook(
    served: Served, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StepAfterRead]:
    settings = LLMSettings(base_url=served.model.base_url, api_key="test", timeout_s=10)
    rt = Runtime(redis=redis_client, llm=LLMPool(settings))
    try:
        yield StepAfterRead(rt, monkeypatch)
    finally:
        await rt.aclose()


async def _record(hook: StepAfterRead, agent_id: str) -> Agent:
    hook.left = 0
    return await hook.rt.agents.get(agent_id)


async def _assert_steps_kept(hook: StepAfterRead, agent: Agent) -> None:
    assert hook.committed, "the hook ran no step"
    assert hook.committed <= set(agent.message_ids), "an edit put back older message_ids"


async def test_patching_an_agent_keeps_a_step_committed_meanwhile(
    client: httpx.AsyncClient, hook: StepAfterRead
) -> None:
    agent = await make_agent(client)
    hook.arm(agent["id"], 3)  # every read the edit makes is followed by a step's commit
    response = await client.patch(
        f"/v1/agents/{agent['id']}", json={"description": "edited", "tags": ["t1"]}
    )
    assert response.status_code == 200, response.text
    stored = await _record(hook, agent["id"])
    assert stored.description == "edited" and stored.tags == ["t1"]
    await _assert_steps_kept(hook, stored)


async def test_attaching_and_detaching_blocks_keeps_a_step_committed_meanwhile(
    client: httpx.AsyncClient, hook: StepAfterRead
) -> None:
    agent = await make_agent(client)
    made = await client.post("/v1/blocks/", json={"label": "notes", "value": "n"})
    assert made.status_code == 200, made.text
    block_id: str = made.json()["id"]
    hook.arm(agent["id"], 3)
    path = f"/v1/agents/{agent['id']}/core-memory/blocks"
    response = await client.patch(f"{path}/attach/{block_id}")
    assert response.status_code == 200, response.text
    stored = await _record(hook, agent["id"])
    assert block_id in stored.block_ids
    await _assert_steps_kept(hook, stored)

    hook.arm(agent["id"], 3)
    response = await client.patch(f"{path}/detach/{block_id}")
    assert response.status_code == 200, response.text
    stored = await _record(hook, agent["id"])
    assert block_id not in stored.block_ids
    await _assert_steps_kept(hook, stored)


async def test_two_concurrent_edits_both_land(
    client: httpx.AsyncClient, hook: StepAfterRead
) -> None:
    agent = await make_agent(client)
    tools: list[dict[str, Any]] = []
    for name in ("alpha", "beta"):
        source = (
            f"def {name}(x: str) -> str:\n"
            "    '''Echo.\n\n    Args:\n        x: text\n    '''\n"
            "    return x\n"
        )
        made = await client.post("/v1/tools/", json={"source_code": source})
        assert made.status_code == 200, made.text
        tools.append(made.json())
    # Attaching one tool while another attach commits in between: neither is lost.
    first, second = tools
    read = AgentStore.get_raw
    attached = []

    async def get_raw(store: AgentStore, agent_id: str) -> tuple[Agent, bytes]:
        found = await read(store, agent_id)
        if agent_id == agent["id"] and not attached:
            attached.append(True)
            response = await client.patch(f"/v1/agents/{agent_id}/tools/attach/{second['id']}")
            assert response.status_code == 200, response.text
        return found

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(AgentStore, "get_raw", get_raw)
        response = await client.patch(f"/v1/agents/{agent['id']}/tools/attach/{first['id']}")
    assert response.status_code == 200, response.text
    stored = await _record(hook, agent["id"])
    assert {"alpha", "beta"} <= set(stored.tools)


async def test_reapplying_a_workflow_keeps_a_step_committed_meanwhile(
    client: httpx.AsyncClient, hook: StepAfterRead, tmp_path: Any
) -> None:
    from orchestrator.apply import apply_workflow
    from orchestrator.workflow import load_workflow

    model = (await make_agent(client))["llm_config"]["handle"]  # the served scripted model
    file = tmp_path / "team.yaml"
    file.write_text(f"name: team\nagents:\n  - name: lead\n    persona: one\n    model: {model}\n")
    applied = await apply_workflow(hook.rt, load_workflow(file))
    agent_id = applied.agents["lead"].id
    hook.arm(agent_id, 0)
    await hook.step()  # the agent has a conversation in context
    file.write_text(f"name: team\nagents:\n  - name: lead\n    persona: two\n    model: {model}\n")
    hook.arm(agent_id, 3)  # a step commits right after each read the re-apply makes
    await apply_workflow(hook.rt, load_workflow(file))
    stored = await _record(hook, agent_id)
    assert stored.model == model
    await _assert_steps_kept(hook, stored)
