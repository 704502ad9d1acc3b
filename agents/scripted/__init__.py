"""The scripted model: an OpenAI-compatible server on loopback driven by Python policies.

Tests, examples and the offline demo run agents against it through the real ``openai`` SDK.
:class:`FunctionModel` runs the same policies in-process, behind the runtime's model seam
(:mod:`agents.model`), for fast unit tests with no server.
A *policy* maps each :class:`ChatRequest` to a :class:`Reply` or a fault; see
:mod:`agents.scripted.policies` for the helpers and :mod:`agents.scripted.server` for the
server. ``memgrid scripted-model --policy module:attr`` serves one from the command line.
"""

from __future__ import annotations

from agents.scripted._app import DEFAULT_CONTEXT_WINDOW, DEFAULT_MODELS
from agents.scripted.errors import PolicyFailed, ScriptedModelError, SequenceExhausted
from agents.scripted.inprocess import FunctionModel
from agents.scripted.policies import (
    SEND_MESSAGE,
    ScriptedSequence,
    always,
    call,
    echo,
    faults_then,
    malformed_tool_call,
    say,
    sequence,
    text,
    tool_call,
    tool_calls,
)
from agents.scripted.protocol import (
    ChatMessage,
    ChatRequest,
    EmbeddingRequest,
    ToolResult,
    estimate_tokens,
)
from agents.scripted.replies import (
    ContextTooLong,
    CutStream,
    EmbeddingsPolicy,
    Fault,
    MalformedBody,
    Outcome,
    Policy,
    RateLimited,
    Reply,
    ScriptedToolCall,
    ServerError,
    Slow,
    Usage,
)
from agents.scripted.server import ScriptedModel, ThreadedScriptedModel

__all__ = (
    "DEFAULT_CONTEXT_WINDOW",
    "DEFAULT_MODELS",
    "SEND_MESSAGE",
    "ChatMessage",
    "ChatRequest",
    "ContextTooLong",
    "CutStream",
    "EmbeddingRequest",
    "EmbeddingsPolicy",
    "Fault",
    "FunctionModel",
    "MalformedBody",
    "Outcome",
    "Policy",
    "PolicyFailed",
    "RateLimited",
    "Reply",
    "ScriptedModel",
    "ScriptedModelError",
    "ScriptedSequence",
    "ScriptedToolCall",
    "SequenceExhausted",
    "ServerError",
    "Slow",
    "ThreadedScriptedModel",
    "ToolResult",
    "Usage",
    "always",
    "call",
    "echo",
    "estimate_tokens",
    "faults_then",
    "malformed_tool_call",
    "say",
    "sequence",
    "text",
    "tool_call",
    "tool_calls",
)
