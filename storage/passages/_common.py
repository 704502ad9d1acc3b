"""What both engines share: point ids, collection names, payloads, filters, and paging.

Paging in ``created_at`` order (ties by passage id) is written once here against three
primitives that each engine provides per collection (:class:`OrderedSource`), so that the
two adapters cannot disagree on order, offsets or cursors.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC
from typing import Any, NamedTuple, Protocol

import msgspec

from storage.passages.protocol import PassageDimensionError, TimeBound
from storage.records import Passage

__all__ = (
    "Conditions",
    "OrderedSource",
    "Window",
    "check_batch",
    "collection_dimension",
    "collection_name",
    "conditions",
    "dimension_error",
    "from_payload",
    "owners",
    "page",
    "point_id",
    "sort_key",
    "to_payload",
)

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "memgrid:passage")
_COLLECTION = re.compile(r"^passages_([1-9][0-9]*)$")

OWNER = "owner_id"
TAGS = "tags"
CREATED_AT = "created_at"


def point_id(passage_id: str) -> uuid.UUID:
    """Qdrant wants UUID or integer point ids: a UUIDv5 of the passage id (kept in payload)."""
    return uuid.uuid5(_NAMESPACE, passage_id)


def collection_name(dimension: int) -> str:
    """``passages_<dimension>``: one collection per vector size."""
    return f"passages_{dimension}"


def collection_dimension(name: str) -> int | None:
    """The dimension encoded in a collection name, or ``None`` if it is not ours."""
    found = _COLLECTION.match(name)
    return int(found.group(1)) if found else None


def to_payload(passage: Passage) -> dict[str, Any]:
    """The point payload of a passage (its JSON-able fields)."""
    payload: dict[str, Any] = msgspec.to_builtins(passage)
    return payload


def from_payload(payload: dict[str, Any] | None) -> Passage:
    """The passage stored in a point payload."""
    return msgspec.convert(payload or {}, Passage)


def sort_key(passage: Passage) -> tuple[float, str]:
    """The total order of lists: ``created_at``, then id."""
    return (passage.created_at, passage.id)


def _seconds(bound: TimeBound | None) -> float | None:
    if bound is None or isinstance(bound, float | int):
        return bound
    if bound.tzinfo is None:  # naive datetimes are read as UTC, as records store UTC epochs
        bound = bound.replace(tzinfo=UTC)
    return bound.timestamp()


def owners(owner_id: str | Sequence[str]) -> tuple[str, ...]:
    """An owner, or several, as a tuple without repeats (a lone ``str`` is one owner)."""
    if isinstance(owner_id, str):
        return (owner_id,)
    return tuple(dict.fromkeys(owner_id))


class Conditions(msgspec.Struct, frozen=True, kw_only=True):
    """An engine-neutral filter: an owner (or several, matched as one ``any`` condition on
    the tenant field), tags (any/all), an inclusive ``created_at`` range."""

    owner_id: str | tuple[str, ...]
    tags: tuple[str, ...] = ()
    match_all_tags: bool = False
    gte: float | None = None
    lte: float | None = None


def conditions(
    owner_id: str | Sequence[str],
    *,
    tags: Sequence[str] | None = None,
    match_all_tags: bool = False,
    start: TimeBound | None = None,
    end: TimeBound | None = None,
) -> Conditions:
    """Build :class:`Conditions` from the arguments of the protocol's methods."""
    if isinstance(tags, str):
        tags = (tags,)  # a lone tag, not its characters
    named = owners(owner_id)
    return Conditions(
        owner_id=named[0] if len(named) == 1 else named,
        tags=tuple(dict.fromkeys(tags or ())),
        match_all_tags=match_all_tags,
        gte=_seconds(start),
        lte=_seconds(end),
    )


