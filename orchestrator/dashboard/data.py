"""``/dashboard/api/...``: the few facts the page needs that the REST API has no route for.

Everything else the page shows comes from the Letta-compatible routes themselves. These read
the same stores (:class:`orchestrator.api.state.ApiState`), under the same API key.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery

from agents.letta_messages import iso
from agents.metrics import sample_ready
from agents.runs import live_workers, retry_dead_letter
from bus import keys as bus_keys
from bus.recent_errors import read_errors
from bus.streams import list_dead_letters
from orchestrator.api.errors import ApiError
from orchestrator.api.state import Api, page
from storage import keys
from storage._util import mget
from storage.records import Agent, AgentType, Run, decode

__all__ = (
    "AgentPage",
    "AgentStats",
    "AgentSummary",
    "BlockHistory",
    "DashboardDataController",
    "DeadLetterView",
    "Operations",
    "PendingCall",
    "WorkerView",
)

PAGE = 50
MAX_IDS = 200
RECENT_RUNS = 20
IN_FLIGHT = ("created", "running", "waiting")
DEAD_LETTERS_SHOWN = 100
ERRORS_SHOWN = 20
SHARERS_SHOWN = 100


class AgentStats(msgspec.Struct, kw_only=True):
    """What the agents list adds to ``GET /v1/agents``: activity and queued work."""

    id: str
    inbox_depth: int
    runs_in_flight: int
    last_activity: str | None


class AgentSummary(msgspec.Struct, kw_only=True):
    """One row of the agents list."""

    id: str
    name: str
    agent_type: AgentType
    model: str
    tags: list[str]
    created_at: str
    updated_at: str
    last_activity: str | None
    inbox_depth: int
    runs_in_flight: int


class AgentPage(msgspec.Struct, kw_only=True):
    agents: list[AgentSummary]
    total: int
    matching: int


def _summary(agent: Agent, stats: AgentStats) -> AgentSummary:
    return AgentSummary(
        id=agent.id,
        name=agent.name,
        agent_type=agent.agent_type,
        model=agent.model,
        tags=agent.tags,
        created_at=iso(agent.created_at),
        updated_at=iso(agent.updated_at),
        last_activity=stats.last_activity or iso(agent.updated_at),
        inbox_depth=stats.inbox_depth,
        runs_in_flight=stats.runs_in_flight,
    )


class PendingCall(msgspec.Struct, kw_only=True):
    """A tool call held for approval (``requires_approval``)."""

    tool_call_id: str
    name: str
    arguments: str


class AgentRef(msgspec.Struct, kw_only=True):
    id: str
    name: str


class BlockEditView(msgspec.Struct, kw_only=True):
    version: int
    value: str
    editor: str
    at: str


class BlockHistory(msgspec.Struct, kw_only=True):
    """A block's versions (newest first) and the agents that share it."""

    block_id: str
    edits: list[BlockEditView]
    agents: list[AgentRef]
    """The first agents sharing it by id, at most :data:`SHARERS_SHOWN` of them."""
    agent_count: int


class WorkerView(msgspec.Struct, kw_only=True):
    worker_id: str
    host: str
    pid: int
    started_at: str | None
    slots: int | None
    slots_in_use: int
    leases_held: int
    runs: int
    failed: int
    dead_lettered: int


class DeadLetterView(msgspec.Struct, kw_only=True):
    id: str
    agent_id: str
    agent_name: str | None = None
    run_id: str
    error: str
    attempts: int
    at: str | None


class ErrorView(msgspec.Struct, kw_only=True):
    """One of the recent errors: ``kind`` is ``model_<kind>``, ``tool``, ``sandbox_limit`` or
    ``dead_letter``."""

    id: str
    kind: str
    agent_id: str
    agent_name: str | None = None
    run_id: str
    message: str
    at: str | None


class Operations(msgspec.Struct, kw_only=True):
    """The state of the workers and of the work waiting for them."""

    workers: list[WorkerView]
    ready_signals: int
    inbox_lag_seconds: float
    dead_letters: list[DeadLetterView]
    dead_letter_count: int
    recent_errors: list[ErrorView]
    """The newest :data:`ERRORS_SHOWN` from the workers' recent-errors stream, newest first."""


