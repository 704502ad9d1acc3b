"""The dashboard in Chromium: the agents list, an agent's page (a block and its messages), a
block edited on the page reaching the model's next request, a reply streamed token by token,
an approval answered from the page, and agent data shown as text, never run as markup."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Page, expect

from agents.scripted import ChatRequest, Outcome, Policy, Slow, say
from tests._util import approval_steps
from tests.api.conftest import Served, make_agent, say_to

REPLY = "Here is a reply long enough to arrive in many pieces, one after another, on the page."
HOSTILE = '<img src=x onerror="window.pwned=1">'


def dashboard_policy(request: ChatRequest) -> Outcome:
    step = approval_steps(request)
    if step is not None:
        return step
    said = request.last_message.text if request.last_message is not None else ""
    if "tell me" in said:
        return Slow(seconds=0.0, then=say(REPLY, thought="A long answer."), chunk_delay=0.03)
    return say(f"you said: {said[-40:]}")


@pytest.fixture
def policy() -> Policy:
    return dashboard_policy


async def test_agents_list_searches_creates_and_deletes(
    page: Page, client: httpx.AsyncClient
) -> None:
    await make_agent(client, name="alice", tags=["team-a"])
    await make_agent(client, name=HOSTILE)
    await page.goto("/")
    rows = page.locator("table.agents tbody tr")
    await expect(rows).to_have_count(2)
    await expect(page.get_by_role("link", name="alice")).to_be_visible()
    await expect(page.get_by_role("link", name=HOSTILE)).to_be_visible()  # shown as text
    assert await page.locator("table.agents img").count() == 0
    assert await page.evaluate("window.pwned") is None

    await page.get_by_label("Search agents").fill("ali")
    await expect(rows).to_have_count(1)
    await page.get_by_label("Search agents").fill("")
    await expect(rows).to_have_count(2)

    await page.get_by_label("New agent's name").fill("bob")
    await page.get_by_label("Human").fill("Name: Carol")
    await page.get_by_role("button", name="Create").click()
    await expect(rows).to_have_count(3)
    listed = (await client.get("/v1/agents/", params={"name": "bob"})).json()
    assert [b["value"] for b in listed[0]["blocks"] if b["label"] == "human"] == ["Name: Carol"]

    await page.get_by_role("button", name="Delete alice").click()  # the dialog is accepted
    await expect(rows).to_have_count(2)
    assert (await client.get("/v1/agents/", params={"name": "alice"})).json() == []


async def test_agent_page_shows_its_blocks_context_and_messages(
    page: Page, client: httpx.AsyncClient
) -> None:
    agent = await make_agent(
        client, tool_rules=[{"type": "exit_loop", "tool_name": "send_message"}]
    )
    await say_to(client, agent["id"], "hello there")
    await page.goto(f"/#/agents/{agent['id']}")
    await expect(page.get_by_label("Block human")).to_have_value("Name: Bob")
    await expect(page.locator("#context .bar .seg")).to_have_count(5)
    await expect(page.locator("#context")).to_contain_text("tokens")
    await expect(page.locator("table").filter(has_text="exit_loop")).to_be_visible()

    await page.get_by_role("link", name="Messages").click()
    messages = page.locator("#messages")
    await expect(messages.locator('[data-type="user_message"]').last).to_contain_text("hello there")
    await expect(messages.locator('[data-type="assistant_message"]').last).to_contain_text(
        "you said: "
    )


async def test_a_block_edited_on_the_page_is_in_the_next_model_request(
    page: Page, client: httpx.AsyncClient, served: Served
) -> None:
    agent = await make_agent(client)
    await page.goto(f"/#/agents/{agent['id']}")
    block = page.get_by_label("Block human")
    await block.fill("Name: Bob\nFavourite colour: teal")
    form = page.locator('form[data-label="human"]')
    await form.get_by_role("button", name="Save").click()
    await expect(form.locator(".note")).to_have_text("saved")

    await form.locator("summary").click()  # its history: both versions, and who shares it
    await expect(form.locator(".versions li")).to_have_count(2)
    await expect(form.locator(".history")).to_contain_text("sam")

    before = len(served.model.requests)
    await say_to(client, agent["id"], "what is my favourite colour?")
    system = served.model.requests[before].messages[0]
    assert system.role == "system"
    assert "Favourite colour: teal" in (system.text or "")


async def test_a_streamed_reply_appears_token_by_token(
    page: Page, client: httpx.AsyncClient
) -> None:
    agent = await make_agent(client)
    await page.goto(f"/#/agents/{agent['id']}/chat")
    await expect(page.get_by_label("Message")).to_be_visible()
    # Record the reply's text each time the page changes it.
    await page.evaluate(
        """() => {
        window.seen = [];
        new MutationObserver(() => {
          const reply = document.querySelector('#chat-log [data-type="assistant_message"] .text');
          if (reply) window.seen.push(reply.textContent);
        }).observe(document.getElementById('chat-log'), {childList: true, subtree: true});
      }"""
    )
    await page.get_by_label("Message").fill("tell me something")
    await page.get_by_role("button", name="Send").click()
    reply = page.locator('#chat-log [data-type="assistant_message"]').last
    await expect(reply.locator(".text")).to_have_text(REPLY)
    await expect(page.locator('#chat-log [data-stop-reason="end_turn"]')).to_be_visible()
    seen: list[str] = await page.evaluate("window.seen")
    partial = [text for text in dict.fromkeys(seen) if text and text != REPLY]
    assert len(partial) >= 3, seen  # it grew in steps the page showed, not all at once
    assert all(REPLY.startswith(text) for text in partial)
    assert await reply.locator(".piece").count() > 3
    await expect(page.locator("#chat-log [data-type=reasoning_message] .text")).to_have_text(
        "A long answer."
    )


async def test_an_approval_is_answered_from_the_page(page: Page, client: httpx.AsyncClient) -> None:
    rules = [{"type": "requires_approval", "tool_name": "core_memory_append"}]
    agent = await make_agent(client, tool_rules=rules)
    await page.goto(f"/#/agents/{agent['id']}/chat")
    await page.get_by_label("Message").fill("remember that I like tea")
    await page.get_by_role("button", name="Send").click()
    request = page.locator('#chat-log [data-type="approval_request_message"]')
    await expect(request).to_contain_text("core_memory_append")
    await expect(page.locator('#chat-log [data-stop-reason="requires_approval"]')).to_be_visible()
    human = f"/v1/agents/{agent['id']}/core-memory/blocks/human"
    assert (await client.get(human)).json()["value"] == "Name: Bob"  # held, not run

    await request.get_by_role("button", name="Approve").click()
    await expect(
        page.locator('#chat-log [data-type="assistant_message"]').filter(
            has_text="after approval: Appended to block 'human'"
        )
    ).to_be_visible()
    assert (await client.get(human)).json()["value"] == "Name: Bob\nlikes tea"


async def test_a_held_call_is_offered_for_approval_when_the_chat_opens(
    page: Page, client: httpx.AsyncClient
) -> None:
    rules = [{"type": "requires_approval", "tool_name": "core_memory_append"}]
    agent = await make_agent(client, tool_rules=rules)
    held = await say_to(client, agent["id"], "remember that I like tea")
    assert held["stop_reason"]["stop_reason"] == "requires_approval"
    await page.goto(f"/#/agents/{agent['id']}/chat")
    request = page.locator('#chat-log [data-type="approval_request_message"]')
    # Once it can be answered, the held call is shown once: the history's request, not a copy.
    await expect(request.get_by_role("button", name="Deny")).to_be_visible()
    await expect(request).to_have_count(1)
    await expect(request).to_contain_text("core_memory_append")
    await request.get_by_label("Reason").fill("not now")
    await request.get_by_role("button", name="Deny").click()
    await expect(
        page.locator('#chat-log [data-type="assistant_message"]').filter(
            has_text="denied the call to core_memory_append: not now"
        )
    ).to_be_visible()
    human = f"/v1/agents/{agent['id']}/core-memory/blocks/human"
    assert (await client.get(human)).json()["value"] == "Name: Bob"
