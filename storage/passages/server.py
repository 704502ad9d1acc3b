"""The server engine: a Qdrant server or cluster through ``qdrant_client.AsyncQdrantClient``.

``MEMGRID_QDRANT_URL`` selects it. For tests it also opens qdrant-client's local mode
(``path=`` or ``location=":memory:"``), which answers the server's API in pure Python.

One collection per vector dimension (``passages_384``...), created on first insert with
payload indexes on ``owner_id``, ``tags`` (keyword) and ``created_at`` (float: range filters
and ordering). ``owner_id`` is declared a tenant index (``is_tenant=True``, Qdrant 1.11+), as
Qdrant's multitenancy guide advises: the server keeps each owner's points together, and every
query filters on it. Agents and sources are both owners (a source's passages are owned by its
id), so that one index serves both; ``source_id`` and ``file_id`` are only filtered within
one owner's passages, and are not indexed. Local mode ignores payload indexes (and warns about
them), so they are created only against a server. Many processes share a server, so the
list of collections is read from it on every call that spans collections (one cheap round
trip) rather than cached. A server's failures become :class:`PassageServerError` naming its
URL (``_server_errors``); the API answers them with a 502.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, Self, TypeVar

from qdrant_client import AsyncQdrantClient, models

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
from storage.passages._server_errors import server_errors
from storage.passages.protocol import (
    PassageNotFoundError,
    PassageStoreClosedError,
    ScoredPassage,
    TimeBound,
)
from storage.records import Passage

__all__ = ("INSERT_CHUNK", "ServerPassageStore")

INSERT_CHUNK = 256
"""Points per upsert request."""

_MAX_TAGS = 100_000


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _reported(
    method: Callable[Concatenate[ServerPassageStore, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[ServerPassageStore, _P], Coroutine[Any, Any, _T]]:
    """Run a public method inside :func:`server_errors`: a server's failure names the server."""

    async def reported(self: ServerPassageStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        with server_errors(self.url):
            return await method(self, *args, **kwargs)

    functools.update_wrapper(reported, method)  # its name and docstring
    return reported


def _filter(where: Conditions) -> models.Filter:
    owner: models.Match = (
        models.MatchValue(value=where.owner_id)
        if isinstance(where.owner_id, str)
        else models.MatchAny(any=list(where.owner_id))
    )
    must: list[models.Condition] = [models.FieldCondition(key=OWNER, match=owner)]
    if where.tags and where.match_all_tags:
        must += [
            models.FieldCondition(key=TAGS, match=models.MatchValue(value=tag))
            for tag in where.tags
        ]
    elif where.tags:
        must.append(models.FieldCondition(key=TAGS, match=models.MatchAny(any=list(where.tags))))
    if where.gte is not None or where.lte is not None:
        bounds = models.Range(gte=where.gte, lte=where.lte)
        must.append(models.FieldCondition(key=CREATED_AT, range=bounds))
    return models.Filter(must=must)


class _Collection:
    """One collection (one dimension); implements the paging primitives of ``_common``."""

    def __init__(self, client: AsyncQdrantClient, dimension: int) -> None:
        self.client = client
        self.dimension = dimension
        self.name = collection_name(dimension)

    async def ordered(self, where: Conditions, limit: int, ascending: bool) -> list[Passage]:
        direction = models.Direction.ASC if ascending else models.Direction.DESC
        records, _ = await self.client.scroll(
            self.name,
            scroll_filter=_filter(where),
            limit=limit,
            order_by=models.OrderBy(key=CREATED_AT, direction=direction),
            with_payload=True,
            with_vectors=False,
        )
        return [from_payload(record.payload) for record in records]

    async def count_where(self, where: Conditions) -> int:
        result = await self.client.count(self.name, count_filter=_filter(where), exact=True)
        return result.count

    async def scan(self, where: Conditions, limit: int) -> list[Passage]:
        records, _ = await self.client.scroll(
            self.name,
            scroll_filter=_filter(where),
            limit=limit,
            with_payload=True,
            with_vectors=False,
        )
        return [from_payload(record.payload) for record in records]

    async def retrieve(
        self, owner_id: str | Sequence[str], passage_ids: Sequence[str]
    ) -> list[Passage]:
        ids: list[models.ExtendedPointId] = [str(point_id(pid)) for pid in passage_ids]
        records = await self.client.retrieve(
            self.name, ids=ids, with_payload=True, with_vectors=False
        )
        found = (from_payload(record.payload) for record in records)
        named = owners(owner_id)
        return [passage for passage in found if passage.owner_id in named]


class ServerPassageStore:
    """:class:`storage.passages.PassageStore` on a Qdrant server (or qdrant-client local mode).

    Give exactly one of ``url`` (a server), ``path`` (local mode on disk, one process per
    path) or ``location=":memory:"`` (local mode in memory).

    Args:
        url: The server, e.g. ``http://localhost:6333`` (``MEMGRID_QDRANT_URL``).
        api_key: The server's API key (``MEMGRID_QDRANT_API_KEY``).
        path: A folder for local mode.
        location: ``":memory:"`` for local mode without persistence.
        timeout: Request timeout in seconds against a server.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        path: Path | str | None = None,
        location: Literal[":memory:"] | None = None,
        timeout: int | None = None,
    ) -> None:
        options = (("url", url), ("path", path), ("location", location))
        given = [name for name, value in options if value]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of url= (a Qdrant server), path= or location=':memory:' "
                f"(qdrant-client local mode); got {given or 'none'}"
            )
        if url is not None:
            # The version check runs in a fire-and-forget thread that warns from there.
            self._client = AsyncQdrantClient(
                url=url, api_key=api_key, timeout=timeout, check_compatibility=False
            )
        elif path is not None:
            self._client = AsyncQdrantClient(path=str(path))
        else:
            self._client = AsyncQdrantClient(location=":memory:")
        self.url = url
        """The server's URL (``None`` in local mode); errors name it."""
        self._indexes = url is not None  # local mode ignores payload indexes, and warns
        self._closed = False
        self._known: set[int] = set()

    def _check_open(self) -> None:
        if self._closed:
            raise PassageStoreClosedError("the passage store is closed: open a new one")

    async def _all(self) -> list[_Collection]:
        self._check_open()
        response = await self._client.get_collections()
        dimensions = sorted(
            dimension
            for description in response.collections
            if (dimension := collection_dimension(description.name)) is not None
        )
        self._known.update(dimensions)
        return [_Collection(self._client, dimension) for dimension in dimensions]

    async def _existing(self, dimension: int) -> _Collection | None:
        self._check_open()
        name = collection_name(dimension)
        if dimension in self._known or await self._client.collection_exists(name):
            self._known.add(dimension)
            return _Collection(self._client, dimension)
        return None

    async def _create(self, dimension: int) -> _Collection:
        found = await self._existing(dimension)
        if found is not None:
            return found
        name = collection_name(dimension)
        vectors = models.VectorParams(size=dimension, distance=models.Distance.COSINE)
        try:
            await self._client.create_collection(name, vectors_config=vectors)
        except Exception:
            # Another process may have created it meanwhile; anything else is real.
            if not await self._client.collection_exists(name):
                raise
        if self._indexes:
            owner = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
            await self._client.create_payload_index(name, OWNER, owner, wait=True)
            keyword = models.PayloadSchemaType.KEYWORD
            await self._client.create_payload_index(name, TAGS, keyword, wait=True)
            number = models.PayloadSchemaType.FLOAT
            await self._client.create_payload_index(name, CREATED_AT, number, wait=True)
        self._known.add(dimension)
        return _Collection(self._client, dimension)

    async def _check_owners(self, owners: set[str], dimension: int) -> None:
        for other in await self._all():
            if other.dimension == dimension:
                continue
            for owner_id in sorted(owners):
                if await other.count_where(Conditions(owner_id=owner_id)):
                    raise dimension_error(owner_id, other.dimension, dimension)

    @_reported
    async def insert(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        """See :meth:`storage.passages.PassageStore.insert`."""
        self._check_open()
        dimension = check_batch(passages, vectors)
        if dimension is None:
            return
        await self._check_owners({passage.owner_id for passage in passages}, dimension)
        collection = await self._create(dimension)
        for start in range(0, len(passages), INSERT_CHUNK):
            points = [
                models.PointStruct(
                    id=str(point_id(passage.id)), vector=list(vector), payload=to_payload(passage)
                )
                for passage, vector in zip(
                    passages[start : start + INSERT_CHUNK],
                    vectors[start : start + INSERT_CHUNK],
                    strict=True,
                )
            ]
            await self._client.upsert(collection.name, points=points, wait=True)

    @_reported
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
        collection = await self._existing(len(vector))
        hits: list[ScoredPassage] = []
        if collection is not None and top_k > 0 and owners(owner_id):
            where = conditions(
                owner_id, tags=tags, match_all_tags=match_all_tags, start=start, end=end
            )
            response = await self._client.query_points(
                collection.name,
                query=list(vector),
                query_filter=_filter(where),
                limit=top_k,
                offset=max(offset, 0),
                with_payload=True,
                with_vectors=False,
            )
            hits = [
                ScoredPassage(passage=from_payload(point.payload), score=float(point.score))
                for point in response.points
            ]
        if not hits:
            await self._check_owners(set(owners(owner_id)), len(vector))
        return hits

    @_reported
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
            await self._all(),
            where,
            limit=limit,
            offset=offset,
            anchor=anchor,
            ascending=ascending,
        )

    @_reported
    async def get(self, owner_id: str | Sequence[str], passage_id: str) -> Passage | None:
        """See :meth:`storage.passages.PassageStore.get`."""
        for collection in await self._all():
            found = await collection.retrieve(owner_id, [passage_id])
            if found:
                return found[0]
        return None

    @_reported
    async def delete(self, owner_id: str, passage_ids: Sequence[str]) -> int:
        """See :meth:`storage.passages.PassageStore.delete`."""
        deleted = 0
        for collection in await self._all():
            found = await collection.retrieve(owner_id, list(dict.fromkeys(passage_ids)))
            if found:
                ids: list[models.ExtendedPointId] = [str(point_id(p.id)) for p in found]
                await self._client.delete(
                    collection.name, points_selector=models.PointIdsList(points=ids), wait=True
                )
                deleted += len(found)
        return deleted

    @_reported
    async def delete_owner(self, owner_id: str) -> int:
        """See :meth:`storage.passages.PassageStore.delete_owner`."""
        deleted = 0
        where = Conditions(owner_id=owner_id)
        for collection in await self._all():
            present = await collection.count_where(where)
            if present:
                selector = models.FilterSelector(filter=_filter(where))
                await self._client.delete(collection.name, points_selector=selector, wait=True)
                deleted += present
        return deleted

    @_reported
    async def count(self, owner_id: str) -> int:
        """See :meth:`storage.passages.PassageStore.count`."""
        where = Conditions(owner_id=owner_id)
        return sum([await collection.count_where(where) for collection in await self._all()])

    @_reported
    async def tags(self, owner_id: str) -> builtins.list[str]:
        """See :meth:`storage.passages.PassageStore.tags`."""
        found: set[str] = set()
        where = _filter(Conditions(owner_id=owner_id))
        for collection in await self._all():
            response = await self._client.facet(
                collection.name, key=TAGS, facet_filter=where, limit=_MAX_TAGS, exact=True
            )
            found.update(str(hit.value) for hit in response.hits)
        return sorted(found)

    async def optimize(self) -> bool:
        """A no-op: the server optimizes in the background. Returns ``False``."""
        self._check_open()
        return False

    async def aclose(self) -> None:
        """Close the client (idempotent)."""
        if not self._closed:
            self._closed = True
            await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
