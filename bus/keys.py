"""Every Redis key of the transport: inboxes, leases, run events, dead letters, health.

Records (agents, blocks, messages...) live in :mod:`storage.keys`; both use the ``mg:`` prefix
and the ``{<agent_id>}`` hash tag for everything one agent owns.
"""

from __future__ import annotations

__all__ = (
    "PREFIX",
    "dead_letters",
    "inbox",
    "lease",
    "run_events",
    "worker_health",
    "workers",
)

PREFIX = "mg"


def inbox(agent_id: str) -> str:
    return f"{PREFIX}:{{{agent_id}}}:inbox"


def lease(agent_id: str) -> str:
    return f"{PREFIX}:{{{agent_id}}}:lease"


def run_events(agent_id: str, run_id: str) -> str:
    return f"{PREFIX}:{{{agent_id}}}:events:{run_id}"


def dead_letters() -> str:
    return f"{PREFIX}:dlq"


def workers() -> str:
    return f"{PREFIX}:workers"


def worker_health(worker_id: str) -> str:
    return f"{PREFIX}:worker:{worker_id}:health"
