"""What the dashboard tests and docs/_gen_dashboard_shots.py seed memgrid with: agents that ask
one another (the relay), and a dead letter.

The docs script imports this module too (with the repository root on ``sys.path``), so its
screenshots show what the tests check.
"""

from __future__ import annotations

import re

import redis.asyncio as aioredis

from agents.scripted import Outcome, say, tool_call
from bus.streams import dead_letter

__all__ = ("dead_letter_of", "relay")


def relay(said: str, *, question: str, note: str, answer: str) -> Outcome | None:
    """One agent asks another and waits for its reply: "ask agent-…" makes the asker send
    ``question`` to that agent; the agent asked first appends ``note`` to its human block,
    then answers ``answer``. ``None`` when ``said`` (the last message) is none of these."""
    if said.startswith("[message from agent"):
        if "noted" not in said:
            return tool_call("core_memory_append", label="human", content=note)
        return say(answer)
    asked = re.search(r"ask (agent-[\w-]+)", said)
    if asked:
        return tool_call(
            "send_message_to_agent_and_wait_for_reply", message=question, other_agent_id=asked[1]
        )
    return None


async def dead_letter_of(
    redis: aioredis.Redis,
    agent_id: str,
    error: str,
    *,
    run_id: str = "run-gone",
    envelope: bytes = b"not an envelope",
    attempts: int = 3,
) -> None:
    """A dead letter of ``agent_id`` that failed with ``error`` after ``attempts``; by default
    of a run that is gone, with an envelope that cannot be decoded (so it cannot be retried)."""
    await dead_letter(
        redis, agent_id=agent_id, run_id=run_id, envelope=envelope, error=error, attempts=attempts
    )
