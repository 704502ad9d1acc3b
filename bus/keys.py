"""Every Redis key of the transport: inboxes, leases, run events, dead letters, health, and
the index of every agent's runs by creation time (sharded as the ready signals are).

Records (agents, blocks, messages...) live in :mod:`storage.keys`; both use the ``mg:`` prefix
and the ``{<agent_id>}`` hash tag for everything one agent owns.

Redis Cluster: every script touches the keys of one hash slot. An agent's keys share its slot;
the ready signals are spread over :data:`READY_SHARDS` streams, each with a hash tag of its own
(``mg:ready:{r<n>}``), an agent's signals always in the same one (:func:`ready`), so that no
slot carries every agent's signals. The index of runs by creation time is sharded the same way
(:func:`runs_by_time`: an agent's runs in ``mg:runs-by-time:{r<n>}``, the slot of its ready
stream), so that no slot carries every submission's write either. The other shared keys
(timers, the wait-for graph, dead letters, registries) are each one key, written by single-key
commands and scripts only.
"""

from __future__ import annotations

import zlib

__all__ = (
    "PREFIX",
    "READY_SHARDS",
    "UNSHARDED_READY",
    "archival_reply",
    "archival_requests",
    "callbacks",
    "dead_letter_staging",
    "dead_letter_taken",
    "dead_letters",
    "fence",
    "inbox",
    "lease",
    "otid",
    "outbox",
    "ready",
    "ready_shards",
    "recent_errors",
    "run_callback",
    "run_cancel",
    "run_events",
    "runs_by_time",
    "runs_by_time_filled",
    "runs_by_time_shards",
    "step_journal",
    "timers",
    "wait_replies",
    "waits",
    "worker_health",
    "workers",
)

PREFIX = "mg"

READY_SHARDS = 16
"""How many streams carry the ready signals. Part of the key layout, not a setting: every
process must agree on an agent's shard, or signals would wait where no worker reads."""


def inbox(agent_id: str) -> str:
    return f"{PREFIX}:{{{agent_id}}}:inbox"


def lease(agent_id: str) -> str:
    return f"{PREFIX}:{{{agent_id}}}:lease"


def fence(agent_id: str) -> str:
    """The current fencing token, ``<counter>.<nonce>``, replaced at each lease acquisition."""
    return f"{PREFIX}:{{{agent_id}}}:fence"


def otid(agent_id: str, otid: str) -> str:
    """Client message id -> run id, so that a retried request gets its original run."""
    return f"{PREFIX}:{{{agent_id}}}:otid:{otid}"


def ready(agent_id: str) -> str:
    """The stream of "agent X has work" signals that carries ``agent_id``'s (one of
    :func:`ready_shards`, chosen by a CRC32 of the id), read by every worker in one group."""
    return _READY[_shard(agent_id)]


def ready_shards() -> tuple[str, ...]:
    """Every ready stream (workers read them all)."""
    return _READY


def _shard(agent_id: str) -> int:
    """The shard of ``agent_id``'s ready signals and runs (one function: every process must
    agree on it)."""
    return zlib.crc32(agent_id.encode()) % READY_SHARDS


_READY = tuple(f"{PREFIX}:ready:{{r{n}}}" for n in range(READY_SHARDS))


def runs_by_time(agent_id: str) -> str:
    """The shard of the index of every agent's runs by creation time that holds
    ``agent_id``'s: a sorted set of ``"<run id> <agent id>"`` scored by the run's
    ``created_at`` (ties order by run id), in the slot of the agent's :func:`ready` stream."""
    return _RUNS_BY_TIME[_shard(agent_id)]


def runs_by_time_shards() -> tuple[str, ...]:
    """Every shard of the runs index (``GET /v1/runs`` merges them)."""
    return _RUNS_BY_TIME


_RUNS_BY_TIME = tuple(f"{PREFIX}:runs-by-time:{{r{n}}}" for n in range(READY_SHARDS))


def runs_by_time_filled() -> str:
    """Set once every run from before :func:`runs_by_time` existed was copied into it."""
    return f"{PREFIX}:runs-by-time-filled"


UNSHARDED_READY = f"{PREFIX}:ready"
"""The one ready stream of versions before the shards: a worker moves what an upgraded
deployment left there onto the shards (``agents.runs.adopt_unsharded_signals``)."""


def callbacks() -> str:
    """Stream of "POST run X's result to its callback_url when it ends", read by every API
    process in one group (see :mod:`orchestrator.api.callbacks`)."""
    return f"{PREFIX}:callbacks"


def run_callback(agent_id: str, run_id: str) -> str:
    """A run's callback: its URL and, once done, when it was sent and how it was answered."""
    return f"{PREFIX}:{{{agent_id}}}:callback:{run_id}"


def step_journal(agent_id: str, run_id: str, step: int) -> str:
    """The model's answer for a step, written before its tools run (replayed on redelivery)."""
    return f"{PREFIX}:{{{agent_id}}}:journal:{run_id}:{step}"


def run_cancel(agent_id: str, run_id: str) -> str:
    """Set when a client asked to cancel the run; read before each of its steps."""
    return f"{PREFIX}:{{{agent_id}}}:cancel:{run_id}"


def run_events(agent_id: str, run_id: str) -> str:
    return f"{PREFIX}:{{{agent_id}}}:events:{run_id}"


def archival_requests() -> str:
    """Requests to the process that owns the embedded passage engine."""
    return f"{PREFIX}:archival:requests"


def archival_reply(request_id: str) -> str:
    return f"{PREFIX}:archival:reply:{request_id}"


def wait_replies(agent_id: str, run_id: str, call_id: str) -> str:
    """Hash target agent id -> reply, for a run of ``agent_id`` waiting on ``call_id``."""
    return f"{PREFIX}:{{{agent_id}}}:replies:{run_id}:{call_id}"


def outbox(agent_id: str) -> str:
    """Stream of replies committed by the agent's runs, to relay to the runs waiting on them."""
    return f"{PREFIX}:{{{agent_id}}}:outbox"


def waits() -> str:
    """Hash agent id -> the agents its waiting run waits on (the wait-for graph)."""
    return f"{PREFIX}:waits"


def timers() -> str:
    """Sorted set of agent ids by the time a waiting run of theirs times out."""
    return f"{PREFIX}:timers"


def dead_letters() -> str:
    return f"{PREFIX}:dlq"


def recent_errors() -> str:
    """Capped stream of recent errors (model, tool, sandbox limit, dead letter) for operators."""
    return f"{PREFIX}:recent-errors"


def dead_letter_staging(agent_id: str) -> str:
    """Stream of dead letters committed with their runs' failure, in the agent's slot, then
    moved to :func:`dead_letters` (see :func:`bus.streams.move_dead_letters`)."""
    return f"{PREFIX}:{{{agent_id}}}:dead"


def dead_letter_taken(agent_id: str, entry_id: str) -> str:
    """Set when dead letter ``entry_id`` (of the agent's run) was re-queued by a retry."""
    return f"{PREFIX}:{{{agent_id}}}:dead-taken:{entry_id}"


def workers() -> str:
    return f"{PREFIX}:workers"


def worker_health(worker_id: str) -> str:
    return f"{PREFIX}:worker:{worker_id}:health"
