"""The query parameters of list routes (``after``, ``before``, ``limit``, ``order``) as one value.

A list route asks for ``paging: Paging`` and names its provider in its decorator:
``@get("/", dependencies=ordered(50))``. The provider's own parameters are the route's query
parameters, so the OpenAPI document lists them for the route as if the handler declared them;
the default ``limit`` differs from route to route (as in Letta's API), hence one provider per
route. :func:`ordered` adds ``order`` (not given: the route's own order),
:func:`newest_first` ``order`` defaulting to ``desc``, :func:`cursors` no ``order``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery

from orchestrator.api.state import checked_limit, page

__all__ = ("Order", "PageQuery", "Paging", "cursors", "descending", "newest_first", "ordered")

T = TypeVar("T")
Order = Literal["asc", "desc"]
Providers = dict[str, Provide]


@dataclass(frozen=True)
class PageQuery:
    """Which page of a list a request asks for."""

    after: str | None = None
    before: str | None = None
    limit: int | None = None
    order: Order | None = None

    def of(self, items: Sequence[T], key: Callable[[T], str]) -> list[T]:
        """The page of ``items`` (see :func:`orchestrator.api.state.page`)."""
        return page(
            items, key, after=self.after, before=self.before, limit=self.limit, order=self.order
        )

    @property
    def count(self) -> int | None:
        """``limit`` (``None``: all); a negative one is a 422."""
        return checked_limit(self.limit)

    def size(self, default: int) -> int:
        """``limit``, or ``default`` when it was sent empty; a negative one is a 422."""
        count = self.count
        return default if count is None else count


Paging = NamedDependency[PageQuery]
"""How a list route asks for its :class:`PageQuery` (the route's provider names it ``paging``)."""


def descending(order: Order | None, ascending: bool | None) -> bool:
    """Newest first? Letta 0.16 asks with ``order``, 0.11 with ``ascending``; default yes."""
    return not (order == "asc" or (order is None and ascending))


def cursors(limit: int | None = None) -> Providers:
    """The ``paging`` of a route with ``after``, ``before`` and ``limit`` (default ``limit``)."""
    default = limit

    async def provide(
        after: FromQuery[str | None] = None,
        before: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = default,
    ) -> PageQuery:
        return PageQuery(after=after, before=before, limit=limit)

    return {"paging": Provide(provide)}


async def _ordered(unordered: Paging, order: FromQuery[Order | None] = None) -> PageQuery:
    return replace(unordered, order=order)


async def _newest_first(unordered: Paging, order: FromQuery[Order] = "desc") -> PageQuery:
    return replace(unordered, order=order)


def ordered(limit: int | None = None) -> Providers:
    """:func:`cursors` and then ``order`` (``asc`` or ``desc``; not given: the route's own)."""
    return {"unordered": cursors(limit)["paging"], "paging": Provide(_ordered)}


def newest_first(limit: int | None = None) -> Providers:
    """:func:`cursors` and then ``order``, ``desc`` unless the request says ``asc``."""
    return {"unordered": cursors(limit)["paging"], "paging": Provide(_newest_first)}
