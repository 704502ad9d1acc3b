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
from typing import IO, Any

import anyio.lowlevel
import qdrant_edge as qe

from storage.passages._base import INSERT_CHUNK, Collection, CollectionStore
from storage.passages._common import (
    CREATED_AT,
    OWNER,
    TAGS,
    Conditions,
    collection_dimension,
    collection_name,
    from_payload,
    point_id,
    to_payload,
)
from storage.passages.protocol import (
    PassageStoreClosedError,
    PassageStoreLockedError,
    ScoredPassage,
)
from storage.records import Passage

__all__ = ("INSERT_CHUNK", "EdgePassageStore")

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

    async def retrieve(self, passage_ids: Sequence[str]) -> list[Passage]:
        ids: list[Any] = [point_id(passage_id) for passage_id in passage_ids]
        records = self.shard.retrieve(ids, with_payload=True, with_vector=False)
        return [from_payload(record.payload) for record in records]

    async def upsert(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        points = [
            qe.Point(point_id(passage.id), list(vector), to_payload(passage))
            for passage, vector in zip(passages, vectors, strict=True)
        ]
        self.shard.update(qe.UpdateOperation.upsert_points(points))

    async def nearest(
        self, where: Conditions, vector: Sequence[float], top_k: int, offset: int
    ) -> list[ScoredPassage]:
        # The engine orders equal scores differently for each limit/offset, so paging by
        # offset would repeat or skip tied passages. Fetch from the top instead, widening
        # while the page's last hit ties the next one, and order ties by id.
        limit = offset + top_k + 1
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
                for point in self.shard.query(request)
            ]
            full = len(found) >= limit
            if not full or found[-1].score != found[offset + top_k - 1].score:
                break
            limit *= 2
        found.sort(key=lambda hit: (-hit.score, hit.passage.id))
        return found[offset : offset + top_k]

    async def delete_ids(self, passage_ids: Sequence[str]) -> None:
        ids: list[Any] = [point_id(passage_id) for passage_id in passage_ids]
        self.shard.update(qe.UpdateOperation.delete_points(ids))

    async def delete_where(self, where: Conditions) -> None:
        self.shard.update(qe.UpdateOperation.delete_points_by_filter(_filter(where)))

    async def tag_values(self, where: Conditions) -> list[str]:
        request = qe.FacetRequest(TAGS, limit=_MAX_TAGS, exact=True, filter=_filter(where))
        return [str(hit.value) for hit in self.shard.facet(request).hits]


class EdgePassageStore(CollectionStore):
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
        self._check_open()
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

    def _check_open(self) -> None:
        if self._lock is None:
            raise PassageStoreClosedError("the passage store is closed: open a new one")

    def _loaded(self) -> builtins.list[_Collection]:
        self._check_open()
        found = (self._collection(dimension) for dimension in list(self._dimensions))
        return [collection for collection in found if collection is not None]

    async def _all(self) -> builtins.list[Collection]:
        return list(self._loaded())

    async def _existing(self, dimension: int) -> Collection | None:
        return self._collection(dimension)

    async def _create(self, dimension: int) -> Collection:
        created = self._collection(dimension, create=True)
        assert created is not None  # create=True
        return created

    async def optimize(self) -> bool:
        """Build HNSW graphs, merge segments and vacuum deletions in every shard.

        Blocks the whole process (the engine keeps the GIL) for about a minute per 100k
        points on two cores: run it from maintenance, not while agents are served.

        Returns:
            ``True`` if any shard changed.
        """
        changed = False
        for collection in self._loaded():
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

    def __repr__(self) -> str:
        state = "closed" if self._lock is None else "open"
        return f"EdgePassageStore({os.fspath(self._root)!r}, {state})"
