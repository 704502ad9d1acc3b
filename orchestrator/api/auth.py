"""Bearer-token auth: with ``MEMGRID_API_KEY`` set, every route but the public ones needs it.

Letta's clients send ``Authorization: Bearer <token>`` when given ``token=``/``api_key=``.
Routes opt out with ``opt={"public": True}`` (health).
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

__all__ = ("require_api_key",)


def require_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Litestar guard: refuse (401) a request without the configured bearer token."""
    key: str | None = connection.app.state.api_key
    if not key or handler.opt.get("public"):
        return
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise NotAuthorizedException(
            "missing or wrong API key: send 'Authorization: Bearer <MEMGRID_API_KEY>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
