"""The chaos suite's scripted model policy: multi-step, multi-agent work decided by the request.

It keeps no state: every answer follows from the conversation the worker sends, so a step
re-run by another worker (after a kill, a pause or a Redis restart) asks the same question and
gets the same answer. Served by ``memgrid scripted-model --policy tests.chaos._policy:policy``.

A coordinator gets ``JOB[<job>|<kind>|<helper>]`` from the load driver and runs the kind's plan;
a helper gets ``TASK[<job>]`` from a coordinator, appends ``<job>`` to its human block and answers
``ack <job>``. The coordinator's last word is ``re: <job> acks=<n>``, ``n`` counting the acks in
the tool result it waited for, so that a lost or doubled agent reply shows in the run's reply.
"""

from __future__ import annotations

import re
import zlib

from agents.scripted import ChatRequest, Outcome, Reply, Slow, say, text, tool_call

__all__ = ("HELPER_TAG", "KINDS", "SHARED_LABEL", "job_text", "policy", "reply_for")

KINDS = ("edit", "chain", "fanout", "archival", "async")
"""What a coordinator's message asks for, one kind per message."""

SHARED_LABEL = "team"
"""The label of the block every coordinator shares."""

HELPER_TAG = "chaos-helper"

_JOB = re.compile(r"JOB\[(?P<job>[\w-]+)\|(?P<kind>\w+)\|(?P<target>[\w-]+)\]")
_TASK = re.compile(r"TASK\[(?P<job>[\w-]+)\]")


def job_text(job: str, kind: str, target: str) -> str:
    """The user message that asks a coordinator for one job."""
    return f"JOB[{job}|{kind}|{target}]"


def reply_for(job: str, kind: str, helpers: int) -> str:
    """The one reply a coordinator must give for a job."""
    acks = {"chain": 1, "fanout": helpers}.get(kind, 0)
    return f"re: {job} acks={acks}"


def _slow(job: str, step: int, reply: Reply) -> Outcome:
    # A short, deterministic delay per step: kills and pauses land in the middle of steps.
    delay = 0.1 * (zlib.crc32(f"{job}:{step}".encode()) % 5)
    return Slow(delay, reply) if delay else reply


def _input(request: ChatRequest) -> tuple[re.Match[str] | None, re.Match[str] | None, int]:
    """The job or task this turn answers, and how many steps of the turn came before."""
    for index in range(len(request.messages) - 1, -1, -1):
        message = request.messages[index]
        if message.role != "user":
            continue
        found = message.text
        job, task = _JOB.search(found), _TASK.search(found)
        if job or task:
            steps = sum(m.role == "assistant" for m in request.messages[index + 1 :])
            return job, task, steps
    return None, None, 0


def _acks(request: ChatRequest, job: str) -> int:
    result = request.last_tool_result
    return 0 if result is None else result.content.count(f"ack {job}")


def _coordinator(request: ChatRequest, found: re.Match[str], step: int) -> Outcome:
    job, kind, target = found["job"], found["kind"], found["target"]
    task = f"TASK[{job}]"
    plans: dict[str, list[Reply]] = {
        "edit": [
            tool_call(
                "core_memory_append", label=SHARED_LABEL, content=f"<{job}>", request_heartbeat=True
            )
        ],
        "chain": [
            tool_call(
                "core_memory_append", label=SHARED_LABEL, content=f"<{job}>", request_heartbeat=True
            ),
            tool_call(
                "send_message_to_agent_and_wait_for_reply", message=task, other_agent_id=target
            ),
        ],
        "fanout": [
            tool_call(
                "send_message_to_agents_matching_tags",
                message=task,
                match_all=[HELPER_TAG],
                match_some=[],
            )
        ],
        "archival": [
            tool_call("archival_memory_insert", content=f"fact {job}", request_heartbeat=True)
        ],
        "async": [
            tool_call(
                "send_message_to_agent_async",
                message=task,
                other_agent_id=target,
                request_heartbeat=True,
            )
        ],
    }
    plan = plans.get(kind)
    if plan is None:
        return say(f"unknown kind {kind}")
    if step < len(plan):
        return _slow(job, step, plan[step])
    acks = _acks(request, job) if kind in ("chain", "fanout") else 0
    return _slow(job, step, say(f"re: {job} acks={acks}"))


def _helper(found: re.Match[str], step: int) -> Outcome:
    job = found["job"]
    if step == 0:
        append = tool_call(
            "core_memory_append", label="human", content=f"<{job}>", request_heartbeat=True
        )
        return _slow(job, step, append)
    return _slow(job, step, say(f"ack {job}"))


def policy(request: ChatRequest) -> Outcome:
    """Answer one chat completion of the chaos workload."""
    if not request.offers("send_message"):
        return text("summary: earlier jobs were handled.")  # the summarizer's request
    job, task, step = _input(request)
    if job is not None:
        return _coordinator(request, job, step)
    if task is not None:
        return _helper(task, step)
    return say("nothing to do")
