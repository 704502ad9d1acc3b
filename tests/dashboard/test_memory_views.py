"""Archival memory and sources on the page, and agent data that looks like markup shown as
text everywhere it appears (block, message, passage), never run."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Page, expect

from agents.scripted import ChatRequest, Outcome, Policy, say
from tests.api.conftest import job_finished, make_agent, say_to

HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


@pytest.fixture
def policy() -> Policy:
    def answer(request: ChatRequest) -> Outcome:
        return say(f"echo {HOSTILE}", thought=HOSTILE)

    return answer


async def test_markup_in_agent_data_is_shown_as_text(page: Page, client: httpx.AsyncClient) -> None:
    agent = await make_agent(client, memory_blocks=[{"label": "human", "value": HOSTILE}])
    await say_to(client, agent["id"], HOSTILE)
    path = f"/v1/agents/{agent['id']}/archival-memory/"
    assert (await client.post(path, json={"text": HOSTILE})).status_code == 200
    await page.goto(f"/#/agents/{agent['id']}")
    await expect(page.get_by_label("Block human")).to_have_value(HOSTILE)
    await page.get_by_role("link", name="Messages").click()
    await expect(page.locator('#messages [data-type="user_message"] .text')).to_have_text(HOSTILE)
    await expect(page.locator('#messages [data-type="assistant_message"] .text')).to_have_text(
        f"echo {HOSTILE}"
    )
    await page.get_by_role("link", name="Archival memory").click()
    await expect(page.locator("#passages pre")).to_have_text(HOSTILE)
    await page.get_by_role("link", name="Chat").click()
    await expect(page.locator('#chat-log [data-type="reasoning_message"] .text')).to_have_text(
        HOSTILE
    )
    assert await page.locator("main img, main script").count() == 0
    assert await page.evaluate("window.pwned") is None


async def test_archival_search_insert_and_delete(page: Page, client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    path = f"/v1/agents/{agent['id']}/archival-memory/"
    assert (await client.post(path, json={"text": "Bob likes green tea."})).status_code == 200
    await page.goto(f"/#/agents/{agent['id']}/archival")
    passages = page.locator("#passages > li")
    await expect(passages).to_have_count(1)
    await page.get_by_label("New passage").fill("Bob lives in Lisbon.")
    await page.get_by_role("button", name="Insert").click()
    await expect(passages).to_have_count(2)
    await page.get_by_label("Search archival memory").fill("Lisbon")
    await page.get_by_role("button", name="Search").click()
    await expect(passages.first).to_contain_text("Bob lives in Lisbon.")
    await page.get_by_role("button", name="Latest").click()
    await expect(passages).to_have_count(2)
    await passages.filter(has_text="green tea").get_by_role("button", name="Delete").click()
    await expect(passages).to_have_count(1)
    left = (await client.get(path)).json()
    assert [p["text"] for p in left] == ["Bob lives in Lisbon."]


async def test_sources_show_their_files_status(page: Page, client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    made = await client.post("/v1/sources/", json={"name": "handbook", "embedding": "hashing/384"})
    assert made.status_code == 200, made.text
    source_id = made.json()["id"]
    files = {"file": ("tea.md", b"# Tea\n\nTea is at four.\n")}
    uploaded = await client.post(f"/v1/sources/{source_id}/upload", files=files)
    assert uploaded.status_code == 200, uploaded.text
    attached = await client.patch(f"/v1/agents/{agent['id']}/sources/attach/{source_id}")
    assert attached.status_code == 200, attached.text
    assert (await job_finished(client, uploaded.json()["id"]))["status"] == "completed"
    await page.goto(f"/#/agents/{agent['id']}")
    sources = page.locator("#sources")
    await expect(sources.locator("tbody tr")).to_have_count(1)
    await expect(sources.locator("td")).to_have_text(["handbook", "tea.md", "completed"])
