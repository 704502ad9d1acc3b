"""Every Redis key of persisted state, as a table. Streams and leases live in :mod:`bus.keys`.

All keys of one agent share the Redis Cluster hash tag ``{<agent_id>}`` so that a step's
writes can commit in one transaction on one shard. Blocks and archives carry their own id as
hash tag; the other records and indexes not owned by one agent are shared keys, each read and
written by single-key commands. Each name below is a builder: ``agent("agent-1")`` is
``mg:{agent-1}:agent``; one built by :func:`_in_slot_with_id` takes the owner's id, then the
record's (``message("agent-1", "message-2")``).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = (
    "PREFIX",
    "agent",
    "agent_archives",
    "agent_messages",
    "agent_names",
    "agent_recall_index",
    "agent_runs",
    "agent_sources",
    "agent_tags",
    "agents_all",
    "agents_by_created",
    "archive",
    "archive_agents",
    "archives_all",
    "block",
    "block_agents",
    "block_history",
    "blocks_all",
    "embedding_sizes",
    "file",
    "message",
    "run",
    "run_caused",
    "run_index",
    "source",
    "source_agents",
    "source_files",
    "sources_all",
    "tool",
    "tool_names",
    "tools_all",
    "workflow",
    "workflow_routes",
)

PREFIX = "mg"


def _in_slot(kind: str) -> Callable[[str], str]:
    """``mg:{<owner id>}:<kind>``: a key in its owner's hash slot."""
    return lambda owner_id: f"{PREFIX}:{{{owner_id}}}:{kind}"


def _in_slot_with_id(kind: str) -> Callable[[str, str], str]:
    """``mg:{<owner id>}:<kind>:<id>``: one of many records in the owner's hash slot."""
    return lambda owner_id, record_id: f"{PREFIX}:{{{owner_id}}}:{kind}:{record_id}"


def _shared(name: str) -> Callable[[], str]:
    """``mg:<name>``: one shared key (an index of every record of a kind)."""
    return lambda: f"{PREFIX}:{name}"


def _shared_with_id(kind: str) -> Callable[[str], str]:
    """``mg:<kind>:<id>``: a record or index of its own, outside any agent's slot."""
    return lambda record_id: f"{PREFIX}:{kind}:{record_id}"


# --- in an agent's slot ------------------------------------------------------------------

agent = _in_slot("agent")
#: Sorted set of message ids scored by seq: the agent's whole log (recall memory).
agent_messages = _in_slot("messages")
message = _in_slot_with_id("msg")
#: Inverted index of recall memory: (agent id, term) -> sorted set of message seqs.
agent_recall_index = _in_slot_with_id("ix")
run = _in_slot_with_id("run")
#: Sorted set of the agent's run ids by creation time.
agent_runs = _in_slot("runs")
#: Set of the ids of sources attached to the agent.
agent_sources = _in_slot("sources")
#: Set of the ids of archives attached to the agent.
agent_archives = _in_slot("archives")

# --- in a block's or an archive's slot ---------------------------------------------------

block = _in_slot("block")
block_history = _in_slot("history")
block_agents = _in_slot("agents")
archive = _in_slot("archive")
#: Set of the ids of agents the archive is attached to.
archive_agents = _in_slot("agents")

# --- shared ------------------------------------------------------------------------------

#: run id -> agent id, for APIs that address a run by its id alone. (The index of every
#: agent's runs by creation time is sharded like the ready signals: ``bus.keys.runs_by_time``.)
run_index = _shared_with_id("run-agent")
#: Sorted set of ``"<agent id> <run id>"`` by creation time: the runs that the outside
#: message of a root run caused (messages between agents), for the run view.
run_caused = _shared_with_id("run-caused")
agents_all = _shared("agents")
#: Sorted set of agent ids scored by creation time: what ``GET /v1/agents`` pages through.
agents_by_created = _shared("agents-by-created")
#: Hash name -> agent id (names are unique).
agent_names = _shared("agent-names")
agent_tags = _shared_with_id("agent-tag")
blocks_all = _shared("blocks")
archives_all = _shared("archives")
tool = _shared_with_id("tool")
tool_names = _shared("tool-names")
tools_all = _shared("tools")
source = _shared_with_id("source")
sources_all = _shared("sources")
file = _shared_with_id("file")
source_files = _shared_with_id("source-files")
#: Set of the ids of agents the source is attached to.
source_agents = _shared_with_id("source-agents")
#: Hash ``"<endpoint> <model>"`` -> the vector size it was seen to serve (one field per
#: model configured, overwritten when learnt again).
embedding_sizes = _shared("embedding-sizes")
#: Hash of what a workflow applied: shared block ids by label, applied value digests.
workflow = _shared_with_id("workflow")


def workflow_routes(name: str) -> str:
    """Set of "from -> to" agent name pairs a workflow allows."""
    return f"{PREFIX}:workflow:{name}:routes"
