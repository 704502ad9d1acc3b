"""Running inputs through an applied workflow, streaming every agent's steps live.

Inputs go to the entry agent; whatever runs they cause on other agents (messages between
agents) are discovered from each agent's run index and followed too, so the terminal shows the
whole conversation as it happens. A summary table closes the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import anyio
import msgspec

from agents.letta_messages import AssistantMessage, Event, StopReason
from agents.runs import RunStore, live_workers
from agents.runtime import Runtime
from agents.worker import Worker, WorkerSettings
from bus.envelopes import InboxMessage
from orchestrator.apply import Applied
from orchestrator.render import note_workers_model, print_event
from storage import keys
from storage.records import Run

__all__ = ("RunReport", "replies_of", "run_inputs", "stop_of")


class RunReport(msgspec.Struct, kw_only=True):
    """One input's outcome, and every run of the workflow's agents its messages caused."""

    input_name: str
    entry_run: Run
    runs: list[Run]


async def _follow(
    rt: Runtime,
    agent_id: str,
    name: str,
    run_id: str,
    on_event: Callable[[str, Event], None],
    finished: set[str],
) -> None:
    async for event in RunStore(rt.redis).follow(agent_id, run_id):
        on_event(name, event)
    finished.add(run_id)


async def run_inputs(
    rt: Runtime,
    applied: Applied,
    entry: str,
    inputs: Sequence[tuple[str, str]],
    *,
    timeout_s: float = 600,
    on_event: Callable[[str, Event], None] | None = None,
) -> list[RunReport]:
    """Submit ``(name, text)`` inputs to ``entry`` and follow everything until it settles."""
    show = on_event or (lambda who, event: print_event(event, who=who))
    runs = RunStore(rt.redis, run_ttl_s=rt.settings.run_ttl_s)
    names = {agent.id: name for name, agent in applied.agents.items()}
    # Runs that exist already are not ours: only runs created from now on are followed.
    started = time.time() - 5
    earlier: set[str] = set()
    for agent_id in names:
        for raw in await rt.redis.zrangebyscore(keys.agent_runs(agent_id), started, "+inf"):
            earlier.add(raw.decode() if isinstance(raw, bytes) else str(raw))
    entry_agent = applied.agents[entry]
    submitted = [
        (label, await runs.submit(entry_agent.id, [InboxMessage(content=text)]))
        for label, text in inputs
    ]
    followed: set[str] = set()
    finished: set[str] = set()
    with anyio.fail_after(timeout_s):
        async with anyio.create_task_group() as tg:
            workers = await live_workers(rt.redis)
            if not workers:
                worker: Worker | None = (local := Worker(rt, WorkerSettings(concurrency=16)))
                tg.start_soon(local.run)
            else:
                note_workers_model(workers)
                worker = None
            quiet_since: float | None = None
            while True:
                for agent_id, name in names.items():
                    ids = await rt.redis.zrangebyscore(keys.agent_runs(agent_id), started, "+inf")
                    for raw in ids:
                        run_id = raw.decode() if isinstance(raw, bytes) else str(raw)
                        if run_id not in followed and run_id not in earlier:
                            followed.add(run_id)
                            tg.start_soon(_follow, rt, agent_id, name, run_id, show, finished)
                entries_done = all(s.run_id in finished for _label, s in submitted)
                if entries_done and finished >= followed:
                    # Settled: nothing new for a moment (a late reply could start a run).
                    quiet_since = quiet_since or anyio.current_time()
                    if anyio.current_time() - quiet_since > 0.5:
                        break
                else:
                    quiet_since = None
                await anyio.sleep(0.1)
            if worker is not None:
                worker.stop()
    # Each input's table row counts the runs its own chain of messages caused (they carry its
    # run as their root), not those of the other inputs that ran meanwhile.
    caused: dict[str, list[Run]] = {sub.run_id: [] for _label, sub in submitted}
    for agent_id in names:
        for run in await runs.recent(agent_id, limit=200):
            if run.root_run_id in caused and run.id not in earlier:
                caused[run.root_run_id].append(run)
    reports = []
    for label, sub in submitted:
        entry_run = await runs.get(entry_agent.id, sub.run_id)
        reports.append(RunReport(input_name=label, entry_run=entry_run, runs=caused[sub.run_id]))
    return reports


def replies_of(events: Sequence[Event]) -> list[str]:
    return [e.content for e in events if isinstance(e, AssistantMessage)]


def stop_of(events: Sequence[Event]) -> str | None:
    return next((e.stop_reason for e in events if isinstance(e, StopReason)), None)
