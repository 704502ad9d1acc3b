"""A memgrid agent learns a name, then corrects it, by editing its own core memory.

"My name is Bob" makes the agent append to its ``human`` block (``core_memory_append``);
"my name is actually Charles" makes it replace that line (``core_memory_replace``). After each
turn the block is printed; at the end, the block's history (every version, who wrote it).
Run it::

    .venv/bin/python examples/memory_agent/main.py

With ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` set the agent runs on that model
(``MEMGRID_MODEL``, default openai/gpt-4o-mini); with neither, on memgrid's scripted model
following ``policy.py``. State lives in memgrid's Redis (``MEMGRID_REDIS_URL``, else a local
server under ``.memgrid``), so ``memgrid agents show memory-agent`` shows it afterwards.
"""

from __future__ import annotations

import os
import sys
from contextlib import AsyncExitStack

import anyio

from agents import (
    AgentSpec,
    AssistantMessage,
    BlockSpec,
    Event,
    RunStore,
    Runtime,
    Worker,
    WorkerSettings,
    create_agent,
    delete_agent,
    live_workers,
)
from agents.scripted import ScriptedModel
from bus.envelopes import InboxMessage
from orchestrator import configure_logging, open_runtime, print_event
from storage.errors import NotFound

AGENT = "memory-agent"
TURNS = ("My name is Bob.", "Sorry, my name is actually Charles.", "What is my name?")


async def send(rt: Runtime, agent_id: str, text: str) -> list[Event]:
    """Queue a message on the agent's inbox and print the run's events as they happen.

    With no memgrid worker running, a worker in this process runs until the inbox is empty.
    """
    print(f"\nuser: {text}")
    runs = RunStore(rt.redis)
    run = await runs.submit(agent_id, [InboxMessage(content=text)])
    events = []
    async with anyio.create_task_group() as tg:
        if not await live_workers(rt.redis):
            tg.start_soon(Worker(rt, WorkerSettings(burst=True)).run)
        async for event in runs.follow(agent_id, run.run_id):
            print_event(event)
            events.append(event)
    return events


async def main() -> int:
    configure_logging("WARNING")
    real = bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))
    async with AsyncExitStack() as stack:
        endpoint = None
        if not real:
            from policy import policy

            scripted = await stack.enter_async_context(ScriptedModel.serve(policy))
            endpoint = scripted.base_url
            print(
                "No OPENAI_API_KEY or OPENAI_BASE_URL is set: the agent runs on memgrid's "
                "SCRIPTED MODEL, a stand-in that follows the fixed rules in policy.py."
            )
        rt = await stack.enter_async_context(open_runtime())
        try:  # start from scratch on every run
            await delete_agent(rt, (await rt.agents.resolve(AGENT)).id)
        except NotFound:
            pass
        agent = await create_agent(
            rt,
            AgentSpec(
                name=AGENT,
                memory_blocks=[
                    BlockSpec(label="persona", value="You are a helpful assistant."),
                    BlockSpec(label="human", value=""),
                ],
                model=None if real else "openai/scripted",
                model_endpoint=endpoint,  # None: the model endpoint of the environment
            ),
        )
        print(f"created agent {agent.name} ({agent.id}) on {agent.model}")
        [human] = [b for b in await rt.blocks.get_many(agent.block_ids) if b.label == "human"]

        replies = []
        for text in TURNS:
            events = await send(rt, agent.id, text)
            replies += [e.content for e in events if isinstance(e, AssistantMessage)]
            human = await rt.blocks.get(human.id)
            print(f"human block now: {human.value!r}")

        print("\nhistory of the human block:")
        for edit in await rt.blocks.history(human.id):
            print(f"  v{edit.version} by {edit.editor}: {edit.value!r}")
        if endpoint is not None:  # the stand-in stops with this script: forget its address
            await rt.agents.update(agent.id, model_endpoint=None)

    corrected = "Charles" in human.value and "Bob" not in human.value
    answered = bool(replies) and "Charles" in replies[-1]
    print(f"\nname corrected in core memory: {corrected}; last answer uses it: {answered}")
    if real or (corrected and answered):
        return 0
    print("the scripted run did NOT reach the expected outcome")
    return 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
