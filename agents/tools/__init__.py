"""Agent tools: schemas generated from typed signatures and Google-style docstrings."""

from __future__ import annotations

from agents.tools.schema import (
    DEFAULT_INJECTED,
    ToolSchema,
    ToolSchemaError,
    schema_from_function,
    schema_from_source,
    validate_arguments,
)

__all__ = (
    "DEFAULT_INJECTED",
    "ToolSchema",
    "ToolSchemaError",
    "schema_from_function",
    "schema_from_source",
    "validate_arguments",
)
