"""The run view follows one message across agents (the send, the wait, the other agent's reply
and its block edit, in time order, drawn as a graph); the operations view shows the live
worker and a dead letter that it re-queues."""

from __future__ import annotations

import json

import httpx
import pytest
import redis.asyncio as aioredis
from playwright.async_api import Page, expect

from agents.scripted import ChatRequest, Outcome, Policy, say
from bus import keys as bus_keys
from storage import keys
from tests.api.conftest import make_agent, say_to
from tests.dashboard._seed import dead_letter_of, relay


def relay_policy(request: ChatRequest) -> Outcome:
    last = request.last_message
    said = last.text if last is not None else ""
    result = request.last_tool_result
    if result is not None and '"type": "heartbeat"' in said:
        return say(f"bob answered: {json.loads(result.content)['message']}")
    if result is not None:
        return say(f"bob answered: {result.content}")
    relayed = relay(said, question="hi bob", note="asked by alice", answer="hello from bob")
    return relayed if relayed is not None else say("ok")


@pytest.fixture
def policy() -> Policy:
    return relay_policy


async def test_the_run_view_follows_a_message_across_agents(
    page: Page, client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    workflow = {"workflow": "desk"}
    bob = await make_agent(client, name="bob", metadata=workflow)
    alice = await make_agent(
        client, name="alice", include_multi_agent_tools=True, metadata=workflow
    )
    # The routes as `memgrid apply` records them: alice may message bob, bob may not reply
    # by message (his reply returns through the wait).
    await redis_client.sadd(keys.workflow_routes("desk"), "alice -> bob")
    await redis_client.hset(keys.workflow("desk"), "routes_declared", "1")
    result = await say_to(client, alice["id"], f"ask {bob['id']}")
    replies = [m["content"] for m in result["messages"] if m["message_type"] == "assistant_message"]
    assert replies and replies[-1].startswith("bob answered"), result
    run_id = result["messages"][0]["run_id"]

    await page.goto(f"/#/runs/{run_id}")
    trace = page.locator("#trace")
    kinds = trace.locator("li")
    await expect(kinds.first).to_be_visible()
    order = [await k.get_attribute("data-kind") for k in await kinds.all()]
    assert order[0] == "input"
    assert "wait" in order and "block_edit" in order and "reply" in order
    assert order.index("wait") < order.index("block_edit") < len(order) - 1
    await expect(trace.locator('[data-kind="block_edit"]')).to_contain_text("asked by alice")
    await expect(trace.locator('[data-kind="reply"]').last).to_contain_text("bob answered")
    await expect(page.locator("svg.graph circle")).to_have_count(2)
    await expect(page.locator("svg.graph line.edge.sent")).to_have_count(1)
    await expect(page.locator("svg.graph line.edge.route")).to_have_count(1)


async def test_operations_show_the_worker_and_retry_a_dead_letter(
    page: Page, client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    agent = await make_agent(client)
    await say_to(client, agent["id"], "hello")
    await dead_letter_of(redis_client, agent["id"], "ValueError('<b>broken</b>')")
    await page.goto("/#/operations")
    workers = page.locator("#workers tbody tr")
    await expect(workers).to_have_count(1)
    await expect(workers.first).to_contain_text(" / ")  # slots in use of slots
    letters = page.locator("#dead-letters tbody tr")
    await expect(letters).to_have_count(1)
    await expect(letters.first).to_contain_text("ValueError('<b>broken</b>')")  # as text
    # The dead letter is also the newest of the recent errors, with its kind and run.
    newest = page.locator("#recent-errors li").first
    await expect(newest).to_have_attribute("data-kind", "dead_letter")
    await expect(newest).to_contain_text("run-gone")
    await expect(newest).to_contain_text("ValueError('<b>broken</b>')")
    await letters.first.get_by_role("button", name="Retry").click()
    # Not an envelope: the retry is refused with a 4xx saying why, and the letter stays.
    await expect(letters.first.locator(".error")).to_contain_text("cannot be retried")
    assert await redis_client.xlen(bus_keys.dead_letters()) == 1
