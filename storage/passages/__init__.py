"""Archival memory: passages with vectors behind one protocol, two Qdrant engines.

:func:`open_passage_store` picks the engine from :class:`storage.settings.StorageSettings`:
``MEMGRID_QDRANT_URL`` set → :class:`ServerPassageStore` (a Qdrant server or cluster),
otherwise :class:`EdgePassageStore`, the embedded engine under ``$MEMGRID_HOME/qdrant``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storage.passages.edge import EdgePassageStore
from storage.passages.protocol import (
    PassageDimensionError,
    PassageNotFoundError,
    PassageServerError,
    PassageStore,
    PassageStoreClosedError,
    PassageStoreError,
    PassageStoreLockedError,
    ScoredPassage,
    TimeBound,
)
from storage.settings import StorageSettings

if TYPE_CHECKING:
    from storage.passages.server import ServerPassageStore

__all__ = (
    "EdgePassageStore",
    "PassageDimensionError",
    "PassageNotFoundError",
    "PassageServerError",
    "PassageStore",
    "PassageStoreClosedError",
    "PassageStoreError",
    "PassageStoreLockedError",
    "ScoredPassage",
    "ServerPassageStore",
    "StorageSettings",
    "TimeBound",
    "open_passage_store",
)


def __getattr__(name: str) -> Any:
    # qdrant-client (~90 MiB) loads only when the server engine is used.
    if name == "ServerPassageStore":
        from storage.passages.server import ServerPassageStore

        return ServerPassageStore
    raise AttributeError(f"module 'storage.passages' has no attribute {name!r}")


def open_passage_store(settings: StorageSettings) -> PassageStore:
    """Open the passage store that ``settings`` select; the caller closes it.

    Args:
        settings: ``qdrant_url`` (``MEMGRID_QDRANT_URL``) selects a Qdrant server, with
            ``qdrant_api_key``; otherwise the embedded engine opens under ``home / "qdrant"``.

    Raises:
        PassageStoreLockedError: The embedded engine's folder is open in another process.
    """
    if settings.qdrant_url:
        from storage.passages.server import ServerPassageStore

        return ServerPassageStore(settings.qdrant_url, api_key=settings.qdrant_api_key)
    return EdgePassageStore(settings.home / "qdrant")
