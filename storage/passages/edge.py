"""The embedded engine: Qdrant Edge (``qdrant-edge-py``, Rust) in this process.

Layout under the store's folder (``$MEMGRID_HOME/qdrant``): one Edge shard per vector
dimension (``passages_384/``...), created on first insert, and a ``.lock`` file that this
process holds with ``flock`` while the store is open: the engine opens in one process only.
Each shard has payload indexes on ``owner_id`` (keyword, tenant), ``tags`` (keyword) and
``created_at`` (float: range filters and ordering).

Two measured facts (qdrant-edge-py 0.9, 2 cores) shape this adapter:

* **Calls run inline, not in worker threads.** The bindings keep the GIL for most of each call
  (a 120 ms upsert stalls every Python thread for 125 ms; ``optimize()`` freezes them all), so
  ``anyio.to_thread`` would add a thread hop without letting the event loop run. Reads are
  fast enough inline (an owner-filtered top-10 over 100k points: ~0.4 ms p50 without an HNSW
  index, because the tenant index narrows the scan to the owner's points); inserts go in
  chunks of :data:`INSERT_CHUNK` points with a checkpoint between chunks (~10 ms each).
* **No implicit ``optimize()``.** Edge runs no background optimizer: points stay in the
  appendable segment until :meth:`EdgePassageStore.optimize` builds HNSW graphs, merges
  segments and vacuums deletions. That takes about a minute per 100k points and holds the
  GIL throughout, so it never runs on the insert path, on a timer or in ``aclose()``; call it
  from a maintenance command while no agent is served. Every search is owner-filtered, and
  an owner's passages are scanned exactly through the payload index well below the 5 ms
  target (see ``benchmarks/passages.py``), so serving does not need it.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Self

import anyio.lowlevel
import qdrant_edge as qe

from storage.passages._common import (
    CREATED_AT,
    OWNER,
    TAGS,
    Conditions,
    check_batch,
    collection_dimension,
    collection_name,
    conditions,
    dimension_error,
    from_payload,
    owners,
    page,
    point_id,
    to_payload,
)
from storage.passages.protocol import (
    PassageNotFoundError,
    PassageStoreClosedError,
    PassageStoreLockedError,
    ScoredPassage,
    TimeBound,
)
from storage.records import Passage

__all__ = ("INSERT_CHUNK", "EdgePassageStore")

INSERT_CHUNK = 256
"""Points per engine call on insert; the event loop runs between chunks."""

_MAX_TAGS = 100_000


def _locked_message(root: Path) -> str:
    return (
        f"the embedded Qdrant engine at {root} is already open in another process (or by "
        "another store in this one): the embedded engine opens in one process only. Set "
        "MEMGRID_QDRANT_URL to use a Qdrant server, or go through the process that owns it."
    )


def _filter(where: Conditions) -> qe.Filter:
    owner = (
        qe.MatchValue(where.owner_id)
        if isinstance(where.owner_id, str)
        else qe.MatchAny(list(where.owner_id))
    )
    must: list[Any] = [qe.FieldCondition(OWNER, match=owner)]
    if where.tags and where.match_all_tags:
        must += [qe.FieldCondition(TAGS, match=qe.MatchValue(tag)) for tag in where.tags]
    elif where.tags:
        must.append(qe.FieldCondition(TAGS, match=qe.MatchAny(list(where.tags))))
    if where.gte is not None or where.lte is not None:
        must.append(
            qe.FieldCondition(CREATED_AT, range=qe.RangeFloat(gte=where.gte, lte=where.lte))
        )
    return qe.Filter(must=must)


class _Collection:
    """One Edge shard (one dimension); implements the paging primitives of ``_common``."""

    def __init__(self, shard: qe.EdgeShard, dimension: int) -> None:
        self.shard = shard
        self.dimension = dimension

    async def ordered(self, where: Conditions, limit: int, ascending: bool) -> list[Passage]:
        direction = qe.Direction.Asc if ascending else qe.Direction.Desc
        request = qe.ScrollRequest(
            limit=limit,
            filter=_filter(where),
            with_payload=True,
            with_vector=False,
            order_by=qe.OrderBy(CREATED_AT, direction),
        )
        records, _ = self.shard.scroll(request)
        return [from_payload(record.payload) for record in records]

    async def count_where(self, where: Conditions) -> int:
        return int(self.shard.count(qe.CountRequest(exact=True, filter=_filter(where))))

    async def scan(self, where: Conditions, limit: int) -> list[Passage]:
        request = qe.ScrollRequest(
            limit=limit, filter=_filter(where), with_payload=True, with_vector=False
        )
        records, _ = self.shard.scroll(request)
        return [from_payload(record.payload) for record in records]

    def retrieve(self, owner_id: str | Sequence[str], passage_ids: Sequence[str]) -> list[Passage]:
        ids: list[Any] = [point_id(passage_id) for passage_id in passage_ids]
        records = self.shard.retrieve(ids, with_payload=True, with_vector=False)
        found = (from_payload(record.payload) for record in records)
        named = owners(owner_id)
        return [passage for passage in found if passage.owner_id in named]


class EdgePassageStore:
    """:class:`storage.passages.PassageStore` on the embedded Qdrant Edge engine.

    Args:
        path: The folder of the engine's data (``$MEMGRID_HOME/qdrant``); created if missing.

    Raises:
        PassageStoreLockedError: Another process (or another open store) holds ``path``.
    """

    def __init__(self, path: Path | str) -> None:
        self._root = Path(path)
        self._root.mkdir(parents=True, exist_ok=True)
        self._lock: IO[bytes] | None = self._acquire_lock()
        self._collections: dict[int, _Collection] = {}
        self._dimensions = sorted(
            dimension
            for entry in self._root.iterdir()
            if entry.is_dir() and (dimension := collection_dimension(entry.name)) is not None
        )

    @property
    def path(self) -> Path:
        """The engine's data folder."""
        return self._root

    def _acquire_lock(self) -> IO[bytes]:
        handle = (self._root / ".lock").open("a+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise PassageStoreLockedError(_locked_message(self._root)) from None
        except BaseException:
            handle.close()
            raise
        return handle

    def _collection(self, dimension: int, *, create: bool = False) -> _Collection | None:
        if self._lock is None:
            raise PassageStoreClosedError("the passage store is closed: open a new one")
        found = self._collections.get(dimension)
        if found is not None:
            return found
        folder = self._root / collection_name(dimension)
        try:
            if folder.exists():
                shard = qe.EdgeShard.load(str(folder))
            elif create:
                vectors = qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)
                shard = qe.EdgeShard.create(str(folder), qe.EdgeConfig(vectors=vectors))
            else:
                return None
        except Exception as error:
            if "WouldBlock" in str(error):  # the shard's WAL is locked by someone else
                raise PassageStoreLockedError(_locked_message(self._root)) from error
            raise
        self._ensure_indexes(shard)
        found = self._collections[dimension] = _Collection(shard, dimension)
        if dimension not in self._dimensions:
            self._dimensions = sorted([*self._dimensions, dimension])
        return found

    @staticmethod
    def _ensure_indexes(shard: qe.EdgeShard) -> None:
        # Checked on every open, so that a shard whose creation was cut short is repaired.
        schema = shard.info().payload_schema
        wanted: dict[str, Any] = {
            OWNER: qe.KeywordIndexParams(is_tenant=True),
            TAGS: qe.PayloadSchemaType.Keyword,
            CREATED_AT: qe.PayloadSchemaType.Float,
        }
        for field, index in wanted.items():
            if field not in schema:
                shard.update(qe.UpdateOperation.create_field_index(field, index))

    def _all(self) -> list[_Collection]:
        if self._lock is None:
            raise PassageStoreClosedError("the passage store is closed: open a new one")
        found = (self._collection(dimension) for dimension in list(self._dimensions))
        return [collection for collection in found if collection is not None]

    async def _check_owners(self, owners: set[str], dimension: int) -> None:
        for other in self._all():
            if other.dimension == dimension:
                continue
            for owner_id in sorted(owners):
                if await other.count_where(Conditions(owner_id=owner_id)):
                    raise dimension_error(owner_id, other.dimension, dimension)

    async def insert(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        """See :meth:`storage.passages.PassageStore.insert`."""
        dimension = check_batch(passages, vectors)
        if dimension is None:
            return
        await self._check_owners({passage.owner_id for passage in passages}, dimension)
        collection = self._collection(dimension, create=True)
        assert collection is not None  # create=True
        for start in range(0, len(passages), INSERT_CHUNK):
            points = [
                qe.Point(point_id(passage.id), list(vector), to_payload(passage))
                for passage, vector in zip(
                    passages[start : start + INSERT_CHUNK],
                    vectors[start : start + INSERT_CHUNK],
                    strict=True,
                )
            ]
            collection.shard.update(qe.UpdateOperation.upsert_points(points))
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
        collection = self._collection(len(vector))
        hits: list[ScoredPassage] = []
        if collection is not None and top_k > 0 and owners(owner_id):
            where = conditions(
                owner_id, tags=tags, match_all_tags=match_all_tags, start=start, end=end
            )
            # The engine orders equal scores differently for each limit/offset, so paging by
            # offset would repeat or skip tied passages. Fetch from the top instead, widening
            # while the page's last hit ties the next one, and order ties by id.
            start_at = max(offset, 0)
            limit = start_at + top_k + 1
            while True:
                request = qe.QueryRequest(
                    limit=limit,
                    offset=0,
                    query=qe.Query.Nearest(list(vector)),
                    filter=_filter(where),
                    with_payload=True,
                    with_vector=False,
                )
                found = [
                    ScoredPassage(passage=from_payload(point.payload), score=float(point.score))
                    for point in collection.shard.query(request)
                ]
                full = len(found) >= limit
                if not full or found[-1].score != found[start_at + top_k - 1].score:
                    break
                limit *= 2
            found.sort(key=lambda hit: (-hit.score, hit.passage.id))
            hits = found[start_at : start_at + top_k]
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
        anchor = None
        if after is not None:
            anchor = await self.get(owner_id, after)
            if anchor is None:
                named = ", ".join(repr(owner) for owner in owners(owner_id))
                raise PassageNotFoundError(f"owner {named} has no passage {after!r}")
        where = conditions(owner_id, tags=tags, match_all_tags=match_all_tags)
        return await page(
            self._all(), where, limit=limit, offset=offset, anchor=anchor, ascending=ascending
        )

    async def get(self, owner_id: str | Sequence[str], passage_id: str) -> Passage | None:
        """See :meth:`storage.passages.PassageStore.get`."""
        for collection in self._all():
            found = collection.retrieve(owner_id, [passage_id])
            if found:
                return found[0]
        return None

    async def delete(self, owner_id: str, passage_ids: Sequence[str]) -> int:
        """See :meth:`storage.passages.PassageStore.delete`."""
        deleted = 0
        for collection in self._all():
            found = collection.retrieve(owner_id, list(dict.fromkeys(passage_ids)))
            if found:
                ids: list[Any] = [point_id(passage.id) for passage in found]
                collection.shard.update(qe.UpdateOperation.delete_points(ids))
                deleted += len(found)
        return deleted

    async def delete_owner(self, owner_id: str) -> int:
        """See :meth:`storage.passages.PassageStore.delete_owner`."""
        deleted = 0
        where = Conditions(owner_id=owner_id)
        for collection in self._all():
            present = await collection.count_where(where)
            if present:
                collection.shard.update(qe.UpdateOperation.delete_points_by_filter(_filter(where)))
                deleted += present
        return deleted

    async def count(self, owner_id: str) -> int:
        """See :meth:`storage.passages.PassageStore.count`."""
        where = Conditions(owner_id=owner_id)
        return sum([await collection.count_where(where) for collection in self._all()])

    async def tags(self, owner_id: str) -> builtins.list[str]:
        """See :meth:`storage.passages.PassageStore.tags`."""
        found: set[str] = set()
        request = qe.FacetRequest(
            TAGS, limit=_MAX_TAGS, exact=True, filter=_filter(Conditions(owner_id=owner_id))
        )
        for collection in self._all():
            found.update(str(hit.value) for hit in collection.shard.facet(request).hits)
        return sorted(found)

    async def optimize(self) -> bool:
        """Build HNSW graphs, merge segments and vacuum deletions in every shard.

        Blocks the whole process (the engine keeps the GIL) for about a minute per 100k
        points on two cores: run it from maintenance, not while agents are served.

        Returns:
            ``True`` if any shard changed.
        """
        changed = False
        for collection in self._all():
            changed = collection.shard.optimize() or changed
            await anyio.lowlevel.checkpoint()
        return changed

    async def aclose(self) -> None:
        """Flush and close every shard, then release the folder's lock (idempotent)."""
        collections, self._collections = list(self._collections.values()), {}
        lock, self._lock = self._lock, None
        # An ExitStack runs every close (and the unlock, last) even if a flush fails.
        with contextlib.ExitStack() as stack:
            if lock is not None:
                stack.callback(lock.close)  # closing the descriptor releases the flock
            for collection in collections:
                stack.callback(collection.shard.close)
            for collection in collections:
                collection.shard.flush()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._lock is None else "open"
        return f"EdgePassageStore({os.fspath(self._root)!r}, {state})"
