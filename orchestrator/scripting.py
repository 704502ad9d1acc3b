"""What a Python script around memgrid repeats: the model it runs on (the configured one, or a
stand-in when none is), an agent made afresh on every run, and a message sent with its run's
events followed.

The examples and ``memgrid demo`` are such scripts::

    async with model_or_stand_in(lambda: policy) as model, open_runtime() as rt:
        spec = AgentSpec(name="my-agent", model=model.handle, model_endpoint=model.endpoint)
        agent = await recreate_agent(rt, spec)
        events = await send(rt, agent.id, "Hello!")
    return model.exit_status(reached=bool(events))
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from agents.letta_messages import Event
from agents.manage import AgentSpec, create_agent, delete_agent
from agents.runs import RunStore, live_workers
from agents.runtime import Runtime
from agents.scripted import Policy, ScriptedModel
from agents.worker import Worker, WorkerSettings
from bus.envelopes import InboxMessage
from orchestrator.render import print_event
from storage.errors import NotFound
from storage.records import Agent

__all__ = ("ModelChoice", "model_or_stand_in", "recreate_agent", "send")


@dataclass(frozen=True)
class ModelChoice:
    """The model a script runs on: the environment's, or the scripted stand-in (``scripted``).

    ``handle`` and ``endpoint`` are what an agent of the script names (``AgentSpec.model`` and
    ``model_endpoint``): both None for the environment's model.
    """

    scripted: ScriptedModel | None = None

    @property
    def handle(self) -> str | None:
        return None if self.scripted is None else "openai/scripted"

    @property
    def endpoint(self) -> str | None:
        return None if self.scripted is None else self.scripted.base_url

    def exit_status(self, reached: bool) -> int:
        """0, unless the script ran on the stand-in (whose answers are fixed, so that the
        script doubles as a test) and did not reach the outcome it expected: then 1, with a
        line saying so."""
        if self.scripted is None or reached:
            return 0
        print("the scripted run did NOT reach the expected outcome")
        return 1


@asynccontextmanager
async def model_or_stand_in(
    policy: Callable[[], Policy], *, notice: str | None = None
) -> AsyncIterator[ModelChoice]:
    """The environment's model when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set; else the
    scripted model serving ``policy()``, while the block runs.

    Args:
        policy: called only when the stand-in starts, so that a policy that is costly or may
            be missing is not loaded for a real model.
        notice: printed when the stand-in starts; by default a line saying that the scripted
            model stands in and which file holds its rules. ``""`` prints nothing.
    """
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        yield ModelChoice()
        return
    rules = policy()
    scripted = ScriptedModel.serve(rules)
    await scripted.start()
    try:
        if notice is None:
            notice = (
                "No OPENAI_API_KEY or OPENAI_BASE_URL is set: the agent runs on memgrid's "
                f"SCRIPTED MODEL, a stand-in that follows the fixed rules in {_where(rules)}."
            )
        if notice:
            print(notice)
        yield ModelChoice(scripted)
    finally:
        with anyio.CancelScope(shield=True):
            await scripted.aclose()


def _where(policy: Policy) -> str:
    """The name of the file that defines ``policy`` (a function, as a rule)."""
    try:
        source = inspect.getsourcefile(policy)
    except TypeError:  # a callable object or a partial: no file of its own
        source = None
    return Path(source).name if source else "its policy"


async def recreate_agent(rt: Runtime, spec: AgentSpec) -> Agent:
    """Delete the agent named ``spec.name`` (if there is one, with all it stored), then create
    it from ``spec``: a script that starts from scratch on every run."""
    if spec.name is not None:
        try:
            await delete_agent(rt, (await rt.agents.resolve(spec.name)).id)
        except NotFound:
            pass
    return await create_agent(rt, spec)


async def send(
    rt: Runtime,
    agent_id: str,
    text: str,
    *,
    on_event: Callable[[Event], None] | None = print_event,
) -> list[Event]:
    """Queue ``text`` on the agent's inbox and follow its run to the end; its events.

    With no memgrid worker running, a worker in this process runs until the inbox is empty.

    Args:
        on_event: called with each event as it happens (by default: printed); None: quiet.
    """
    runs = RunStore(rt.redis, run_ttl_s=rt.settings.run_ttl_s)
    run = await runs.submit(agent_id, [InboxMessage(content=text)])
    events: list[Event] = []
    async with anyio.create_task_group() as tg:
        if not await live_workers(rt.redis):
            tg.start_soon(Worker(rt, WorkerSettings(burst=True)).run)
        async for event in runs.follow(agent_id, run.run_id):
            if on_event is not None:
                on_event(event)
            events.append(event)
    return events
