"""Persistence: agent records, memory blocks, the message log, passages and embeddings.

memgrid's error root is here (:mod:`storage.errors`): every package may import it. Each
error is a ``MemgridError`` and exactly one of ``UserError`` (the caller can fix it),
``RuntimeFailure`` (a dependency failed) or ``ControlSignal`` (flow control)::

    MemgridError
    ├── StorageError
    │   ├── NotFound                    UserError
    │   │   └── UnknownCursor           UserError       a page cursor naming no agent/run
    │   ├── Conflict                    UserError
    │   ├── StaleWriter                 ControlSignal   a fenced write after a lost lease
    │   ├── InvalidRecord               UserError
    │   ├── InvalidSetting              UserError
    │   └── PassageStoreError           (storage.passages)
    │       ├── PassageDimensionError   UserError       (ValueError)
    │       ├── PassageNotFoundError    UserError       (LookupError)
    │       ├── PassageStoreLockedError RuntimeFailure  the engine's folder is in use
    │       ├── PassageStoreClosedError RuntimeFailure
    │       └── PassageServerError      RuntimeFailure  a Qdrant server failed (API: 502)
    ├── UnknownEmbeddingHandle          UserError       (storage.embeddings.errors)
    ├── EmbeddingNotConfigured          UserError
    ├── EmbeddingModelMissing           UserError       the MiniLM wheel is not installed
    ├── EmbeddingEndpointError          RuntimeFailure
    └── EmbeddingDimensionUnknown       RuntimeFailure
"""

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
