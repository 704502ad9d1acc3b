"""Write docs/dashboard/*.png, a screenshot of each view of the dashboard.

    python docs/_gen_dashboard_shots.py        # needs Debian's chromium (apt-get install chromium)

Starts a private redis-server, the scripted model and ``memgrid serve`` (all on loopback,
torn down at the end), makes a few agents talk (one asks another and waits for its reply, one
holds a tool call for approval, one message is dead-lettered), then opens each view in
Chromium and saves it. Nothing here is needed to run memgrid.
"""

# ruff: noqa: E402  (the repository root goes on sys.path first)

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import httpx
from playwright.async_api import Page, async_playwright

from agents.scripted import ChatRequest, Outcome, ScriptedModel, Slow, say, tool_call
from bus import connect, find_redis_server
from tests.dashboard._seed import dead_letter_of, relay

OUT = ROOT / "docs" / "dashboard"
STORY = (
    "Here is what I know: you like tea, you live in Lisbon, and you asked me to keep "
    "notes short. Anything else?"
)


def policy(request: ChatRequest) -> Outcome:
    last = request.last_message
    said = last.text if last is not None else ""
    result = request.last_tool_result
    if result is not None and last is not None and '"type": "heartbeat"' in said:
        return say(f"Done: {json.loads(result.content)['message']}")
    if result is not None and last is not None and last.role == "tool":
        if "core_memory_append" in said or "Appended" in said:
            return say("Noted for later.")
        return say(f"Bob says: {result.content}", thought="Bob answered; I pass it on.")
    relayed = relay(
        said, question="When is tea?", note="Alice asked about tea", answer="Tea is at four."
    )
    if relayed is not None:
        return relayed
    if "remember" in said:
        return tool_call("core_memory_append", label="human", content="Likes green tea.")
    if "tell me" in said:
        return Slow(seconds=0.0, then=say(STORY, thought="Summing up the notes."), chunk_delay=0.2)
    return say(f"Noted: {said[:60]}", thought="A short answer will do.")


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _up(client: httpx.AsyncClient) -> None:
    for _ in range(600):
        try:
            if (await client.get("/v1/health/")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("memgrid serve did not start")


async def _agent(client: httpx.AsyncClient, name: str, **fields: object) -> dict[str, str]:
    body = {
        "name": name,
        "memory_blocks": [
            {"label": "persona", "value": f"I am {name}, a helpful assistant."},
            {"label": "human", "value": "Name: Ana. Lives in Lisbon."},
        ],
        **fields,
    }
    response = await client.post("/v1/agents/", json=body)
    response.raise_for_status()
    made: dict[str, str] = response.json()
    return made


async def _say(client: httpx.AsyncClient, agent_id: str, text: str) -> dict[str, object]:
    body = {"messages": [{"role": "user", "content": text}]}
    response = await client.post(f"/v1/agents/{agent_id}/messages", json=body)
    response.raise_for_status()
    result: dict[str, object] = response.json()
    return result


async def _shot(page: Page, path: str, name: str, ready: str) -> None:
    await page.goto(path)
    await page.locator(ready).first.wait_for()
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=OUT / f"{name}.png", full_page=True)
    print(f"docs/dashboard/{name}.png")


