"""Archival memory: passages with vectors behind one protocol, two Qdrant engines.

:func:`open_passage_store` picks the engine from :class:`storage.settings.StorageSettings`:
``MEMGRID_QDRANT_URL`` set → :class:`ServerPassageStore` (a Qdrant server or cluster),
otherwise :class:`EdgePassageStore`, the embedded engine under ``$MEMGRID_HOME/qdrant``.
"""

from __future__ import annotations

from storage.passages.edge import EdgePassageStore
from storage.passages.protocol import (
    PassageDimensionError,
    PassageNotFoundError,
    PassageStore,
    PassageStoreClosedError,
    PassageStoreError,
    PassageStoreLockedError,
    ScoredPassage,
    TimeBound,
)
from storage.passages.server import ServerPassageStore
from storage.settings import StorageSettings

__all__ = (
    "EdgePassageStore",
    "PassageDimensionError",
    "PassageNotFoundError",
    "PassageStore",
    "PassageStoreClosedError",
    "PassageStoreError",
    "PassageStoreLockedError",
    "ScoredPassage",
    "ServerPassageStore",
    "TimeBound",
    "open_passage_store",
)


def open_passage_store(settings: StorageSettings) -> PassageStore:
    """Open the passage store that ``settings`` select; the caller closes it.

    Args:
        settings: ``qdrant_url`` (``MEMGRID_QDRANT_URL``) selects a Qdrant server, with
            ``qdrant_api_key``; otherwise the embedded engine opens under ``home / "qdrant"``.

    Raises:
        PassageStoreLockedError: The embedded engine's folder is open in another process.
    """
    if settings.qdrant_url:
        return ServerPassageStore(settings.qdrant_url, api_key=settings.qdrant_api_key)
    return EdgePassageStore(settings.home / "qdrant")
