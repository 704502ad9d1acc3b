"""Every Redis key of persisted state. Streams and leases live in :mod:`bus.keys`.

All keys of one agent share the Redis Cluster hash tag ``{<agent_id>}`` so that a step's
writes can commit in one transaction on one shard. Records not owned by one agent (blocks,
tools, sources, archives) carry their own id as hash tag.
"""

from __future__ import annotations

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


def agent(agent_id: str) -> str:
    return f"{PREFIX}:{{{agent_id}}}:agent"


def agent_messages(agent_id: str) -> str:
    """Sorted set of message ids scored by seq: the agent's whole log (recall memory)."""
    return f"{PREFIX}:{{{agent_id}}}:messages"


def message(agent_id: str, message_id: str) -> str:
    return f"{PREFIX}:{{{agent_id}}}:msg:{message_id}"


def agent_recall_index(agent_id: str, term: str) -> str:
    """Inverted index of recall memory: term -> sorted set of message seqs."""
    return f"{PREFIX}:{{{agent_id}}}:ix:{term}"


def run(agent_id: str, run_id: str) -> str:
    return f"{PREFIX}:{{{agent_id}}}:run:{run_id}"


def run_index(run_id: str) -> str:
    """run id -> agent id, for APIs that address a run by its id alone."""
    return f"{PREFIX}:run-agent:{run_id}"


def run_caused(root_run_id: str) -> str:
    """Sorted set of ``"<agent id> <run id>"`` by creation time: the runs that the outside
    message of run ``root_run_id`` caused (messages between agents), for the run view."""
    return f"{PREFIX}:run-caused:{root_run_id}"


def agent_runs(agent_id: str) -> str:
    """Sorted set of the agent's run ids by creation time."""
    return f"{PREFIX}:{{{agent_id}}}:runs"


def agents_all() -> str:
    return f"{PREFIX}:agents"


def agents_by_created() -> str:
    """Sorted set of agent ids scored by creation time: what ``GET /v1/agents`` pages through."""
    return f"{PREFIX}:agents-by-created"


def agent_names() -> str:
    """Hash name -> agent id (names are unique)."""
    return f"{PREFIX}:agent-names"


def agent_tags(tag: str) -> str:
    return f"{PREFIX}:agent-tag:{tag}"


def block(block_id: str) -> str:
    return f"{PREFIX}:{{{block_id}}}:block"


def block_history(block_id: str) -> str:
    return f"{PREFIX}:{{{block_id}}}:history"


def block_agents(block_id: str) -> str:
    return f"{PREFIX}:{{{block_id}}}:agents"


def blocks_all() -> str:
    return f"{PREFIX}:blocks"


def tool(tool_id: str) -> str:
    return f"{PREFIX}:tool:{tool_id}"


def tool_names() -> str:
    return f"{PREFIX}:tool-names"


def tools_all() -> str:
    return f"{PREFIX}:tools"


def workflow(name: str) -> str:
    """Hash of what a workflow applied: shared block ids by label, applied value digests."""
    return f"{PREFIX}:workflow:{name}"


def workflow_routes(name: str) -> str:
    """Set of "from -> to" agent name pairs a workflow allows."""
    return f"{PREFIX}:workflow:{name}:routes"


def source(source_id: str) -> str:
    return f"{PREFIX}:source:{source_id}"


def sources_all() -> str:
    return f"{PREFIX}:sources"


def embedding_sizes() -> str:
    """Hash ``"<endpoint> <model>"`` -> the vector size it was seen to serve (one field per
    model configured, overwritten when learnt again)."""
    return f"{PREFIX}:embedding-sizes"


def file(file_id: str) -> str:
    return f"{PREFIX}:file:{file_id}"


def source_files(source_id: str) -> str:
    return f"{PREFIX}:source-files:{source_id}"


def source_agents(source_id: str) -> str:
    """Set of the ids of agents the source is attached to."""
    return f"{PREFIX}:source-agents:{source_id}"


def agent_sources(agent_id: str) -> str:
    """Set of the ids of sources attached to the agent."""
    return f"{PREFIX}:{{{agent_id}}}:sources"


def archive(archive_id: str) -> str:
    return f"{PREFIX}:{{{archive_id}}}:archive"


def archive_agents(archive_id: str) -> str:
    """Set of the ids of agents the archive is attached to."""
    return f"{PREFIX}:{{{archive_id}}}:agents"


def archives_all() -> str:
    return f"{PREFIX}:archives"


def agent_archives(agent_id: str) -> str:
    """Set of the ids of archives attached to the agent."""
    return f"{PREFIX}:{{{agent_id}}}:archives"
