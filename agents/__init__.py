"""The agent runtime: context compilation, the step loop, tools, tool rules, routes, LLM client,
scripted model.

Errors, under memgrid's root (:mod:`storage.errors`)::

    MemgridError
    ├── UserError
    │   ├── LLMRejected            the endpoint refused the key, the model, or none is set
    │   ├── ContextOverflow        nothing left to evict and the request still does not fit
    │   ├── MessageTooLarge        (InvalidRecord) over the size limit (agents.limits)
    │   ├── MessageTooLong         (InvalidRecord) can never fit the context window
    │   ├── ToolSchemaError        (ValueError) a function cannot become a tool
    │   ├── ToolEnvError           a tool's pip environment could not be built
    │   ├── SequenceExhausted      a scripted sequence() ran out (ScriptedModelError)
    │   └── PolicyFailed           a scripted policy raised (ScriptedModelError)
    ├── RuntimeFailure
    │   ├── LLMUnavailable         retries spent on 429 / 5xx / timeouts (LLMError)
    │   ├── LLMInvalidResponse     retries spent on answers that are not completions
    │   ├── ContextWindowExceeded  the provider says the prompt is too long: compact, retry
    │   ├── Unparsable             one answer that is not a completion (retried)
    │   └── ArchivalUnavailable    no process answered for the embedded passage engine
    └── ControlSignal
        ├── ToolError              a refusal the model reads as the tool's result
        ├── AwaitReplies           a tool asks to wait for replies (agents.messaging)
        ├── RepliesPending         the run waits for other agents (agents._turn)
        └── Preempted              the worker stops: resume the run elsewhere

``LLMError`` and ``ScriptedModelError`` are the bases of the model's and the scripted model's
errors; they have no kind of their own.

The Python API (``from agents import AgentSpec, create_agent, RunStore, ...``) is ``__all__``
below; :mod:`orchestrator` adds ``open_runtime``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bus._lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:  # the same names, seen by type checkers; at run time they load on first use
    from agents.archival import PassageArchival
    from agents.archival_rpc import ArchivalUnavailable
    from agents.ingest import attach_source, extract_text, file_type
    from agents.letta_messages import (
        ApprovalRequestMessage,
        ApprovalResponseMessage,
        AssistantMessage,
        Event,
        LettaMessage,
        ReasoningMessage,
        StopReason,
        SystemMessage,
        ToolCallMessage,
        ToolReturnMessage,
        UsageStatistics,
        UserMessage,
    )
    from agents.limits import MessageTooLarge, MessageTooLong
    from agents.llm import (
        ContextWindowExceeded,
        LLMError,
        LLMInvalidResponse,
        LLMRejected,
        LLMSettings,
        LLMUnavailable,
    )
    from agents.loop import TurnOptions, TurnResult, run_turn
    from agents.manage import (
        AgentSpec,
        BlockSpec,
        attach_block,
        create_agent,
        delete_agent,
        detach_block,
    )
    from agents.runs import RunStore, Submitted, live_workers, retry_dead_letter
    from agents.runtime import LLMPool, Runtime
    from agents.summarizer import ContextOverflow
    from agents.tool_envs import ToolEnvError
    from agents.tools import ToolSchemaError, schema_from_function
    from agents.tools.base import ToolError
    from agents.worker import Worker, WorkerSettings

__all__ = (
    "AgentSpec",
    "ApprovalRequestMessage",
    "ApprovalResponseMessage",
    "ArchivalUnavailable",
    "AssistantMessage",
    "BlockSpec",
    "ContextOverflow",
    "ContextWindowExceeded",
    "Event",
    "LLMError",
    "LLMInvalidResponse",
    "LLMPool",
    "LLMRejected",
    "LLMSettings",
    "LLMUnavailable",
    "LettaMessage",
    "MessageTooLarge",
    "MessageTooLong",
    "PassageArchival",
    "ReasoningMessage",
    "RunStore",
    "Runtime",
    "StopReason",
    "Submitted",
    "SystemMessage",
    "ToolCallMessage",
    "ToolEnvError",
    "ToolError",
    "ToolReturnMessage",
    "ToolSchemaError",
    "TurnOptions",
    "TurnResult",
    "UsageStatistics",
    "UserMessage",
    "Worker",
    "WorkerSettings",
    "attach_block",
    "attach_source",
    "create_agent",
    "delete_agent",
    "detach_block",
    "extract_text",
    "file_type",
    "live_workers",
    "retry_dead_letter",
    "run_turn",
    "schema_from_function",
)

# Importing agents stays cheap (the CLI's --help imports it): a name's module loads when the
# name is first used, from where the TYPE_CHECKING block above imports it.
__getattr__, __dir__ = _lazy_exports(globals())
