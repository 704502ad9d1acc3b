"""Stored records: msgspec Structs, one encoder/decoder per type; ids in Letta's shape.

Every record carries ``v`` (schema version): :func:`encode` always writes it (``omit_defaults``
would drop it), and :func:`decode` reads a record stored without it as ``LEGACY_VERSION``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, TypeVar

import msgspec

__all__ = (
    "LEGACY_VERSION",
    "SCHEMA_VERSION",
    "Agent",
    "AgentType",
    "ApprovalAnswer",
    "ApprovalDecision",
    "Archive",
    "Block",
    "BlockEdit",
    "Conditional",
    "ConstrainChildTools",
    "ContinueLoop",
    "ExitLoop",
    "FileMeta",
    "MaxCountPerStep",
    "Message",
    "ParentLastTool",
    "Passage",
    "PipRequirement",
    "ReplyTo",
    "RequiredBeforeExit",
    "RequiresApproval",
    "Run",
    "RunFirst",
    "Source",
    "Tool",
    "ToolCall",
    "ToolRule",
    "Usage",
    "Wait",
    "decode",
    "encode",
    "new_id",
    "now",
)

SCHEMA_VERSION = 1
LEGACY_VERSION = 1  # what a record stored without ``v`` is


def new_id(prefix: str) -> str:
    """A Letta-shaped id such as ``agent-3f0c...``."""
    return f"{prefix}-{uuid.uuid4()}"


def now() -> float:
    """Wall-clock seconds since the epoch; records store floats, APIs render ISO 8601."""
    return time.time()


class _Record(msgspec.Struct, kw_only=True, omit_defaults=True):
    v: int = SCHEMA_VERSION


# --- memory blocks -------------------------------------------------------------------------


class Block(_Record, kw_only=True):
    """A labelled piece of core memory; its own record so that many agents can attach it."""

    id: str
    label: str
    value: str = ""
    limit: int = 5000
    description: str = ""
    read_only: bool = False
    version: int = 1
    created_at: float = msgspec.field(default_factory=now)
    updated_at: float = msgspec.field(default_factory=now)
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    # Kept as Letta's clients send them at creation, for listing blocks by them.
    template_name: str | None = None
    is_template: bool = False
    tags: list[str] = msgspec.field(default_factory=list)
    project_id: str | None = None


class BlockEdit(_Record, kw_only=True):
    """One entry of a block's history."""

    block_id: str
    version: int
    value: str
    editor: str
    at: float = msgspec.field(default_factory=now)


# --- tool rules (tagged on "type", with Letta's names) ----------------------------------------


class _Rule(_Record, kw_only=True):
    """Fields every tool rule has (Letta's ``prompt_template`` is kept, not used)."""

    tool_name: str
    prompt_template: str | None = None


class RunFirst(_Rule, tag="run_first", tag_field="type", kw_only=True):
    args: dict[str, Any] | None = None


class ExitLoop(_Rule, tag="exit_loop", tag_field="type", kw_only=True):
    pass


class ContinueLoop(_Rule, tag="continue_loop", tag_field="type", kw_only=True):
    pass


class ConstrainChildTools(_Rule, tag="constrain_child_tools", tag_field="type", kw_only=True):
    children: list[str]


class ParentLastTool(_Rule, tag="parent_last_tool", tag_field="type", kw_only=True):
    """As in Letta: ``children`` may be called only right after ``tool_name`` (the parent)."""

    children: list[str]


class Conditional(_Rule, tag="conditional", tag_field="type", kw_only=True):
    child_output_mapping: dict[str, str]
    default_child: str | None = None
    require_output_mapping: bool = False


class MaxCountPerStep(_Rule, tag="max_count_per_step", tag_field="type", kw_only=True):
    max_count_limit: int


class RequiredBeforeExit(_Rule, tag="required_before_exit", tag_field="type", kw_only=True):
    pass


class RequiresApproval(_Rule, tag="requires_approval", tag_field="type", kw_only=True):
    pass


ToolRule = (
    RunFirst
    | ExitLoop
    | ContinueLoop
    | ConstrainChildTools
    | ParentLastTool
    | Conditional
    | MaxCountPerStep
    | RequiredBeforeExit
    | RequiresApproval
)


# --- agents --------------------------------------------------------------------------------


