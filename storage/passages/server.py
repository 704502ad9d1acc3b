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
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from qdrant_client import AsyncQdrantClient, models

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
from storage.passages._server_errors import server_errors
from storage.passages.protocol import PassageStoreClosedError, ScoredPassage
from storage.records import Passage

__all__ = ("INSERT_CHUNK", "ServerPassageStore")

_MAX_TAGS = 100_000


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

    async def retrieve(self, passage_ids: Sequence[str]) -> list[Passage]:
        ids: list[models.ExtendedPointId] = [str(point_id(pid)) for pid in passage_ids]
        records = await self.client.retrieve(
            self.name, ids=ids, with_payload=True, with_vectors=False
        )
        return [from_payload(record.payload) for record in records]

    async def upsert(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        points = [
            models.PointStruct(
                id=str(point_id(passage.id)), vector=list(vector), payload=to_payload(passage)
            )
            for passage, vector in zip(passages, vectors, strict=True)
        ]
        await self.client.upsert(self.name, points=points, wait=True)

    async def nearest(
        self, where: Conditions, vector: Sequence[float], top_k: int, offset: int
    ) -> list[ScoredPassage]:
        response = await self.client.query_points(
            self.name,
            query=list(vector),
            query_filter=_filter(where),
            limit=top_k,
            offset=offset,
            with_payload=True,
            with_vectors=False,
        )
        return [
            ScoredPassage(passage=from_payload(point.payload), score=float(point.score))
            for point in response.points
        ]

    async def delete_ids(self, passage_ids: Sequence[str]) -> None:
        ids: list[models.ExtendedPointId] = [str(point_id(pid)) for pid in passage_ids]
        selector = models.PointIdsList(points=ids)
        await self.client.delete(self.name, points_selector=selector, wait=True)

    async def delete_where(self, where: Conditions) -> None:
        selector = models.FilterSelector(filter=_filter(where))
        await self.client.delete(self.name, points_selector=selector, wait=True)

    async def tag_values(self, where: Conditions) -> list[str]:
        response = await self.client.facet(
            self.name, key=TAGS, facet_filter=_filter(where), limit=_MAX_TAGS, exact=True
        )
        return [str(hit.value) for hit in response.hits]


class ServerPassageStore(CollectionStore):
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

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return server_errors(self.url)

    def _check_open(self) -> None:
        if self._closed:
            raise PassageStoreClosedError("the passage store is closed: open a new one")

    async def _all(self) -> builtins.list[Collection]:
        self._check_open()
        response = await self._client.get_collections()
        dimensions = sorted(
            dimension
            for description in response.collections
            if (dimension := collection_dimension(description.name)) is not None
        )
        self._known.update(dimensions)
        return [_Collection(self._client, dimension) for dimension in dimensions]

    async def _existing(self, dimension: int) -> Collection | None:
        self._check_open()
        name = collection_name(dimension)
        if dimension in self._known or await self._client.collection_exists(name):
            self._known.add(dimension)
            return _Collection(self._client, dimension)
        return None

    async def _create(self, dimension: int) -> Collection:
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

    async def optimize(self) -> bool:
        """A no-op: the server optimizes in the background. Returns ``False``."""
        self._check_open()
        return False

    async def aclose(self) -> None:
        """Close the client (idempotent)."""
        if not self._closed:
            self._closed = True
            await self._client.close()
