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

import sys

import anyio
from policy import policy  # ./policy.py, beside this file: the stand-in's rules

from agents import AgentSpec, AssistantMessage, BlockSpec
from orchestrator import configure_logging, model_or_stand_in, open_runtime, recreate_agent, send

AGENT = "memory-agent"
TURNS = ("My name is Bob.", "Sorry, my name is actually Charles.", "What is my name?")


async def main() -> int:
    configure_logging("WARNING")
    # With no model configured, the scripted model stands in (and says so) until the end.
    async with model_or_stand_in(lambda: policy) as model, open_runtime() as rt:
        agent = await recreate_agent(  # start from scratch on every run
            rt,
            AgentSpec(
                name=AGENT,
                memory_blocks=[
                    BlockSpec(label="persona", value="You are a helpful assistant."),
                    BlockSpec(label="human", value=""),
                ],
                model=model.handle,  # None: the environment's model, and its endpoint
                model_endpoint=model.endpoint,
            ),
        )
        print(f"created agent {agent.name} ({agent.id}) on {agent.model}")
        [human] = [b for b in await rt.blocks.get_many(agent.block_ids) if b.label == "human"]

        replies = []
        for text in TURNS:
            print(f"\nuser: {text}")
            # With no memgrid worker running, a worker in this process runs the turn.
            events = await send(rt, agent.id, text)
            replies += [e.content for e in events if isinstance(e, AssistantMessage)]
            human = await rt.blocks.get(human.id)
            print(f"human block now: {human.value!r}")

        print("\nhistory of the human block:")
        for edit in await rt.blocks.history(human.id):
            print(f"  v{edit.version} by {edit.editor}: {edit.value!r}")
        if model.endpoint is not None:  # the stand-in stops with this script: forget its address
            await rt.agents.update(agent.id, model_endpoint=None)

    corrected = "Charles" in human.value and "Bob" not in human.value
    answered = bool(replies) and "Charles" in replies[-1]
    print(f"\nname corrected in core memory: {corrected}; last answer uses it: {answered}")
    return model.exit_status(corrected and answered)  # the stand-in: 1 unless as expected


if __name__ == "__main__":
    sys.exit(anyio.run(main))