async def main() -> None:
    chromium = os.environ.get("MEMGRID_TEST_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        raise SystemExit("needs Debian's chromium: apt-get install chromium")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        redis_port, api_port = _port(), _port()
        redis_proc = await asyncio.to_thread(
            subprocess.Popen,
            [find_redis_server(), "--port", str(redis_port), "--save", "", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{redis_port}/0"
        serve: subprocess.Popen[bytes] | None = None
        try:
            async with ScriptedModel.serve(policy) as model:
                env = {
                    **os.environ,
                    "MEMGRID_REDIS_URL": url,
                    "MEMGRID_HOME": str(Path(folder) / "home"),
                    "MEMGRID_EMBEDDING": "hashing/384",
                    "OPENAI_BASE_URL": model.base_url,
                    "OPENAI_API_KEY": "scripted",
                }
                env.pop("MEMGRID_API_KEY", None)
                serve = await asyncio.to_thread(
                    subprocess.Popen,
                    [sys.executable, "-m", "orchestrator.cli", "serve", "--port", str(api_port)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                base = f"http://127.0.0.1:{api_port}"
                async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                    await _up(client)
                    await _views(client, base, chromium, url)
        finally:
            if serve is not None:
                serve.terminate()
                await asyncio.to_thread(serve.wait, 30)
            redis_proc.terminate()
            await asyncio.to_thread(redis_proc.wait, 10)


async def _views(client: httpx.AsyncClient, base: str, chromium: str, redis_url: str) -> None:
    bob = await _agent(client, "bob", tags=["support"])
    alice = await _agent(client, "alice", tags=["support", "lead"], include_multi_agent_tools=True)
    rules = [{"type": "requires_approval", "tool_name": "core_memory_append"}]
    carol = await _agent(client, "carol", tool_rules=rules, tags=["careful"])
    for name in ("researcher", "writer", "reviewer"):
        await _agent(client, name, tags=["team"])
    for text in ("Hello Bob!", "I like tea.", "Please keep notes short."):
        await _say(client, bob["id"], text)
    asked = await _say(client, alice["id"], f"ask {bob['id']}")
    run_id = asked["messages"][0]["run_id"]  # type: ignore[index]
    await _say(client, carol["id"], "remember that I like green tea")
    for text in ("Ana prefers tea at four.", "Ana lives in Lisbon since 2019."):
        path = f"/v1/agents/{bob['id']}/archival-memory/"
        (await client.post(path, json={"text": text})).raise_for_status()
    source = await client.post(
        "/v1/sources/", json={"name": "handbook", "embedding": "hashing/384"}
    )
    source.raise_for_status()
    source_id = source.json()["id"]
    files = {"file": ("tea-policy.md", b"# Tea\n\nTea is served at four, every day.\n")}
    (await client.post(f"/v1/sources/{source_id}/upload", files=files)).raise_for_status()
    path = f"/v1/agents/{bob['id']}/sources/attach/{source_id}"
    (await client.patch(path)).raise_for_status()
    redis = connect(redis_url)
    failed = "ModelError: the model endpoint answered 503 five times"
    await dead_letter_of(redis, bob["id"], failed, run_id="run-example", envelope=b"{}", attempts=5)
    await redis.aclose()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium)
        page = await browser.new_page(base_url=base, viewport={"width": 1280, "height": 860})
        await _shot(page, "/", "agents", "table.agents tbody tr")
        await _shot(page, f"/#/agents/{bob['id']}", "agent", "#context .bar")
        await page.locator('form[data-label="human"] summary').click()
        await page.locator(".versions li").first.wait_for()
        await page.screenshot(path=OUT / "agent-block-history.png", full_page=True)
        await _shot(page, f"/#/agents/{bob['id']}/messages", "messages", "#messages li")
        await _shot(page, f"/#/agents/{bob['id']}/archival", "archival", "#passages li")
        await page.goto(f"/#/agents/{bob['id']}/chat")
        await page.get_by_label("Message").fill("tell me what you know")
        await page.get_by_role("button", name="Send").click()
        started = time.monotonic()
        # Mid-reply: some of its pieces drawn, not all.
        await page.locator("#chat-log [data-type=assistant_message] .piece").nth(5).wait_for()
        # The viewport, where the chat follows the reply (a full-page capture re-lays the
        # page out and shows it as it was before the stream).
        await page.screenshot(path=OUT / "chat-streaming.png")
        await page.locator('#chat-log [data-stop-reason="end_turn"]').wait_for()
        print(f"docs/dashboard/chat-streaming.png ({time.monotonic() - started:.1f} s)")
        await _shot(page, f"/#/agents/{carol['id']}/chat", "approval", "button.approve")
        await _shot(page, f"/#/runs/{run_id}", "run", "#trace li")
        await _shot(page, "/#/operations", "operations", "#workers tbody tr")
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
