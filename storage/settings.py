"""Typed settings of storage, read from the environment in one place."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

__all__ = ("DEFAULT_EMBEDDING", "StorageSettings")

DEFAULT_EMBEDDING = "local/all-MiniLM-L6-v2"


class StorageSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where passages live and which embedder to use.

    Attributes:
        home: ``MEMGRID_HOME`` (default ``./.memgrid``); the embedded Qdrant engine keeps its
            data under ``home / "qdrant"``.
        qdrant_url: ``MEMGRID_QDRANT_URL``: use a Qdrant server instead of the embedded engine.
        qdrant_api_key: ``MEMGRID_QDRANT_API_KEY`` for that server.
        embedding: ``MEMGRID_EMBEDDING``: the default embedding handle for new agents
            (``local/all-MiniLM-L6-v2`` or e.g. ``openai/text-embedding-3-small``).
        openai_base_url: ``OPENAI_BASE_URL`` for remote embedders.
        openai_api_key: ``OPENAI_API_KEY`` for remote embedders.
    """

    home: Path = Path(".memgrid")
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    embedding: str = DEFAULT_EMBEDDING
    openai_base_url: str | None = None
    openai_api_key: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> StorageSettings:
        env = os.environ if environ is None else environ
        return cls(
            home=Path(env.get("MEMGRID_HOME") or ".memgrid").expanduser().absolute(),
            qdrant_url=env.get("MEMGRID_QDRANT_URL") or None,
            qdrant_api_key=env.get("MEMGRID_QDRANT_API_KEY") or None,
            embedding=env.get("MEMGRID_EMBEDDING") or DEFAULT_EMBEDDING,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            openai_api_key=env.get("OPENAI_API_KEY") or None,
        )
