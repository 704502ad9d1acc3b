"""``/v1/runs``, ``/v1/jobs`` and ``/v1/health``: runs started by messages, and liveness."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from typing import Literal

import msgspec
from litestar import Controller, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream

from agents import run_pages
from agents.letta_messages import LettaMessage, StopReason, UsageStatistics
from orchestrator.api.callbacks import callback_state
from orchestrator.api.errors import RETRY_AFTER_S, ApiError
from orchestrator.api.ingestion import JobView, file_job_view
from orchestrator.api.messages import sse
from orchestrator.api.paging import Order, PageQuery, Paging, cursors, descending, ordered
from orchestrator.api.state import Api
from orchestrator.api.steps import StepView, run_steps
from orchestrator.api.views import Health, RunStatus, RunView, run_view
from storage.agents import UnknownCursor
from storage.errors import NotFound
from storage.records import Run
from storage.sources import SourceStore

__all__ = ("CancelController", "JobsController", "RunsController", "health", "version")


def version() -> str:
    """memgrid's version (``0.0.0`` when not installed)."""
    try:
        return metadata.version("memgrid")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@get("/v1/health/", opt={"public": True}, tags=["health"])
async def health(api: Api) -> Response[Health]:
    """Liveness: 200 with ``status: ok`` when Redis answers, else 503."""
    try:
        await api.rt.redis.ping()
    except Exception:  # any failure to reach Redis means not healthy
        return Response(
            Health(version=version(), status="unavailable"),
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return Response(Health(version=version(), status="ok"))


ACTIVE = frozenset({"created", "running", "waiting"})
"""The statuses of a run that has not finished."""


async def _recent_runs(api: Api, agent_ids: list[str]) -> list[Run]:
    """The recent runs (up to 1000 each) of ``agent_ids``."""
    runs: list[Run] = []
    for one in dict.fromkeys(agent_ids):
        runs += await api.runs.recent(one, limit=1000)
    return runs


async def _every_agents_runs(
    api: Api, keep: Callable[[Run], bool], paging: PageQuery, descending: bool
) -> list[Run]:
    """A page of every agent's runs that ``keep`` accepts, through the index of runs by
    creation time (:mod:`agents.run_pages`): no agent's record or run list is read."""
    await run_pages.backfill(api.rt.redis)
    try:
        return await run_pages.page(
            api.rt.redis,
            keep=keep,
            after=paging.after,
            before=paging.before,
            limit=paging.count,
            descending=descending,
        )
    except UnknownCursor as e:
        raise ApiError(404, str(e), field=e.field, source="query") from None


class RunsController(Controller):
    """Runs: list, retrieve, their messages and usage, and following them live."""

    path = "/v1/runs"
    tags = ["runs"]

    @get("/", dependencies=ordered(100))
    async def list_runs(
        self,
        api: Api,
        *,
        agent_id: FromQuery[str | None] = None,
        agent_ids: FromQuery[list[str] | None] = None,
        statuses: FromQuery[list[RunStatus] | None] = None,
        active: FromQuery[bool | None] = None,
        stop_reason: FromQuery[str | None] = None,
        paging: Paging,
        ascending: FromQuery[bool | None] = None,
        order_by: FromQuery[Literal["created_at"]] = "created_at",
    ) -> list[RunView]:
        """Runs, newest first unless ``order=asc`` (``order_by`` is always ``created_at``), in
        one of ``statuses``, ended with ``stop_reason``, and only unfinished ones with
        ``active=true`` (finished ones with false): of every agent, or (up to their 1000 most
        recent each) of the agents named by ``agent_id``/``agent_ids``. Letta's
        ``background`` and ``conversation_id`` are ignored: memgrid has neither background
        streams nor conversations."""
        ids = [*([agent_id] if agent_id else []), *(agent_ids or [])]

        def keep(run: Run) -> bool:
            return (
                (statuses is None or run_view(run).status in statuses)
                and (active is None or (run.status in ACTIVE) == active)
                and (stop_reason is None or run.stop_reason == stop_reason)
            )

        newest_first = descending(paging.order, ascending)
        if not ids:
            return [run_view(r) for r in await _every_agents_runs(api, keep, paging, newest_first)]
        runs = [r for r in await _recent_runs(api, ids) if keep(r)]
        runs.sort(key=lambda r: (r.created_at, r.id))
        order: Order = "desc" if newest_first else "asc"
        return [run_view(r) for r in replace(paging, order=order).of(runs, lambda r: r.id)]

    @get("/active")
    async def list_active(self, api: Api) -> list[RunView]:
        """Every agent's runs not finished yet, newest first."""
        runs = await _every_agents_runs(api, lambda r: r.status in ACTIVE, PageQuery(), True)
        return [run_view(r) for r in runs]

    @get("/{run_id:str}")
    async def retrieve(self, run_id: FromPath[str], api: Api) -> RunView:
        """One run."""
        run = await api.runs.find(run_id)
        return run_view(run, await callback_state(api.rt.redis, run.agent_id, run.id))

    @get("/{run_id:str}/messages", dependencies=cursors())
    async def messages(self, run_id: FromPath[str], api: Api, paging: Paging) -> list[LettaMessage]:
        """The messages the run has produced so far."""
        run = await api.runs.find(run_id)
        events, _ended = await api.runs.events(run.agent_id, run.id)
        messages = [e for e in events if not isinstance(e, StopReason | UsageStatistics)]
        return paging.of(messages, lambda m: m.id)

    @get("/{run_id:str}/usage")
    async def usage(self, run_id: FromPath[str], api: Api) -> UsageStatistics:
        """Tokens and steps the run has used so far."""
        usage = (await api.runs.find(run_id)).usage
        return UsageStatistics(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            step_count=usage.step_count,
        )

    @get("/{run_id:str}/steps", dependencies=ordered())
    async def steps(self, run_id: FromPath[str], api: Api, paging: Paging) -> list[StepView]:
        """The run's committed steps, oldest first unless ``order=desc``."""
        found, _events = await run_steps(api, await api.runs.find(run_id))
        return paging.of(found, lambda s: s.id)

    @post("/{run_id:str}/stream", status_code=200)
    async def stream(self, run_id: FromPath[str], api: Api) -> Stream:
        """Follow the run's events from its first as Server-Sent Events."""
        run = await api.runs.find(run_id)
        return sse(api, run.agent_id, run.id)


class CancelIn(msgspec.Struct, kw_only=True):
    """Letta's ``CancelAgentRunRequest``."""

    run_ids: list[str] | None = None


class CancelController(Controller):
    """``POST /v1/agents/{agent_id}/messages/cancel``: stop an agent's unfinished runs."""

    path = "/v1/agents/{agent_id:str}/messages/cancel"
    tags = ["agents"]

    @post("/", status_code=200)
    async def cancel(
        self, agent_id: FromPath[str], api: Api, data: JSONBody[CancelIn | None] = None
    ) -> dict[str, str]:
        """Cancel ``run_ids`` (default: every unfinished run of the agent).

        A queued run ends ``cancelled`` without calling the model; a running one after its
        current step (committed as usual); a run waiting on another agent when it resumes.
        Answers each run id with ``cancelled``, or the final status of one already finished.
        """
        await api.agent(agent_id)
        run_ids = data.run_ids if data is not None else None
        for run_id in run_ids or []:
            try:
                owner: str | None = (await api.runs.find(run_id)).agent_id
            except NotFound:
                owner = None
            if owner != agent_id:
                raise ApiError(404, f"no run {run_id!r} of agent {agent_id!r}", field="run_ids")
        return await api.runs.cancel(agent_id, run_ids)


class JobsController(Controller):
    """Letta 0.11's ``/v1/jobs/{job_id}``: runs, and document uploads (by their file id)."""

    path = "/v1/jobs"
    tags = ["runs"]

    @get("/{job_id:str}")
    async def retrieve(self, job_id: FromPath[str], api: Api) -> RunView | JobView:
        """A run, or a file's ingestion, as a job."""
        if job_id.startswith("file-"):
            return file_job_view(await SourceStore(api.rt.redis).get_file(job_id))
        run = await api.runs.find(job_id)
        return run_view(run, await callback_state(api.rt.redis, run.agent_id, run.id))

    @patch("/{job_id:str}/cancel")
    async def cancel(self, job_id: FromPath[str], api: Api) -> RunView:
        """Cancel a run, as ``POST /v1/agents/{agent_id}/messages/cancel`` does for its agent:
        it ends ``cancelled`` before its next step (answered as it is now)."""
        if job_id.startswith("file-"):
            raise ApiError(409, "a document upload cannot be cancelled; delete the file instead")
        run = await api.runs.find(job_id)
        await api.runs.cancel(run.agent_id, [run.id])
        return run_view(run)