class Retried(msgspec.Struct, kw_only=True):
    run_id: str
    agent_id: str


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _worker(state: dict[str, Any]) -> WorkerView:
    started = state.get("started_at")
    slots = state.get("slots")
    return WorkerView(
        worker_id=str(state.get("worker_id", "")),
        host=str(state.get("host", "")),
        pid=_int(state.get("pid")),
        started_at=iso(float(started)) if isinstance(started, int | float) else None,
        slots=slots if isinstance(slots, int) else None,
        slots_in_use=_int(state.get("busy")),
        # A worker holds one agent's lease for each slot in use, and no other.
        leases_held=_int(state.get("busy")),
        runs=_int(state.get("runs")),
        failed=_int(state.get("failed")),
        dead_lettered=_int(state.get("dead_lettered")),
    )


def _dead_letter(row: dict[str, Any]) -> DeadLetterView:
    at = row.get("at")
    try:
        when = iso(float(at)) if at is not None else None
    except ValueError:
        when = None
    return DeadLetterView(
        id=str(row["id"]),
        agent_id=str(row.get("agent_id", "")),
        run_id=str(row.get("run_id", "")),
        error=str(row.get("error", "")),
        attempts=_int(row.get("attempts")),
        at=when,
    )


async def _names(api: Api, agent_ids: list[str]) -> dict[str, str]:
    """Agent id -> name, for the agents that still exist."""
    raws = await mget(api.rt.redis, [keys.agent(i) for i in agent_ids]) if agent_ids else []
    return {a.id: a.name for a in (decode(Agent, raw) for raw in raws if raw is not None)}


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class DashboardDataController(Controller):
    """Read routes of the dashboard (and the retry of a dead letter)."""

    path = "/dashboard/api"
    include_in_schema = False

    @get("/agents")
    async def agents(
        self,
        api: Api,
        query_text: FromQuery[str | None] = None,
        after: FromQuery[str | None] = None,
        limit: FromQuery[int] = PAGE,
    ) -> AgentPage:
        """A page of agents by name (``query_text``: a substring of it, any case), with their
        activity and queued work. Only the page's agents are read: the name index orders and
        filters, so 10,000 agents cost what 50 do."""
        if not 1 <= limit <= MAX_IDS:
            raise ApiError(422, f"must be between 1 and {MAX_IDS}", field="limit", source="query")
        redis = api.rt.redis
        names = sorted(
            (_text(name), _text(agent_id))
            for name, agent_id in (await redis.hgetall(keys.agent_names())).items()
        )
        matching = names
        if query_text:
            needle = query_text.lower()
            matching = [pair for pair in names if needle in pair[0].lower()]
        chosen = page(matching, lambda pair: pair[1], after=after, before=None, limit=limit)
        ids = [agent_id for _name, agent_id in chosen]
        raws = await mget(redis, [keys.agent(i) for i in ids]) if ids else []
        found = [decode(Agent, raw) for raw in raws if raw is not None]
        stats = {s.id: s for s in await self._stats(api, [a.id for a in found])}
        return AgentPage(
            agents=[_summary(agent, stats[agent.id]) for agent in found],
            total=len(names),
            matching=len(matching),
        )

    async def _stats(self, api: Api, ids: list[str]) -> list[AgentStats]:
        """Inbox depth, runs in flight and last activity of each agent in ``ids``."""
        redis = api.rt.redis
        if not ids:
            return []
        async with redis.pipeline(transaction=False) as pipe:
            for agent_id in ids:
                pipe.xlen(bus_keys.inbox(agent_id))
                pipe.zrevrange(keys.agent_runs(agent_id), 0, RECENT_RUNS - 1, withscores=True)
            replies = await pipe.execute()
        run_keys = [
            keys.run(agent_id, _text(run_id))
            for n, agent_id in enumerate(ids)
            for run_id, _score in replies[2 * n + 1]
        ]
        in_flight: dict[str, int] = {}
        for raw in await mget(redis, run_keys) if run_keys else []:
            if raw is not None:
                run = decode(Run, raw)
                in_flight[run.agent_id] = in_flight.get(run.agent_id, 0) + (run.status in IN_FLIGHT)
        stats: list[AgentStats] = []
        for n, agent_id in enumerate(ids):
            depth, runs = replies[2 * n], replies[2 * n + 1]
            last = max((float(score) for _id, score in runs), default=None)
            stats.append(
                AgentStats(
                    id=agent_id,
                    inbox_depth=int(depth),
                    runs_in_flight=in_flight.get(agent_id, 0),
                    last_activity=iso(last) if last is not None else None,
                )
            )
        return stats

    @get("/agents/{agent_id:str}/pending-approvals")
    async def pending_approvals(self, agent_id: FromPath[str], api: Api) -> list[PendingCall]:
        """The tool calls the agent holds until someone approves or denies them (a message
        list shows them as tool calls; the chat offers to answer them)."""
        agent = await api.agent(agent_id)
        return [
            PendingCall(tool_call_id=c.id, name=c.name, arguments=c.arguments)
            for c in agent.pending_approval
        ]

    @get("/blocks/{block_id:str}/history")
    async def block_history(self, block_id: FromPath[str], api: Api) -> BlockHistory:
        """Every kept version of a block, newest first, and the agents it is attached to."""
        block = await api.rt.blocks.get(block_id)
        edits = await api.rt.blocks.history(block.id)
        every = await api.rt.blocks.attached_agents(block.id)
        agent_ids = sorted(every)[:SHARERS_SHOWN]
        raws = await mget(api.rt.redis, [keys.agent(i) for i in agent_ids]) if agent_ids else []
        agents = [
            AgentRef(id=agent.id, name=agent.name)
            for agent in (decode(Agent, raw) for raw in raws if raw is not None)
        ]
        return BlockHistory(
            block_id=block.id,
            edits=[
                BlockEditView(version=e.version, value=e.value, editor=e.editor, at=iso(e.at))
                for e in sorted(edits, key=lambda e: e.version, reverse=True)
            ],
            agents=sorted(agents, key=lambda a: a.name),
            agent_count=len(every),
        )

    @get("/operations")
    async def operations(self, api: Api) -> Operations:
        """Workers alive, inbox lag, dead letters and recent errors."""
        redis = api.rt.redis
        workers = [_worker(w) for w in await live_workers(redis) if isinstance(w, dict)]
        lag = await sample_ready(redis)
        letters = [_dead_letter(row) for row in await list_dead_letters(redis, count=10_000)]
        errors = await read_errors(redis, count=ERRORS_SHOWN)
        shown = {d.agent_id for d in letters[:DEAD_LETTERS_SHOWN]} | {e.agent_id for e in errors}
        names = await _names(api, sorted(shown))
        for letter in letters:
            letter.agent_name = names.get(letter.agent_id)
        return Operations(
            workers=sorted(workers, key=lambda w: w.worker_id),
            ready_signals=int(lag.get("ready_signals", 0)),
            inbox_lag_seconds=round(lag.get("ready_oldest_unread_age_seconds", 0.0), 3),
            dead_letters=letters[:DEAD_LETTERS_SHOWN],
            dead_letter_count=int(await redis.xlen(bus_keys.dead_letters())),
            recent_errors=[
                ErrorView(
                    id=e.id,
                    kind=e.kind,
                    agent_id=e.agent_id,
                    agent_name=names.get(e.agent_id),
                    run_id=e.run_id,
                    message=e.message,
                    at=iso(e.at) if e.at else None,
                )
                for e in errors
            ],
        )

    @post("/dead-letters/{entry_id:str}/retry", status_code=200)
    async def retry(self, entry_id: FromPath[str], api: Api) -> Retried:
        """Put a dead-lettered run back into its agent's inbox (as ``memgrid dlq retry``)."""
        try:
            submitted = await retry_dead_letter(api.rt.redis, entry_id)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ApiError(
                422, f"dead letter {entry_id} cannot be retried: {exc}", field="entry_id"
            ) from None
        return Retried(run_id=submitted.run_id, agent_id=submitted.agent_id)
