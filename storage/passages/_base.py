"""The protocol's methods written once over a few per-collection primitives.

Both engines keep one collection per vector dimension and answer the same calls the same way:
the checks on dimensions, the owner filters, paging, and what a call counts or returns. Only
how a collection is opened and how one collection is read or written differ, so each engine
subclasses :class:`CollectionStore` and provides :class:`Collection` objects; the engine's own
error handling wraps every public call through :meth:`CollectionStore._errors`.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Sequence
from typing import Protocol, Self

import anyio.lowlevel

from storage.passages._common import (
    Conditions,
    OrderedSource,
    Window,
    check_batch,
    conditions,
    dimension_error,
    owners,
    page,
)
from storage.passages.protocol import PassageNotFoundError, ScoredPassage, TimeBound
from storage.records import Passage

__all__ = ("INSERT_CHUNK", "Collection", "CollectionStore")

INSERT_CHUNK = 256
"""Points per engine call on insert; the event loop runs between chunks (the embedded engine
holds it for the length of each call)."""


class Collection(OrderedSource, Protocol):
    """One collection (one vector dimension) of an engine."""

    @property
    def dimension(self) -> int: ...

    async def upsert(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        """Store up to :data:`INSERT_CHUNK` passages with their vectors (of this dimension),
        overwriting equal ids."""
        ...

    async def nearest(
        self, where: Conditions, vector: Sequence[float], top_k: int, offset: int
    ) -> list[ScoredPassage]:
        """The ``top_k`` passages matching ``where`` nearest to ``vector`` after the
        ``offset`` best, best first (ties by passage id)."""
        ...

    async def retrieve(self, passage_ids: Sequence[str]) -> list[Passage]:
        """The passages with these ids, any owner."""
        ...

    async def delete_ids(self, passage_ids: Sequence[str]) -> None: ...

    async def delete_where(self, where: Conditions) -> None: ...

    async def tag_values(self, where: Conditions) -> builtins.list[str]:
        """The distinct tags of the passages matching ``where``."""
        ...


class CollectionStore:
    """:class:`storage.passages.PassageStore` over an engine's collections.

    Subclasses provide :meth:`_check_open`, :meth:`_all`, :meth:`_existing`, :meth:`_create`,
    :meth:`optimize` and :meth:`aclose`, and may wrap each call in :meth:`_errors`.
    """

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        """What each public call runs inside (the server engine names itself in errors)."""
        return contextlib.nullcontext()

    def _check_open(self) -> None:
        raise NotImplementedError

    async def _all(self) -> builtins.list[Collection]:
        """Every collection, in order of dimension."""
        raise NotImplementedError

    async def _existing(self, dimension: int) -> Collection | None:
        """The collection of this dimension, if there is one."""
        raise NotImplementedError

    async def _create(self, dimension: int) -> Collection:
        """The collection of this dimension, created if missing."""
        raise NotImplementedError

    async def _owned(
        self, collection: Collection, owner_id: str | Sequence[str], passage_ids: Sequence[str]
    ) -> builtins.list[Passage]:
        """The passages with these ids in ``collection`` that belong to the owner (or one of
        several): no call sees another owner's passages."""
        named = owners(owner_id)
        return [p for p in await collection.retrieve(passage_ids) if p.owner_id in named]

    async def _check_owners(self, owner_ids: set[str], dimension: int) -> None:
        for other in await self._all():
            if other.dimension == dimension:
                continue
            for owner_id in sorted(owner_ids):
                if await other.count_where(Conditions(owner_id=owner_id)):
                    raise dimension_error(owner_id, other.dimension, dimension)

    async def insert(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        """See :meth:`storage.passages.PassageStore.insert`."""
        with self._errors():
            self._check_open()
            dimension = check_batch(passages, vectors)
            if dimension is None:
                return
            await self._check_owners({passage.owner_id for passage in passages}, dimension)
            collection = await self._create(dimension)
            for begin in range(0, len(passages), INSERT_CHUNK):
                end = begin + INSERT_CHUNK
                await collection.upsert(passages[begin:end], vectors[begin:end])
                await anyio.lowlevel.checkpoint()

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
        """See :meth:`storage.passages.PassageStore.search`."""
        with self._errors():
            collection = await self._existing(len(vector))
            hits: list[ScoredPassage] = []
            if collection is not None and top_k > 0 and owners(owner_id):
                where = conditions(
                    owner_id, tags=tags, match_all_tags=match_all_tags, start=start, end=end
                )
                hits = await collection.nearest(where, vector, top_k, max(offset, 0))
            if not hits:
                await self._check_owners(set(owners(owner_id)), len(vector))
            return hits

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
        """See :meth:`storage.passages.PassageStore.list`."""
        with self._errors():
            anchor = None
            if after is not None:
                anchor = await self.get(owner_id, after)
                if anchor is None:
                    named = ", ".join(repr(owner) for owner in owners(owner_id))
                    raise PassageNotFoundError(f"owner {named} has no passage {after!r}")
            where = conditions(owner_id, tags=tags, match_all_tags=match_all_tags)
            window = Window(limit=limit, offset=offset, anchor=anchor, ascending=ascending)
            return await page(await self._all(), where, window)

    async def get(self, owner_id: str | Sequence[str], passage_id: str) -> Passage | None:
        """See :meth:`storage.passages.PassageStore.get`."""
        with self._errors():
            for collection in await self._all():
                found = await self._owned(collection, owner_id, [passage_id])
                if found:
                    return found[0]
            return None

    async def delete(self, owner_id: str, passage_ids: Sequence[str]) -> int:
        """See :meth:`storage.passages.PassageStore.delete`."""
        with self._errors():
            deleted = 0
            for collection in await self._all():
                found = await self._owned(collection, owner_id, list(dict.fromkeys(passage_ids)))
                if found:
                    await collection.delete_ids([passage.id for passage in found])
                    deleted += len(found)
            return deleted

    async def delete_owner(self, owner_id: str) -> int:
        """See :meth:`storage.passages.PassageStore.delete_owner`."""
        with self._errors():
            deleted = 0
            where = Conditions(owner_id=owner_id)
            for collection in await self._all():
                present = await collection.count_where(where)
                if present:
                    await collection.delete_where(where)
                    deleted += present
            return deleted

    async def count(self, owner_id: str) -> int:
        """See :meth:`storage.passages.PassageStore.count`."""
        with self._errors():
            where = Conditions(owner_id=owner_id)
            return sum([await collection.count_where(where) for collection in await self._all()])

    async def tags(self, owner_id: str) -> builtins.list[str]:
        """See :meth:`storage.passages.PassageStore.tags`."""
        with self._errors():
            found: set[str] = set()
            where = Conditions(owner_id=owner_id)
            for collection in await self._all():
                found.update(await collection.tag_values(where))
            return sorted(found)

    async def optimize(self) -> bool:
        """See :meth:`storage.passages.PassageStore.optimize`."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """See :meth:`storage.passages.PassageStore.aclose`."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