class ToolCall(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    name: str
    arguments: str


# Letta's agent types that memgrid runs (agents._decide says how each behaves).
AgentType = Literal["memgpt_agent", "memgpt_v2_agent", "letta_v1_agent"]


class Agent(_Record, kw_only=True):
    """An agent's durable state. Messages and blocks are records of their own."""

    id: str
    name: str
    agent_type: AgentType = "memgpt_agent"
    system: str
    model: str
    embedding: str
    tools: list[str] = msgspec.field(default_factory=list)
    tool_rules: list[ToolRule] = msgspec.field(default_factory=list)
    block_ids: list[str] = msgspec.field(default_factory=list)
    message_ids: list[str] = msgspec.field(default_factory=list)
    summary: str = ""
    evicted_count: int = 0
    tags: list[str] = msgspec.field(default_factory=list)
    description: str = ""
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    context_window: int = 32000
    max_steps: int = 10
    model_endpoint: str | None = None
    pending_approval: list[ToolCall] = msgspec.field(default_factory=list)
    last_memory_edit_at: float | None = None
    created_at: float = msgspec.field(default_factory=now)
    updated_at: float = msgspec.field(default_factory=now)


# --- messages (recall memory) --------------------------------------------------------------


Role = Literal["system", "user", "assistant", "tool"]


class ApprovalDecision(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A person's decision on one tool call held for approval."""

    tool_call_id: str
    approve: bool
    reason: str | None = None


class ApprovalAnswer(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The approval a person sent (Letta's ``approval_response_message``), kept on the first
    tool result that answers it: ``request_id`` is what the client named, if anything."""

    decisions: list[ApprovalDecision]
    request_id: str | None = None


class Message(_Record, kw_only=True):
    """One message of an agent's log, in OpenAI chat shape plus bookkeeping.

    ``seq`` orders an agent's messages; ``run_id``/``step_id`` say which run and step wrote it.
    A tool return carries ``tool_call_id`` and ``name``; ``status`` is ``error`` for a tool error.
    ``reply`` marks assistant text delivered as the reply (a letta_v1 agent's, or a MemGPT
    model's that ignored ``send_message``); ``reasoning``: the model's native reasoning.
    ``approval_requests`` names an assistant message's calls that waited for a person's
    approval; ``approval`` is the answer they sent.
    """

    id: str
    agent_id: str
    role: Role
    content: str = ""
    seq: int = 0
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    status: Literal["success", "error"] | None = None
    run_id: str | None = None
    step_id: str | None = None
    otid: str | None = None
    sender_id: str | None = None
    reply: bool = False
    reasoning: str = ""
    created_at: float = msgspec.field(default_factory=now)
    approval_requests: list[str] = msgspec.field(default_factory=list)
    approval: ApprovalAnswer | None = None


# --- archival memory -----------------------------------------------------------------------


class Passage(_Record, kw_only=True):
    """A piece of archival memory; its vector lives in Qdrant beside this payload."""

    id: str
    owner_id: str
    text: str
    tags: list[str] = msgspec.field(default_factory=list)
    source_id: str | None = None
    file_id: str | None = None
    created_at: float = msgspec.field(default_factory=now)


class Archive(_Record, kw_only=True):
    """A named store of passages that agents attach to share (Letta's archives).

    Its passages are owned by its id in the passage store and embedded with ``embedding``.
    """

    id: str
    name: str
    description: str = ""
    embedding: str = ""
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: float = msgspec.field(default_factory=now)
    updated_at: float = msgspec.field(default_factory=now)


# --- tools ---------------------------------------------------------------------------------


class PipRequirement(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A package a custom tool needs (Letta's shape); ``version`` is pinned with ``==``."""

    name: str
    version: str | None = None


class Tool(_Record, kw_only=True):
    """A tool an agent can call. Base tools ship with memgrid; custom ones carry their source.

    ``pip_requirements`` are installed in the tool's sandbox environment (built once per set).
    """

    id: str
    name: str
    description: str = ""
    json_schema: dict[str, Any] = msgspec.field(default_factory=dict)
    source_code: str | None = None
    import_path: str | None = None
    tool_type: Literal["base", "custom"] = "custom"
    tags: list[str] = msgspec.field(default_factory=list)
    return_char_limit: int = 6000
    pip_requirements: list[PipRequirement] = msgspec.field(default_factory=list)
    # The 0.x letta-client that registered it: its callbacks are written against that API.
    letta_client: str | None = None
    created_at: float = msgspec.field(default_factory=now)


# --- sources and files ---------------------------------------------------------------------


class Source(_Record, kw_only=True):
    id: str
    name: str
    description: str = ""
    embedding: str = ""
    created_at: float = msgspec.field(default_factory=now)


class FileMeta(_Record, kw_only=True):
    id: str
    source_id: str
    file_name: str
    file_type: str = "text/plain"
    file_size: int = 0
    status: Literal["pending", "processing", "completed", "error"] = "pending"
    passages: int = 0
    total_chunks: int = 0  # known once the text is chunked; with chunks_embedded, the progress
    chunks_embedded: int = 0
    error: str | None = None
    created_at: float = msgspec.field(default_factory=now)


# --- runs ----------------------------------------------------------------------------------


class Usage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    step_count: int = 0

    def add(self, prompt: int, completion: int) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.total_tokens += prompt + completion


RunStatus = Literal["created", "running", "waiting", "completed", "failed", "cancelled"]


class ReplyTo(msgspec.Struct, frozen=True, kw_only=True):
    """Where the final reply of a run goes: a run of another agent waiting on a tool call."""

    agent_id: str
    run_id: str
    call_id: str


class Wait(msgspec.Struct, kw_only=True):
    """A run suspended on a tool call until replies from ``targets`` arrive or ``deadline``."""

    call_id: str
    tool_name: str
    targets: list[str]
    deadline: float


class Run(_Record, kw_only=True):
    """A run: one input message (or batch) and the steps it caused.

    ``steps`` counts committed steps; with ``replies`` and ``calls`` it is what a worker needs
    to resume a run that another worker left half done.
    """

    id: str
    agent_id: str
    status: RunStatus = "created"
    stop_reason: str | None = None
    usage: Usage = msgspec.field(default_factory=Usage)
    otid: str | None = None
    error: str | None = None
    steps: int = 0
    replies: list[str] = msgspec.field(default_factory=list)
    calls: list[str] = msgspec.field(default_factory=list)
    last_output: str | None = None
    attempts: int = 0
    # Deliveries of its inbox entry that were no attempt: those up to its last wait (the count
    # starts again at each resume) and the wait's early wakes. A worker counts attempts as the
    # entry's delivery count (Redis keeps it and every take raises it, a crashed worker's
    # too) less these, so it writes nothing before a step to count one.
    uncounted_deliveries: int = 0
    retries: int = 0  # times an operator re-queued it from the dead-letter stream
    reply_to: ReplyTo | None = None
    hops: int = 0
    wait_chain: list[str] = msgspec.field(default_factory=list)
    wait: Wait | None = None
    # The run of the outside input whose chain of agent-to-agent messages caused this run;
    # None: this run is such a root itself (records written before the field read as roots).
    root_run_id: str | None = None
    created_at: float = msgspec.field(default_factory=now)
    started_at: float | None = None
    completed_at: float | None = None
    stream_tokens: bool = False  # a client follows it live: the model streams, deltas shown


_T = TypeVar("_T")
_encoder = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


_V = b'{"v":'


def encode(record: msgspec.Struct) -> bytes:
    """JSON bytes of a record (JSON, not msgpack, so that Redis values stay readable), with
    its schema version ``v`` first."""
    raw = _encoder.encode(record)
    if isinstance(record, _Record) and not raw.startswith(_V):
        # omit_defaults dropped v (it equals its default); a base class's fields come first,
        # so v belongs at the front.
        raw = b'{"v":%d,' % record.v + raw[1:] if raw != b"{}" else b'{"v":%d}' % record.v
    return raw


def decode(kind: type[_T], data: bytes | str) -> _T:
    """Decode ``data`` as ``kind`` with a decoder cached per type."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    record = decoder.decode(data)
    if isinstance(record, _Record):
        head = data[:16].lstrip()
        head = head if isinstance(head, bytes) else head.encode()
        if not head.startswith(_V):
            record.v = LEGACY_VERSION  # written before records stored their version
    return record  # type: ignore[no-any-return]  # cached per kind
