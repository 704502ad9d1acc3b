"""The contract of archival memory: one :class:`PassageStore` protocol, two engines.

A passage is stored as one Qdrant point: its vector, and the :class:`storage.records.Passage`
as payload. Vectors of one dimension share a collection named ``passages_<dimension>``, so
that agents with different embedders coexist; an owner's passages all have one dimension.

Errors::

    PassageStoreError (StorageError)
    ├── PassageDimensionError   UserError (also ValueError) a vector's dimension does not fit
    ├── PassageNotFoundError    UserError (also LookupError) a paging cursor names no passage
    ├── PassageStoreLockedError RuntimeFailure  the engine's folder is held by another process
    ├── PassageStoreClosedError RuntimeFailure  the store was used after ``aclose()``
    └── PassageServerError      RuntimeFailure  a Qdrant server failed or could not be reached
                                (names its URL)
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import msgspec

from storage.errors import RuntimeFailure, StorageError, UserError
from storage.records import Passage

__all__ = (
    "PassageDimensionError",
    "PassageNotFoundError",
    "PassageServerError",
    "PassageStore",
    "PassageStoreClosedError",
    "PassageStoreError",
    "PassageStoreLockedError",
    "ScoredPassage",
    "TimeBound",
)

TimeBound = float | datetime
"""A bound of a ``created_at`` range: epoch seconds, or an aware ``datetime``."""


class PassageStoreError(StorageError):
    """Base of the errors of the passage stores."""


class PassageDimensionError(PassageStoreError, UserError, ValueError):
    """A vector's dimension does not fit (the batch, or the owner's earlier passages)."""


class PassageNotFoundError(PassageStoreError, UserError, LookupError):
    """A paging cursor (``after=``) names a passage that the owner does not have."""


class PassageStoreLockedError(PassageStoreError, RuntimeFailure):
    """The embedded engine's folder is open in another process (or another store)."""


class PassageStoreClosedError(PassageStoreError, RuntimeFailure):
    """The store was used after :meth:`PassageStore.aclose`."""


class PassageServerError(PassageStoreError, RuntimeFailure):
    """The Qdrant server (``MEMGRID_QDRANT_URL``) failed, refused or could not be reached.

    The message names the server's URL and what to check; the API answers it with a 502.
    """


class ScoredPassage(msgspec.Struct, frozen=True, kw_only=True):
    """One search hit.

    Attributes:
        passage: The stored passage.
        score: Cosine similarity to the query vector (higher is closer).
    """

    passage: Passage
    score: float


@runtime_checkable
class PassageStore(Protocol):
    """Archival memory: passages with vectors, partitioned by owner (an agent or a source).

    Every read and write names the owner (a search may name several); no call sees the
    passages of an owner it did not name. Writes are
    idempotent by passage id (at-least-once callers may repeat them). Lists are in
    ``created_at`` order, ties broken by passage id.
    """

    async def insert(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        """Store passages with their vectors; re-inserting an id overwrites it.

        Args:
            passages: The passages, any owners.
            vectors: One vector per passage, all of one dimension.

        Raises:
            ValueError: ``passages`` and ``vectors`` differ in length.
            PassageDimensionError: The vectors differ in dimension, or an owner already has
                passages of another dimension.
        """
        ...

    async def search(
        self,
        owner_id: str | Sequence[str],
        vector: Sequence[float],
        *,
        top_k: int = 10,
        tags: Sequence[str] | None = None,
        match_all_tags: bool = False,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        offset: int = 0,
    ) -> builtins.list[ScoredPassage]:
        """The owner's passages nearest to ``vector``, best first.

        Args:
            owner_id: Whose passages: one owner, or several (an agent and the archives
                attached to it) searched as one ranked list by a single query filtered on
                the owners (``any`` match on the tenant field), never one query per owner.
            vector: The query vector (same dimension as the owner's passages).
            top_k: How many hits at most.
            tags: Keep passages with any of these tags (all of them with
                ``match_all_tags``); ``None`` or empty keeps all.
            match_all_tags: Require every tag in ``tags``.
            start: Keep passages created at or after this time.
            end: Keep passages created at or before this time.
            offset: Skip this many best hits (paging).

        Raises:
            PassageDimensionError: An owner's passages have another dimension (and nothing
                was found).
        """
        ...

    async def list(
        self,
        owner_id: str | Sequence[str],
        *,
        limit: int = 50,
        offset: int = 0,
        after: str | None = None,
        tags: Sequence[str] | None = None,
        match_all_tags: bool = False,
        ascending: bool = True,
    ) -> builtins.list[Passage]:
        """The owner's passages in ``created_at`` order (ties by id).

        Args:
            owner_id: Whose passages: one owner, or several listed as one sequence (one
                filtered query per collection, as in :meth:`search`).
            limit: How many at most.
            offset: Skip this many first (ignored when ``after`` is given).
            after: A cursor: start after this passage id, in the chosen direction.
            tags: As in :meth:`search`.
            match_all_tags: As in :meth:`search`.
            ascending: Oldest first (``False``: newest first).

        Raises:
            PassageNotFoundError: ``after`` names no passage of this owner.
        """
        ...

    async def get(self, owner_id: str | Sequence[str], passage_id: str) -> Passage | None:
        """The passage with this id if it belongs to the owner (or one of several), else
        ``None``."""
        ...

    async def delete(self, owner_id: str, passage_ids: Sequence[str]) -> int:
        """Delete the owner's passages among ``passage_ids``; returns how many there were."""
        ...

    async def delete_owner(self, owner_id: str) -> int:
        """Delete all passages of an owner; returns how many there were."""
        ...

    async def count(self, owner_id: str) -> int:
        """How many passages the owner has."""
        ...

    async def tags(self, owner_id: str) -> builtins.list[str]:
        """The distinct tags of the owner's passages, sorted."""
        ...

    async def optimize(self) -> bool:
        """Maintenance: compact segments and build vector indexes where the engine needs it.

        Returns:
            ``True`` if anything changed. Engines that optimize by themselves return ``False``.
        """
        ...

    async def aclose(self) -> None:
        """Flush and release the engine (idempotent)."""
        ...
