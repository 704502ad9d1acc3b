"""The page at ``/`` and its static assets, with a policy that keeps them on this host."""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get
from litestar.response import Response as AnyResponse
from litestar.router import Router
from litestar.static_files import create_static_files_router

__all__ = ("CSP", "STATIC", "index", "static_assets")

STATIC = Path(__file__).parent / "static"

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
"""Only this origin: nothing loads from another host, and no inline script runs (agent data
that slipped into the page as markup could not execute)."""

_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@get("/", include_in_schema=False, opt={"public": True}, media_type="text/html")
async def index() -> Response[bytes]:
    """The dashboard's page: a shell that the modules fill; it holds no data."""
    return Response((STATIC / "index.html").read_bytes(), headers=_HEADERS)


async def _secure(response: AnyResponse) -> AnyResponse:  # type: ignore[type-arg]
    response.headers.update(_HEADERS)
    return response


def static_assets() -> Router:
    """The page's modules and style sheet under ``/dashboard/static/``."""
    return create_static_files_router(
        path="/dashboard/static",
        directories=[STATIC],
        include_in_schema=False,
        opt={"public": True},
        name="dashboard_static",
        after_request=_secure,
    )
