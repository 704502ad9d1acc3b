"""A run's steps in Letta's ``Step`` shape, rebuilt from the run's event stream, and
``/v1/steps/{step_id}`` (a step's id, ``step-<run id>-<n>``, names its run).

Every committed step writes its messages' events with the step's id, so the steps of a run
are its events grouped by ``step_id`` in order. memgrid counts tokens per run, not per step:
a run of one step shows the run's usage on it; the steps of a longer run carry no token counts
(the run's are at ``GET /v1/runs/{run_id}/usage``).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from litestar import Controller, get
from litestar.params import FromPath

from agents.letta_messages import Event, LettaMessage, StopReason, UsageStatistics
from agents.llm import model_name
from orchestrator.api.state import Api
from storage.errors import NotFound
from storage.records import Agent, Run

__all__ = ("StepView", "StepsController", "run_steps", "steps_of")


class StepView(msgspec.Struct, kw_only=True):
    """Letta's ``Step`` (only ``id`` is required by its schema)."""

    id: str
    run_id: str
    agent_id: str
    origin: str | None = None
    provider_name: str | None = "openai"
    provider_category: str | None = "base"
    model: str | None = None
    model_handle: str | None = None
    model_endpoint: str | None = None
    context_window_limit: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    stop_reason: str | None = None
    status: str = "success"
    tags: list[str] = msgspec.field(default_factory=list)
    messages: list[object] = msgspec.field(default_factory=list)


def steps_of(
    run: Run, events: Sequence[Event], agent: Agent | None, *, ended: bool
) -> list[StepView]:
    """The steps of ``run`` whose events are ``events`` (``ended``: its last event is stored)."""
    order: list[str] = []
    for event in events:
        if isinstance(event, StopReason | UsageStatistics):
            continue
        step_id = _step_id(event)
        if step_id is not None and step_id not in order:
            order.append(step_id)
    steps = [
        StepView(
            id=step_id,
            run_id=run.id,
            agent_id=run.agent_id,
            model=model_name(agent.model) if agent else None,
            model_handle=agent.model if agent else None,
            model_endpoint=agent.model_endpoint if agent else None,
            context_window_limit=agent.context_window if agent else None,
            tags=list(agent.tags) if agent else [],
        )
        for step_id in order
    ]
    if ended and steps:
        steps[-1].stop_reason = run.stop_reason
    if ended and len(steps) == 1:  # the run's usage is that of its only step
        usage = run.usage
        steps[0].prompt_tokens, steps[0].completion_tokens = (
            usage.prompt_tokens,
            usage.completion_tokens,
        )
        steps[0].total_tokens = usage.total_tokens
    return steps


def _step_id(event: LettaMessage) -> str | None:
    return event.step_id


async def run_steps(api: Api, run: Run) -> tuple[list[StepView], list[Event]]:
    """The steps of ``run`` and its events."""
    events, ended = await api.runs.events(run.agent_id, run.id)
    try:
        agent: Agent | None = await api.agent(run.agent_id)
    except NotFound:  # the agent was deleted; its run is kept a while
        agent = None
    return steps_of(run, events, agent, ended=ended), events


class StepsController(Controller):
    """One step by its id, and its messages."""

    path = "/v1/steps"
    tags = ["steps"]

    async def _find(self, api: Api, step_id: str) -> tuple[StepView, list[Event]]:
        run_id = step_id.removeprefix("step-").rpartition("-")[0]
        try:
            steps, events = await run_steps(api, await api.runs.find(run_id))
        except NotFound:
            steps, events = [], []
        for step in steps:
            if step.id == step_id:
                return step, events
        raise NotFound(f"no step with id {step_id!r}")

    @get("/{step_id:str}")
    async def retrieve(self, step_id: FromPath[str], api: Api) -> StepView:
        """A committed step of a run kept by memgrid."""
        return (await self._find(api, step_id))[0]

    @get("/{step_id:str}/messages")
    async def messages(self, step_id: FromPath[str], api: Api) -> list[LettaMessage]:
        """The messages the step produced, in order."""
        _step, events = await self._find(api, step_id)
        return [
            e
            for e in events
            if not isinstance(e, StopReason | UsageStatistics) and e.step_id == step_id
        ]
