"""The invariants a chaos run must keep, checked from what Redis and the API hold afterwards.

- every accepted message has exactly one run, completed, with exactly its one reply;
- per-agent order: each coordinator's inputs appear in its log once each, in acceptance order;
- every agent-to-agent send arrived exactly once and was answered exactly once;
- every block edit happened exactly once: a block's history has contiguous versions, each
  entry appends one marker to the one before, and the last is the block's value;
- every archival insert made exactly one passage.

Each shortfall counts as lost, each extra copy as duplicated.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
import redis.asyncio as aioredis

from bus import keys as bus_keys
from storage import keys
from storage.blocks import BlockStore
from storage.messages import MessageLog
from storage.records import Run, decode
from tests.chaos._load import Job
from tests.chaos._policy import reply_for

__all__ = ("Findings", "check")

_MARKER = re.compile(r"<([\w-]+)>")
_JOB = re.compile(r"JOB\[([\w-]+)\|")
_TASK = re.compile(r"TASK\[([\w-]+)\]")


@dataclass
class Findings:
    """What the checks found: counts for the figures, and a line per problem."""

    lost: int = 0
    duplicated: int = 0
    runs: int = 0
    rerun: int = 0  # runs attempted more than once: a fault cut them short
    problems: list[str] = field(default_factory=list)

    def tally(self, what: str, found: Counter[str], expected: Iterable[str]) -> None:
        """Compare ``found`` with ``expected`` (each once): shortfalls lost, extras duplicated."""
        want = Counter(expected)
        for item in sorted(set(want) | set(found)):
            have, need = found[item], want[item]
            if have < need:
                self.lost += need - have
                self.problems.append(f"{what}: {item!r} missing ({have} of {need})")
            elif have > need:
                self.duplicated += have - need
                self.problems.append(f"{what}: {item!r} {have} times, expected {need}")


async def check(
    redis: aioredis.Redis,
    api_url: str,
    jobs: list[Job],
    helpers: dict[str, str],
    shared_block_id: str,
) -> Findings:
    """Check every invariant; ``helpers`` maps helper names to ids."""
    found = Findings()
    await _runs(redis, jobs, helpers, found)
    log = MessageLog(redis)
    by_agent: dict[str, list[Job]] = {}
    for job in jobs:
        by_agent.setdefault(job.agent_id, []).append(job)
    for agent_id, mine in by_agent.items():
        inputs = await log.list(agent_id, roles=["user"], limit=1_000_000)
        seen = [hit[1] for m in inputs if (hit := _JOB.search(m.content))]
        found.tally(f"input of {agent_id}", Counter(seen), [j.job for j in mine])
        if list(dict.fromkeys(seen)) != [j.job for j in mine if j.job in seen]:
            found.problems.append(f"{agent_id}: inputs out of order: {seen}")
            found.lost += 1
        said = await _replies(log, agent_id)
        replies = [reply_for(j.job, j.kind, len(helpers)) for j in mine]
        found.tally(f"reply of {agent_id}", said, replies)
    for name, helper_id in helpers.items():
        tasks = [
            hit[1]
            for m in await log.list(helper_id, roles=["user"], limit=1_000_000)
            if (hit := _TASK.search(m.content))
        ]
        sent = [
            j.job
            for j in jobs
            if (j.kind == "fanout" or (j.kind in ("chain", "async") and j.target == name))
        ]
        found.tally(f"send to {name}", Counter(tasks), sent)
        found.tally(f"ack of {name}", await _replies(log, helper_id), [f"ack {j}" for j in sent])
        human = await _block_id(redis, helper_id, "human")
        await _history(redis, human, f"human block of {name}", sent, found)
    edits = [j.job for j in jobs if j.kind in ("edit", "chain")]
    await _history(redis, shared_block_id, "shared block", edits, found)
    await _passages(api_url, jobs, found)
    return found


async def _runs(
    redis: aioredis.Redis, jobs: list[Job], helpers: dict[str, str], found: Findings
) -> None:
    """Each job's run completed with one reply, after the agent's previous one; no agent has
    a run that did not finish."""
    last_done: dict[str, tuple[str, float]] = {}
    for job in jobs:
        raw = await redis.get(keys.run(job.agent_id, job.run_id))
        if raw is None:
            found.lost += 1
            found.problems.append(f"{job.job}: no run {job.run_id}")
            continue
        run = decode(Run, raw)
        otid = await redis.get(bus_keys.otid(job.agent_id, f"otid-{job.job}"))
        if otid is not None and otid.decode() != job.run_id:
            found.problems.append(f"{job.job}: otid maps to {otid.decode()}, not {job.run_id}")
        if run.status != "completed":
            found.lost += 1
            found.problems.append(f"{job.job}: run {run.id} {run.status} ({run.error})")
        elif len(run.replies) != 1:
            found.duplicated += max(0, len(run.replies) - 1)
            found.problems.append(f"{job.job}: run {run.id} replied {run.replies}")
        done = run.completed_at or 0.0
        before = last_done.get(job.agent_id)
        if before is not None and done < before[1]:
            found.problems.append(f"{job.job}: finished before {before[0]}, sent earlier")
        last_done[job.agent_id] = (job.job, done)
    agents = {j.agent_id for j in jobs} | set(helpers.values())
    accepted = Counter(j.agent_id for j in jobs)
    for agent_id in sorted(agents):
        ids = [i.decode() for i in await redis.zrange(keys.agent_runs(agent_id), 0, -1)]
        found.runs += len(ids)
        if agent_id in accepted and len(ids) != accepted[agent_id]:
            found.problems.append(f"{agent_id}: {len(ids)} runs for {accepted[agent_id]} messages")
            found.duplicated += max(0, len(ids) - accepted[agent_id])
        for run_id in ids:
            raw = await redis.get(keys.run(agent_id, run_id))
            run = None if raw is None else decode(Run, raw)
            found.rerun += run is not None and run.attempts > 1
            if run is None or run.status != "completed":
                found.problems.append(
                    f"{agent_id}: run {run_id} {'gone' if run is None else run.status}"
                    f" ({None if run is None else run.error})"
                )


async def _replies(log: MessageLog, agent_id: str) -> Counter[str]:
    said: Counter[str] = Counter()
    for message in await log.list(agent_id, roles=["assistant"], limit=1_000_000):
        for call in message.tool_calls:
            if call.name == "send_message":
                said[json.loads(call.arguments)["message"]] += 1
    return said


async def _block_id(redis: aioredis.Redis, agent_id: str, label: str) -> str:
    from storage.agents import AgentStore

    agent = await AgentStore(redis).get(agent_id)
    for block in await BlockStore(redis).get_many(agent.block_ids):
        if block.label == label:
            return block.id
    raise AssertionError(f"agent {agent_id} has no {label!r} block")


async def _history(
    redis: aioredis.Redis, block_id: str, what: str, expected: list[str], found: Findings
) -> None:
    """Versions contiguous, each entry one append to the last, ending at the block's value."""
    store = BlockStore(redis)
    history = await store.history(block_id)
    current = await store.get(block_id)
    markers: Counter[str] = Counter()
    previous = None
    for edit in history:
        if previous is not None:
            if edit.version != previous.version + 1:
                found.problems.append(f"{what}: version {edit.version} follows {previous.version}")
            if not edit.value.startswith(previous.value):
                found.problems.append(f"{what}: version {edit.version} lost earlier edits")
            added = _MARKER.findall(edit.value[len(previous.value) :])
            if len(added) != 1:
                found.problems.append(f"{what}: version {edit.version} added {added}")
            markers.update(added)
        else:
            markers.update(_MARKER.findall(edit.value))
        previous = edit
    if previous is None or previous.value != current.value or previous.version != current.version:
        found.problems.append(f"{what}: the history does not end at the block's value")
    found.tally(what, markers, expected)
    found.tally(f"{what} (value)", Counter(_MARKER.findall(current.value)), expected)


async def _passages(api_url: str, jobs: list[Job], found: Findings) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        for agent_id in sorted({j.agent_id for j in jobs}):
            response = await client.get(
                f"/v1/agents/{agent_id}/archival-memory", params={"limit": 100_000}
            )
            if response.status_code != 200:
                found.problems.append(f"passages of {agent_id}: HTTP {response.status_code}")
                continue
            texts = Counter(p["text"] for p in response.json())
            want = [
                f"fact {j.job}" for j in jobs if j.agent_id == agent_id and j.kind == "archival"
            ]
            found.tally(f"passages of {agent_id}", texts, want)
