"""Custom tools over a custom memory block: a task queue the agent keeps in core memory.

The agent has a ``tasks`` block holding a JSON list and two tools of our own, from
``tools.py``: ``task_queue_push`` and ``task_queue_pop``. Asked to queue two tasks, it pushes
them one by one; asked to work through them, it pops each in a later step and does it. The
block's history shows every change. Run it::

    .venv/bin/python examples/task_queue/main.py

With ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` set the agent runs on that model
(``MEMGRID_MODEL``, default openai/gpt-4o-mini); with neither, on memgrid's scripted model
following ``policy.py``.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from tools import task_queue_pop, task_queue_push  # ./tools.py, beside this file

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
    schema_from_function,
)
from agents.scripted import ScriptedModel
from bus.envelopes import InboxMessage
from orchestrator import configure_logging, open_runtime, print_event
from storage.errors import NotFound
from storage.records import Tool, new_id

AGENT = "task-agent"
SYSTEM = (
    "You are an agent that works through a task queue kept in your core memory block "
    "'tasks' (a JSON list). When the user gives you tasks, push each one separately with "
    "task_queue_push. When asked to work on your tasks, take the next one with "
    "task_queue_pop and do it, until the queue is empty; then tell the user what you did "
    "with send_message. Set request_heartbeat to true while you still have work to do."
)
TURNS = (
    "Add 'start calling me Mickey' and 'tell me a haiku about my name' as two separate tasks.",
    "Now work through your task queue.",
)


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


async def register_tools(rt: Runtime) -> None:
    """Store the two functions as tools, by import path, with schemas from their docstrings."""
    for func in (task_queue_push, task_queue_pop):
        schema = schema_from_function(func)
        await rt.tools.upsert(
            Tool(
                id=new_id("tool"),
                name=func.__name__,
                description=schema.description,
                json_schema=schema.json_schema(),
                import_path=f"{Path(__file__).with_name('tools.py')}:{func.__name__}",
            )
        )


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
        await register_tools(rt)
        agent = await create_agent(
            rt,
            AgentSpec(
                name=AGENT,
                system=SYSTEM,
                memory_blocks=[BlockSpec(label="tasks", value=json.dumps([]))],
                tools=["send_message", "task_queue_push", "task_queue_pop"],
                include_base_tools=False,
                model=None if real else "openai/scripted",
                model_endpoint=endpoint,  # None: the model endpoint of the environment
            ),
        )
        print(f"created agent {agent.name} ({agent.id}) with tools {agent.tools}")
        [tasks] = await rt.blocks.get_many(agent.block_ids)

        replies = []
        for text in TURNS:
            events = await send(rt, agent.id, text)
            replies += [e.content for e in events if isinstance(e, AssistantMessage)]
            print(f"tasks block now: {(await rt.blocks.get(tasks.id)).value}")

        history = [edit.value for edit in await rt.blocks.history(tasks.id)]
        print("\nevery version of the tasks block:")
        for number, value in enumerate(history, start=1):
            print(f"  v{number}: {value}")
        if endpoint is not None:  # the stand-in stops with this script: forget its address
            await rt.agents.update(agent.id, model_endpoint=None)

    longest = max((json.loads(value) for value in history), key=len)
    ok = len(longest) == 2 and json.loads(history[-1]) == [] and "Mickey" in replies[-1]
    print(f"\npushed two tasks, popped both, and did them: {ok}")
    if real or ok:
        return 0
    print("the scripted run did NOT reach the expected outcome")
    return 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
