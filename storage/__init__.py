"""Persistence: agent records, memory blocks, the message log, passages and embeddings."""

from storage.records import (
    Agent,
    Block,
    BlockEdit,
    FileMeta,
    Message,
    Passage,
    PipRequirement,
    Run,
    Source,
    Tool,
    ToolCall,
    ToolRule,
    Usage,
)

__all__ = (
    "Agent",
    "Block",
    "BlockEdit",
    "FileMeta",
    "Message",
    "Passage",
    "PipRequirement",
    "Run",
    "Source",
    "Tool",
    "ToolCall",
    "ToolRule",
    "Usage",
)
