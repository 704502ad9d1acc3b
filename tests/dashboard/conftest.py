"""The dashboard driven in a real headless Chromium (Debian's ``chromium``; never a downloaded
browser) against the real served API, embedded worker and scripted model of tests/api."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.api.conftest import Served, api_key, client, policy, served

__all__ = ("api_key", "browser", "client", "page", "policy", "served")


def chromium_path() -> str:
    """Debian's chromium (``.ci/run`` installs it when missing); MEMGRID_TEST_CHROMIUM wins."""
    found = os.environ.get("MEMGRID_TEST_CHROMIUM") or shutil.which("chromium")
    if not found:
        raise RuntimeError(
            "the dashboard tests need Debian's chromium: apt-get install chromium "
            "(or set MEMGRID_TEST_CHROMIUM to a Chromium binary)"
        )
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=chromium_path())
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser, served: Served) -> AsyncIterator[Page]:
    """A page on the dashboard's origin that fails the test on any request to another host,
    any uncaught script error and any console error."""
    context = await browser.new_context(
        base_url=served.url, viewport={"width": 1280, "height": 900}
    )
    opened = await context.new_page()
    elsewhere: list[str] = []
    problems: list[str] = []

    def on_request(request: Any) -> None:
        if not (request.url.startswith(served.url + "/") or request.url.startswith("data:")):
            elsewhere.append(request.url)

    def on_console(message: Any) -> None:
        # A 4xx the page shows (a refused retry, a 401 before the key) is the browser's note
        # of a response, not a script error.
        if message.type == "error" and "with a status of 4" not in message.text:
            problems.append(message.text)

    opened.on("request", on_request)
    opened.on("console", on_console)
    opened.on("pageerror", lambda exc: problems.append(str(exc)))
    opened.on("dialog", lambda dialog: dialog.accept())
    opened.set_default_timeout(15_000)
    try:
        yield opened
    finally:
        await context.close()
    assert elsewhere == [], f"the page reached other hosts: {elsewhere}"
    assert problems == [], f"script errors on the page: {problems}"
