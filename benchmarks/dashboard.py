"""The dashboard with 10,000 agents and one agent with 100,000 messages (issue 16).

Loads the data straight through the stores (``AgentStore``, ``BlockStore``, ``MessageLog``),
not through model turns, into a private ``redis-server``; starts ``memgrid serve`` on it; then
times, over keep-alive HTTP, every request the page makes for its views: the page and a module,
the agents list (first page, a later page, a search; the same and a tag through REST), the
newest runs of every agent (REST), a block shared by every agent, one agent, its context window,
its latest messages and a page far back in recall, the operations view and a run's view
(``memgrid serve --no-worker``: the run stays queued). With ``--browser`` it also times
Chromium (Debian's ``chromium``) from navigation to the rows drawn: the agents list, the
messages tab, and one click on "Older messages".

Reported: median and p95 ms per request (``--repeat`` times each). The page never asks for
more than one page (50 agents, 50 messages) at once.

Run: ``.venv/bin/python benchmarks/dashboard.py [--browser]`` (about 40 s on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time

import anyio
import httpx
import redis.asyncio as aioredis
from _harness import (  # benchmarks/ is first on sys.path
    CLI,
    T0,
    Scratch,
    Stack,
    chat_history,
    free_port,
    memgrid_env,
    options,
    run_on_redis,
    start_api,
)

from agents.runs import RunStore
from bus import connect
from bus.envelopes import InboxMessage
from storage import keys
from storage.agents import AgentStore
from storage.blocks import BlockStore, new_block
from storage.messages import MessageLog
from storage.records import Agent, new_id

__all__ = ("main",)

AGENTS = 10_000
MESSAGES = 100_000


async def _agents(redis: aioredis.Redis, count: int) -> list[Agent]:
    """``count`` agents sharing a persona and a company block, written in pipelines of 500:
    ``AgentStore.stage_save`` for the record, plus the name, all-agents, creation and tag
    indexes that ``AgentStore.create`` keeps (one script call per agent would take ~30 s here)."""
    blocks = BlockStore(redis)
    persona = await blocks.create(new_block("persona", "I am one of many agents."))
    company = await blocks.create(new_block("company", "The company is called AgentOS."))
    store = AgentStore(redis)
    made: list[Agent] = []
    for start in range(0, count, 500):
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(start, min(count, start + 500)):
                agent = Agent(
                    id=new_id("agent"),
                    name=f"agent-{n:05d}",
                    system="You are a helpful agent.",
                    model="openai/gpt-4o-mini",
                    embedding="hashing/384",
                    tools=["send_message", "core_memory_append", "core_memory_replace"],
                    block_ids=[persona.id, company.id],
                    tags=[f"team-{n % 20}"],
                    created_at=T0 + n,
                    updated_at=T0 + n,
                )
                store.stage_save(pipe, agent)
                pipe.hset(keys.agent_names(), agent.name, agent.id)
                pipe.sadd(keys.agents_all(), agent.id)
                pipe.zadd(keys.agents_by_created(), {agent.id: agent.created_at})
                pipe.sadd(keys.agent_tags(agent.tags[0]), agent.id)
                pipe.sadd(keys.block_agents(persona.id), agent.id)
                pipe.sadd(keys.block_agents(company.id), agent.id)
                made.append(agent)
            await pipe.execute()
    return made


async def _load(redis: aioredis.Redis) -> tuple[list[Agent], Agent, float]:
    """The agents, then the last one's 100,000 messages (``MessageLog.stage``, 1,000 a
    transaction, with their recall index), the latest 30 of them in its context."""
    started = time.perf_counter()
    agents = await _agents(redis, AGENTS)
    big = agents[-1]
    log = MessageLog(redis)
    messages = chat_history(
        big.id,
        range(1, MESSAGES + 1),
        lambda n: f"message {n}: the quick brown fox jumps over the lazy dog",
        lambda n: f"reply {n}",
    )
    for i in range(0, len(messages), 1000):
        async with redis.pipeline(transaction=True) as pipe:
            log.stage(pipe, messages[i : i + 1000])
            await pipe.execute()
    # In context: the latest 30 messages, starting at a user message.
    in_context = [m.id for m in messages[-30:]]
    big = await AgentStore(redis).update(big.id, message_ids=in_context)
    # A queued run (served with --no-worker, it stays queued) for the run view.
    await RunStore(redis).submit(big.id, [InboxMessage(content="hello")])
    return agents, big, time.perf_counter() - started


async def _time(client: httpx.AsyncClient, path: str, repeat: int) -> tuple[float, float, int]:
    laps = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = await client.get(path)
        laps.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        size = len(response.content)
    laps.sort()
    return statistics.median(laps), laps[min(len(laps) - 1, int(len(laps) * 0.95))], size


async def _browser(url: str, big: Agent) -> list[tuple[str, float]]:
    from playwright.async_api import async_playwright

    chromium = os.environ.get("MEMGRID_TEST_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        raise SystemExit("--browser needs Debian's chromium (apt-get install chromium)")
    found = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium)
        page = await browser.new_page(base_url=url)
        for _ in range(2):  # the second one is what a returning user sees
            started = time.perf_counter()
            await page.goto("/")
            await page.locator("table.agents tbody tr").nth(49).wait_for()
            lap = (time.perf_counter() - started) * 1000
        found.append(("agents list: 50 rows drawn", lap))
        started = time.perf_counter()
        await page.goto(f"/#/agents/{big.id}/messages")
        await page.locator("#messages li").nth(49).wait_for()
        found.append(("messages tab: 50 messages drawn", (time.perf_counter() - started) * 1000))
        started = time.perf_counter()
        await page.locator("#older").click()
        await page.locator("#messages li").nth(99).wait_for()
        found.append(("'Older messages': 50 more drawn", (time.perf_counter() - started) * 1000))
        await browser.close()
    return found


async def _measure(args: argparse.Namespace, scratch: Scratch) -> None:
    redis = connect(scratch.url)
    stack = Stack(scratch.folder)
    try:
        agents, big, load_s = await _load(redis)
        print(f"loaded {len(agents):,} agents and {MESSAGES:,} messages in {load_s:.1f} s")
        env = memgrid_env(f"{scratch.url}/0", scratch.folder / "home", "http://127.0.0.1:9/v1")
        port = free_port()
        serve = [*CLI, "serve", "--port", str(port), "--no-worker"]
        base = await anyio.to_thread.run_sync(start_api, stack, env, serve, port)
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            shared = big.block_ids[0]
            [run] = await RunStore(redis).recent(big.id)
            middle = f"message-{MESSAGES // 2:08d}"
            paths = [
                ("page /", "/"),
                ("module app.js", "/dashboard/static/app.js"),
                ("agents: first page of 50", "/dashboard/api/agents?limit=50"),
                ("agents: page at 5,000", f"/dashboard/api/agents?after={agents[5000].id}"),
                ("agents: search", "/dashboard/api/agents?query_text=agent-0999"),
                ("REST /v1/agents?limit=50", "/v1/agents/?limit=50"),
                ("REST /v1/agents: page at 5,000", f"/v1/agents/?after={agents[5000].id}"),
                ("REST /v1/agents: one tag (500)", "/v1/agents/?tags=team-3&limit=50"),
                ("REST /v1/agents: query_text", "/v1/agents/?query_text=agent-0999"),
                ("REST /v1/runs?limit=50", "/v1/runs/?limit=50"),
                ("block shared by 10k: history", f"/dashboard/api/blocks/{shared}/history"),
                ("agent (100k messages)", f"/v1/agents/{big.id}"),
                ("its context window", f"/v1/agents/{big.id}/context"),
                ("its latest 50 messages", f"/v1/agents/{big.id}/messages?limit=50"),
                (
                    "50 messages at 50,000 back",
                    f"/v1/agents/{big.id}/messages?limit=50&before={middle}",
                ),
                ("operations", "/dashboard/api/operations"),
                ("run view", f"/dashboard/api/runs/{run.id}/trace"),
            ]
            print(f"{'request':34} {'median ms':>10} {'p95 ms':>8} {'bytes':>9}")
            for label, path in paths:
                median, p95, size = await _time(client, path, args.repeat)
                print(f"{label:34} {median:10.1f} {p95:8.1f} {size:9,}")
        if args.browser:
            print("\nChromium, navigation to drawn:")
            for label, ms in await _browser(base, big):
                print(f"{label:34} {ms:10.0f} ms")
    finally:
        stack.close()
        await redis.aclose()


def main() -> None:
    """Start a private redis-server, load it, start ``memgrid serve``, time the requests."""
    parser = options(__doc__)
    parser.add_argument("--repeat", type=int, default=20, help="requests per row")
    parser.add_argument("--browser", action="store_true", help="also time Chromium")
    run_on_redis(parser, _measure, "memgrid-dashboard-")


if __name__ == "__main__":
    main()
