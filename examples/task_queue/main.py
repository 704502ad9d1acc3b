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
import sys
from pathlib import Path

import anyio
from policy import policy  # ./policy.py, beside this file: the stand-in's rules
from tools import task_queue_pop, task_queue_push  # ./tools.py, beside this file

from agents import AgentSpec, AssistantMessage, BlockSpec, Runtime, schema_from_function
from orchestrator import configure_logging, model_or_stand_in, open_runtime, recreate_agent, send
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
    # With no model configured, the scripted model stands in (and says so) until the end.
    async with model_or_stand_in(lambda: policy) as model, open_runtime() as rt:
        await register_tools(rt)
        agent = await recreate_agent(  # start from scratch on every run
            rt,
            AgentSpec(
                name=AGENT,
                system=SYSTEM,
                memory_blocks=[BlockSpec(label="tasks", value=json.dumps([]))],
                tools=["send_message", "task_queue_push", "task_queue_pop"],
                include_base_tools=False,
                model=model.handle,  # None: the environment's model, and its endpoint
                model_endpoint=model.endpoint,
            ),
        )
        print(f"created agent {agent.name} ({agent.id}) with tools {agent.tools}")
        [tasks] = await rt.blocks.get_many(agent.block_ids)

        replies = []
        for text in TURNS:
            print(f"\nuser: {text}")
            # With no memgrid worker running, a worker in this process runs the turn.
            events = await send(rt, agent.id, text)
            replies += [e.content for e in events if isinstance(e, AssistantMessage)]
            print(f"tasks block now: {(await rt.blocks.get(tasks.id)).value}")

        history = [edit.value for edit in await rt.blocks.history(tasks.id)]
        print("\nevery version of the tasks block:")
        for number, value in enumerate(history, start=1):
            print(f"  v{number}: {value}")
        if model.endpoint is not None:  # the stand-in stops with this script: forget its address
            await rt.agents.update(agent.id, model_endpoint=None)

    longest = max((json.loads(value) for value in history), key=len)
    ok = len(longest) == 2 and json.loads(history[-1]) == [] and "Mickey" in replies[-1]
    print(f"\npushed two tasks, popped both, and did them: {ok}")
    return model.exit_status(ok)  # the stand-in: 1 unless as expected


if __name__ == "__main__":
    sys.exit(anyio.run(main))