def check_batch(passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> int | None:
    """Validate one insert batch; returns its vector dimension (``None`` when empty)."""
    if len(passages) != len(vectors):
        raise ValueError(f"got {len(passages)} passages but {len(vectors)} vectors: pass one each")
    if not vectors:
        return None
    sizes = sorted({len(vector) for vector in vectors})
    if len(sizes) > 1 or sizes[0] == 0:
        raise PassageDimensionError(
            f"one insert takes vectors of one dimension, got dimensions {sizes}: "
            "embed the batch with one embedder"
        )
    return sizes[0]


def dimension_error(owner_id: str, have: int, got: int) -> PassageDimensionError:
    """The error for an owner whose passages are ``have``-d, handed a ``got``-d vector."""
    return PassageDimensionError(
        f"owner {owner_id!r} has {have}-dimensional passages but got a {got}-dimensional "
        "vector: embed with the model that wrote its archival memory "
        "(or delete its passages before changing the embedder)"
    )


class OrderedSource(Protocol):
    """What :func:`page` needs of one collection."""

    async def ordered(self, where: Conditions, limit: int, ascending: bool) -> list[Passage]:
        """Up to ``limit`` passages matching ``where`` in ``created_at`` order."""
        ...

    async def count_where(self, where: Conditions) -> int:
        """How many passages match ``where``."""
        ...

    async def scan(self, where: Conditions, limit: int) -> list[Passage]:
        """Up to ``limit`` passages matching ``where``, in any order."""
        ...


class Window(NamedTuple):
    """Which page of a list: ``limit`` passages after the ``offset`` first, or after the
    ``anchor`` passage when there is one, oldest or newest first."""

    limit: int
    offset: int
    anchor: Passage | None
    ascending: bool


async def page(
    sources: Sequence[OrderedSource], where: Conditions, window: Window
) -> list[Passage]:
    """One page of passages in ``(created_at, id)`` order over several collections.

    Engines order by ``created_at`` alone and leave ties in an unspecified order, so each
    source fetches enough rows and completes the group of equal ``created_at`` at the page's
    edge before the exact order is applied here.
    """
    if window.limit <= 0:
        return []
    # Engines take 64-bit (or narrower) counts: a client's 10**23 means "all", not an error.
    limit, offset = min(window.limit, _MAX_COUNT), min(max(window.offset, 0), _MAX_COUNT)
    window = window._replace(limit=limit, offset=offset)
    merged: list[Passage] = []
    for source in sources:
        merged += await _page_one(source, where, window)
    merged.sort(key=sort_key, reverse=not window.ascending)
    if window.anchor is None:
        return merged[offset : offset + limit]
    return merged[:limit]


_MAX_COUNT = 2**31 - 1
_TIE_EPSILON = 1e-6  # seconds; created_at values closer than this count as tied


async def _page_one(source: OrderedSource, where: Conditions, window: Window) -> list[Passage]:
    limit, offset, anchor, ascending = window
    if anchor is None:
        scope, need = where, offset + limit
    else:
        at = anchor.created_at
        scope = (
            msgspec.structs.replace(where, gte=at)
            if ascending
            else (msgspec.structs.replace(where, lte=at))
        )
        # Equality on a float through the engine's range filter can miss by an ulp; count
        # the anchor's neighbourhood instead (over-counting only fetches a few more rows).
        near = msgspec.structs.replace(where, gte=at - _TIE_EPSILON, lte=at + _TIE_EPSILON)
        ties = max(1, await source.count_where(near))
        need = ties + limit
    rows = await source.ordered(scope, need, ascending)
    if rows and len(rows) == need:
        edge = rows[-1].created_at
        group = msgspec.structs.replace(scope, gte=edge - _TIE_EPSILON, lte=edge + _TIE_EPSILON)
        total = await source.count_where(group)
        close = [row for row in rows if abs(row.created_at - edge) <= _TIE_EPSILON]
        if total > len(close):
            rows = [row for row in rows if abs(row.created_at - edge) > _TIE_EPSILON]
            rows += await source.scan(group, total)
            rows = list({row.id: row for row in rows}.values())
    rows.sort(key=sort_key, reverse=not ascending)
    if anchor is None:
        return rows[: offset + limit]
    mark = sort_key(anchor)
    after = [row for row in rows if (sort_key(row) > mark if ascending else sort_key(row) < mark)]
    return after[:limit]
