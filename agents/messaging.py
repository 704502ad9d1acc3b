"""Agent-to-agent messaging: routed sends, waits that suspend the run, replies that resume it.

A message to another agent is a run submitted to its inbox, with an ``otid`` derived from the
sending step and tool call, so a re-run of that step never sends twice. Waiting for a reply
does not block a coroutine: the tool raises :class:`AwaitReplies`, the loop commits the step with
the run marked ``waiting``, and the worker moves on (the agent's later messages queue behind
the waiting run). When the other agent's run ends, its final commit carries the reply (an
outbox, see :mod:`agents._waits`), which the worker relays next to the waiting run before it
signals the agent; a timer does the same at the deadline. Either way the run resumes with the
reply (or a timeout error) as the tool's result.

Checks on every send: the target exists (names resolve as well as ids), it is not the sender,
the hop limit, wait-for cycles (A waits on B waits on A is refused at once, not left to hang,
within one conversation and across different ones), and the :class:`Router` (by default
:class:`WorkflowRouter`: a workflow's declared routes).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as aioredis

from agents._waits import claim_wait, reply_text, server_time
from agents.tools.base import ToolError
from bus.envelopes import InboxMessage
from storage import keys
from storage.errors import ControlSignal, NotFound
from storage.records import Agent, ReplyTo, Run, Wait

if TYPE_CHECKING:
    from agents.runtime import Runtime

__all__ = (
    "MAX_HOPS",
    "AwaitReplies",
    "Messaging",
    "OpenRouter",
    "Router",
    "WorkflowRouter",
    "reply_text",
    "reply_timeout_s",
    "route",
)

MAX_HOPS = 8
_ROUTE_SEP = " -> "


def reply_timeout_s() -> float:
    """``MEMGRID_AGENT_REPLY_TIMEOUT`` (seconds, default 300): how long a wait may last."""
    raw = os.environ.get("MEMGRID_AGENT_REPLY_TIMEOUT") or "300"
    try:
        return float(raw)
    except ValueError:
        raise ValueError(
            f"MEMGRID_AGENT_REPLY_TIMEOUT={raw!r} is not a number of seconds"
        ) from None


class AwaitReplies(ControlSignal):
    """Raised by a tool: suspend the run until ``wait`` is satisfied (a request to wait)."""

    def __init__(self, wait: Wait) -> None:
        super().__init__(f"waiting on {wait.targets}")
        self.wait = wait


class Router(Protocol):
    """Route permissions (the orchestrator checks workflow routes)."""

    async def refuse(self, sender: Agent, target: Agent) -> str | None:
        """Why ``sender`` may not message ``target``, or None."""
        ...


class OpenRouter:
    """Every existing agent may message every other."""

    async def refuse(self, sender: Agent, target: Agent) -> str | None:
        return None


def route(sender_name: str, target_name: str) -> str:
    """A workflow route as stored in its routes set (``keys.workflow_routes``)."""
    return f"{sender_name}{_ROUTE_SEP}{target_name}"


class WorkflowRouter:
    """Routes between agents: inside a workflow that declares routes, only those (the
    runtime's default router; ``orchestrator.apply`` stores the routes)."""

    def __init__(self, redis: aioredis.Redis | None = None) -> None:
        self.redis = redis  # a Runtime binds an unbound router to its own Redis

    async def refuse(self, sender: Agent, target: Agent) -> str | None:
        workflow = sender.metadata.get("workflow")
        if not workflow:
            return None
        if self.redis is None:
            raise RuntimeError("WorkflowRouter has no Redis: hand it to a Runtime or pass one")
        declared = await self.redis.hget(keys.workflow(workflow), "routes_declared")
        if declared != b"1":
            return None
        members = await self.redis.smembers(keys.workflow_routes(workflow))
        routes = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        if route(sender.name, target.name) in routes:
            return None
        return (
            f"workflow {workflow!r} has no route from {sender.name!r} to {target.name!r}; its "
            f"routes are: {', '.join(routes)}"
        )


class Messaging:
    """The messaging tools' view of the current agent and run."""

    def __init__(self, rt: Runtime, agent: Agent, run: Run, step_id: str) -> None:
        self.rt = rt
        self.agent = agent
        self.run = run
        self.step_id = step_id

    async def resolve(self, name_or_id: str) -> Agent:
        try:
            return await self.rt.agents.resolve(name_or_id.strip())
        except NotFound:
            raise ToolError(
                f"there is no agent named or with id {name_or_id!r}; check the name or id"
            ) from None

    async def check(self, target: Agent, *, waiting: bool) -> None:
        if target.id == self.agent.id:
            raise ToolError("you cannot send a message to yourself")
        if self.run.hops + 1 > MAX_HOPS:
            raise ToolError(
                f"this conversation has already passed through {self.run.hops} agents, the "
                f"limit is {MAX_HOPS}; answer with what you have instead of forwarding again"
            )
        if waiting and target.id in (*self.run.wait_chain, self.agent.id):
            raise ToolError(
                f"agent {target.name!r} is itself waiting for your reply; waiting for it would "
                "deadlock. Answer it first (send_message ends your turn and replies), or use "
                "send_message_to_agent_async"
            )
        refusal = await self.rt.router.refuse(self.agent, target)
        if refusal is not None:
            raise ToolError(refusal)

    def content(self, message: str) -> str:
        return (
            f"[message from agent {self.agent.name!r} (id {self.agent.id}); reply with "
            f"send_message]\n{message}"
        )

    async def submit(
        self, target: Agent, message: str, call_id: str, *, reply_to: ReplyTo | None
    ) -> str:
        from agents.runs import RunStore

        submitted = await RunStore(self.rt.redis, run_ttl_s=self.rt.settings.run_ttl_s).submit(
            target.id,
            [InboxMessage(content=self.content(message), sender_id=self.agent.id)],
            otid=f"{self.step_id}:{call_id}:{target.id}",
            reply_to=reply_to,
            hops=self.run.hops + 1,
            wait_chain=[*self.run.wait_chain, self.agent.id] if reply_to else [],
            root_run_id=self.run.root_run_id or self.run.id,
        )
        return submitted.run_id

    async def wait_for(
        self, targets: list[Agent], message: str, call_id: str, tool_name: str
    ) -> Wait:
        now = await server_time(self.rt.redis)
        deadline = now + reply_timeout_s()
        # Checked and recorded at once, so two waits that close a cycle cannot both pass.
        cycle = await claim_wait(self.rt.redis, self.run, [t.id for t in targets], deadline, now)
        if cycle is not None:
            raise ToolError(await self._cycle_error(targets, cycle))
        reply_to = ReplyTo(agent_id=self.agent.id, run_id=self.run.id, call_id=call_id)
        for target in targets:
            await self.submit(target, message, call_id, reply_to=reply_to)
        return Wait(
            call_id=call_id, tool_name=tool_name, targets=[t.id for t in targets], deadline=deadline
        )

    async def _cycle_error(self, targets: list[Agent], cycle: list[str]) -> str:
        names = {t.id: t.name for t in targets} | {self.agent.id: self.agent.name}
        for agent_id in cycle:
            if agent_id not in names:
                try:
                    names[agent_id] = (await self.rt.agents.get(agent_id)).name
                except Exception:  # a name is only for the message: the id will do
                    names[agent_id] = agent_id
        chain = " waits on ".join(repr(names[a]) for a in cycle)
        return (
            f"waiting for agent {names[cycle[0]]!r} would deadlock: in another conversation "
            f"{chain} (you), so your message would queue behind a wait for you. Answer with what "
            "you have, or use send_message_to_agent_async"
        )
