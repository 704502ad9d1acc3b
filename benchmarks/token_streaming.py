"""What token streaming costs a turn: one-step turns with and without ``stream_tokens``.

One agent, a fresh in-context list every turn (untimed), the scripted model in this process
answering ``say(REPLY, thought=THOUGHT)`` at once over loopback HTTP with ``--chunk-chars``
characters per streamed piece. Rows take turns (plain, streamed, plain...), so drift hits both
alike. A streamed turn reads the model's SSE stream and publishes one Redis round trip of deltas
per chunk that carries text (reasoning or reply); the table shows the median and p95 turn time
and the delta entries per turn.

Run: ``.venv/bin/python benchmarks/token_streaming.py`` (a few seconds);
``--turns 200 --chunk-chars 16 --reply-chars 400``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _harness import (  # benchmarks/ is first on sys.path
    Scratch,
    one_step_turn,
    options,
    percentile,
    run_on_redis,
    table,
)

from agents.llm import LLMSettings
from agents.manage import AgentSpec, create_agent
from agents.runtime import LLMPool, Runtime
from agents.scripted import ScriptedModel, say
from bus import connect
from bus import keys as bus_keys
from storage.records import Run, new_id

THOUGHT = "The user asked for an answer; I will write it out in full for them."


async def _turn(rt: Runtime, agent_id: str, stream: bool) -> tuple[float, int]:
    """One timed turn; the delta entries it published."""
    await rt.agents.update(agent_id, message_ids=[])
    run = Run(id=new_id("run"), agent_id=agent_id, stream_tokens=stream)
    started = time.perf_counter()
    await one_step_turn(rt, agent_id, "go", run=run, steps=None)
    lap = (time.perf_counter() - started) * 1000
    entries = await rt.redis.xlen(bus_keys.run_events(agent_id, run.id))
    committed = 3  # the reasoning, the reply and the tool return, then stop and usage
    return lap, max(0, entries - committed - 2)


async def _run(args: argparse.Namespace, redis: Scratch) -> None:
    client = connect(redis.url)
    reply = ("streamed words " * (args.reply_chars // 15 + 1))[: args.reply_chars]
    answer = say(reply, thought=THOUGHT)
    async with ScriptedModel.serve(lambda request: answer, chunk_chars=args.chunk_chars) as model:
        rt = Runtime(redis=client, llm=LLMPool(LLMSettings(base_url=model.base_url)))
        try:
            agent = await create_agent(rt, AgentSpec(name="bench", model="openai/scripted"))
            for _ in range(args.warmup):
                await _turn(rt, agent.id, False)
                await _turn(rt, agent.id, True)
            laps: dict[bool, list[float]] = {False: [], True: []}
            deltas: list[int] = []
            for _ in range(args.turns):
                for stream in (False, True):
                    lap, published = await _turn(rt, agent.id, stream)
                    laps[stream].append(lap)
                    if stream:
                        deltas.append(published)
        finally:
            await rt.aclose()
            await client.aclose()
    print(
        f"\none-step turns, reply {args.reply_chars} chars + thought {len(THOUGHT)} chars, "
        f"{args.chunk_chars} chars per model chunk, {args.turns} turns per row\n"
    )
    table(
        ["row", "median ms", "p95 ms", "delta entries per turn"],
        (
            [
                "stream_tokens" if stream else "plain",
                *(f"{percentile(laps[stream], pct):.2f}" for pct in (50, 95)),
                f"{statistics.median(deltas):.0f}" if stream else "0",
            ]
            for stream in (False, True)
        ),
    )


def main() -> None:
    parser = options(__doc__, turns=200, warmup=20)
    parser.add_argument("--chunk-chars", type=int, default=16, help="characters per chunk")
    parser.add_argument("--reply-chars", type=int, default=400, help="characters of the reply")
    run_on_redis(parser, _run, "memgrid-tokens-")


if __name__ == "__main__":
    main()
