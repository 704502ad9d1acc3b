"""The dashboard references no other host, and asks for the API key when the API has one."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Page, expect

from orchestrator.dashboard.pages import STATIC
from tests.api.conftest import make_agent

KEY = "dashboard-secret"
# A URL with a scheme or a protocol-relative one: anything that could name another host.
ELSEWHERE = re.compile(r"""(?i)\b(?:https?|wss?|ftp):|["'(=\s]//[a-z0-9.-]""")
# The SVG namespace's name is a URI that is never fetched (createElementNS needs it).
NAMESPACES = ("http://www.w3.org/2000/svg",)


async def test_the_html_and_scripts_reference_no_other_host(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    served = {"/": page.text}
    assets = sorted(p.name for p in STATIC.iterdir() if p.suffix in {".html", ".js", ".css"})
    assert {"app.js", "api.js", "style.css"} <= set(assets)
    for name in assets:
        response = await client.get(f"/dashboard/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-security-policy"] == policy
        served[name] = response.text
    # Every module the page and the modules import is one of those served here.
    imported = set(re.findall(r'from "\./([\w.]+)"', "".join(served.values())))
    assert imported <= set(assets), imported - set(assets)
    for name, text in served.items():
        for namespace in NAMESPACES:
            text = text.replace(f'"{namespace}"', "")
        found = ELSEWHERE.findall(text)
        assert not found, f"{name} references another host: {found}"
    assert "http" not in page.text and "@import" not in served["style.css"]


@pytest.fixture
def api_key() -> str:
    return KEY


async def test_with_an_api_key_the_page_asks_for_it_and_sends_it(
    page: Page, client: httpx.AsyncClient
) -> None:
    await make_agent(client, name="guarded")
    async with httpx.AsyncClient(base_url=client.base_url) as anonymous:
        assert (await anonymous.get("/v1/agents/")).status_code == 401
        for path in ("/dashboard/api/agents", "/dashboard/api/operations"):
            assert (await anonymous.get(path)).status_code == 401, path
        assert (await anonymous.get("/")).status_code == 200  # the page holds no data
        assert (await anonymous.get("/dashboard/static/app.js")).status_code == 200
    await page.goto("/")
    await expect(page.get_by_label("API key")).to_be_visible()
    await page.get_by_label("API key").fill("wrong")
    await page.get_by_role("button", name="Use key").click()
    await expect(page.locator("#key-error")).to_contain_text("API key")
    await page.get_by_label("API key").fill(KEY)
    await page.get_by_role("button", name="Use key").click()
    await expect(page.get_by_role("link", name="guarded")).to_be_visible()
    await expect(page.get_by_label("API key")).to_be_hidden()
