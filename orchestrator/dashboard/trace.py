"""``GET /dashboard/api/runs/{run_id}/trace``: one outside message followed across agents.

A run started by an agent's message to another carries the outside input's run as its
``root_run_id``; the trace gathers every run of that root (from the root's index of the runs
it caused, written when they were submitted, so the agents not involved cost nothing), their
events, and the edits of the blocks they share, in time order. The graph's edges are the sends
seen (a child run's ``otid`` names the tool call that sent it) and the routes its agents'
workflow declares.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

import msgspec
from litestar import Controller, get
from litestar.params import FromPath

from agents.letta_messages import (
    ApprovalRequestMessage,
    AssistantMessage,
    Event,
    ToolCallMessage,
    ToolReturnMessage,
    UserMessage,
    iso,
)
from orchestrator.api.state import Api
from orchestrator.dashboard.data import AgentRef
from storage import keys
from storage._util import mget
from storage.records import Agent, Run, decode

__all__ = ("RunTrace", "RunTraceController")

RECENT_MESSAGES = 200  # where a run's input is looked for (run events hold no inputs)
_SEP = " -> "  # as orchestrator.apply stores a workflow's routes
_SEND = re.compile(r"^send_message_to_agent")

Kind = Literal["input", "send", "wait", "reply", "return", "tool", "approval", "block_edit"]


class TraceRun(msgspec.Struct, kw_only=True):
    id: str
    agent_id: str
    agent_name: str
    status: str
    stop_reason: str | None
    created_at: str
    completed_at: str | None
    parent_run_id: str | None
    waits_on: list[str]


class TraceItem(msgspec.Struct, kw_only=True):
    at: str
    agent_id: str
    agent_name: str
    run_id: str | None
    kind: Kind
    text: str


class Edge(msgspec.Struct, kw_only=True):
    source: str
    target: str
    kind: Literal["sent", "route"]


class RunTrace(msgspec.Struct, kw_only=True):
    """The runs an outside message caused, what happened in them in time order, the graph."""

    root_run_id: str
    runs: list[TraceRun]
    items: list[TraceItem]
    agents: list[AgentRef]
    edges: list[Edge]


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _when(date: str) -> float:
    return dt.datetime.fromisoformat(date).timestamp()


def _item(event: Event, agent: Agent, run: Run) -> TraceItem | None:
    def made(kind: Kind, text: str, date: str) -> TraceItem:
        return TraceItem(
            at=date, agent_id=agent.id, agent_name=agent.name, run_id=run.id, kind=kind, text=text
        )

    if isinstance(event, UserMessage):
        return made("input", event.content, event.date)
    if isinstance(event, ToolCallMessage):
        call = event.tool_call
        if _SEND.match(call.name):
            kind: Kind = "wait" if call.name.endswith("wait_for_reply") else "send"
            return made(kind, f"{call.name}({call.arguments})", event.date)
        return made("tool", f"{call.name}({call.arguments})", event.date)
    if isinstance(event, ToolReturnMessage):
        return made("return", event.tool_return, event.date)
    if isinstance(event, AssistantMessage):
        return made("reply", event.content, event.date)
    if isinstance(event, ApprovalRequestMessage):
        return made("approval", f"{event.tool_call.name}({event.tool_call.arguments})", event.date)
    return None


class RunTraceController(Controller):
    """A run's trail across agents."""

    path = "/dashboard/api/runs"
    include_in_schema = False

    @get("/{run_id:str}/trace")
    async def trace(self, run_id: FromPath[str], api: Api) -> RunTrace:
        """Every run the same outside message caused, their events and shared-block edits."""
        redis = api.rt.redis
        first = await api.runs.find(run_id)
        root = await api.runs.find(first.root_run_id or first.id)
        runs = [root, *(r for r in await api.runs.caused(root.id) if r.root_run_id == root.id)]
        runs.sort(key=lambda r: (r.created_at, r.id))
        involved = sorted({r.agent_id for r in runs})
        agents = {
            a.id: a
            for a in (
                decode(Agent, raw)
                for raw in await mget(redis, [keys.agent(i) for i in involved])
                if raw is not None
            )
        }

        def name(agent_id: str) -> str:
            agent = agents.get(agent_id)
            return agent.name if agent else agent_id

        items = await self._inputs(api, runs, agents)
        calls: dict[str, tuple[str, str]] = {}  # tool call id -> (agent id, run id)
        for run in runs:
            agent = agents.get(run.agent_id)
            if agent is None:
                continue
            events, _ended = await api.runs.events(run.agent_id, run.id)
            for event in events:
                if isinstance(event, ToolCallMessage):
                    calls[event.tool_call.tool_call_id] = (agent.id, run.id)
                item = _item(event, agent, run)
                if item is not None:
                    items.append(item)
        parents: dict[str, str] = {}
        edges: list[Edge] = []
        for run in runs[1:]:
            if run.reply_to is not None:
                parents[run.id] = run.reply_to.run_id
                edges.append(Edge(source=run.reply_to.agent_id, target=run.agent_id, kind="sent"))
                continue
            for call_id, (sender, sender_run) in calls.items():
                if run.otid and f":{call_id}:" in run.otid:
                    parents[run.id] = sender_run
                    edges.append(Edge(source=sender, target=run.agent_id, kind="sent"))
                    break
        items += await self._block_edits(api, runs, agents)
        edges += await self._routes(api, agents)
        items.sort(key=lambda i: _when(i.at))
        unique = {(e.source, e.target, e.kind): e for e in edges}
        return RunTrace(
            root_run_id=root.id,
            runs=[
                TraceRun(
                    id=r.id,
                    agent_id=r.agent_id,
                    agent_name=name(r.agent_id),
                    status=r.status,
                    stop_reason=r.stop_reason,
                    created_at=iso(r.created_at),
                    completed_at=iso(r.completed_at) if r.completed_at else None,
                    parent_run_id=parents.get(r.id),
                    waits_on=list(r.wait.targets) if r.wait is not None else [],
                )
                for r in runs
            ],
            items=items,
            agents=[AgentRef(id=i, name=name(i)) for i in involved],
            edges=list(unique.values()),
        )

    async def _inputs(self, api: Api, runs: list[Run], agents: dict[str, Agent]) -> list[TraceItem]:
        """The user (or other agent's) messages that started the runs, from recall."""
        wanted = {r.id: r for r in runs}
        found: list[TraceItem] = []
        for agent in agents.values():
            recent = await api.rt.messages.list(agent.id, limit=RECENT_MESSAGES, ascending=False)
            for message in recent:
                run = wanted.get(message.run_id or "")
                if run is not None and message.role == "user":
                    found.append(
                        TraceItem(
                            at=iso(message.created_at),
                            agent_id=agent.id,
                            agent_name=agent.name,
                            run_id=run.id,
                            kind="input",
                            text=message.content,
                        )
                    )
        return found

    async def _block_edits(
        self, api: Api, runs: list[Run], agents: dict[str, Agent]
    ) -> list[TraceItem]:
        """Edits by these agents of their blocks while the runs went on."""
        start = min(r.created_at for r in runs) - 1
        end = max((r.completed_at or r.created_at) for r in runs) + 1
        if any(r.completed_at is None for r in runs):
            end = float("inf")
        block_ids = sorted({b for a in agents.values() for b in a.block_ids})
        edits: list[TraceItem] = []
        for block in await api.rt.blocks.get_many(block_ids):
            for edit in await api.rt.blocks.history(block.id):
                editor = agents.get(edit.editor)
                if editor is not None and start <= edit.at <= end and edit.version > 1:
                    edits.append(
                        TraceItem(
                            at=iso(edit.at),
                            agent_id=editor.id,
                            agent_name=editor.name,
                            run_id=None,
                            kind="block_edit",
                            text=f"{block.label} v{edit.version}: {edit.value}",
                        )
                    )
        return edits

    async def _routes(self, api: Api, agents: dict[str, Agent]) -> list[Edge]:
        """The routes the involved agents' workflows declare, between agents of the trace."""
        by_name = {a.name: a.id for a in agents.values()}
        edges: list[Edge] = []
        for workflow in sorted({a.metadata.get("workflow", "") for a in agents.values()} - {""}):
            for raw in await api.rt.redis.smembers(keys.workflow_routes(workflow)):
                source, _, target = _text(raw).partition(_SEP)
                if source in by_name and target in by_name:
                    edges.append(Edge(source=by_name[source], target=by_name[target], kind="route"))
        return edges
