"""What a Qdrant server's failures become: :class:`PassageServerError` naming the server.

qdrant-client raises ``UnexpectedResponse`` (the server answered with an error status),
``ResponseHandlingException`` (it could not be reached, timed out, or sent something
unreadable) or a bare ``httpx`` error; none says which server it was, and the API would
answer them with a 500. Each public method of the server engine runs inside
:func:`server_errors`, which turns them into one error that says where and what to check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
from qdrant_client.http.exceptions import (
    ApiException,
    ResponseHandlingException,
    UnexpectedResponse,
)

from storage.passages.protocol import PassageServerError

__all__ = ("display_url", "server_errors")


def display_url(url: str) -> str:
    """``url`` without credentials, for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _describe(exc: Exception) -> str:
    if isinstance(exc, UnexpectedResponse):
        status = exc.status_code
        detail = exc.content[:200].decode(errors="replace").strip()
        if status in (401, 403):
            return (
                f"refused the request ({status} {exc.reason_phrase}): "
                "set MEMGRID_QDRANT_API_KEY to the server's API key"
            )
        return f"answered {status} {exc.reason_phrase}: {detail}"
    if isinstance(exc, ResponseHandlingException):
        exc = exc.source if isinstance(exc.source, Exception) else exc
    return (
        f"could not be reached ({type(exc).__name__}: {exc}); check that it runs and that "
        "MEMGRID_QDRANT_URL points at it"
    )


@contextlib.contextmanager
def server_errors(url: str | None) -> Iterator[None]:
    """Turn qdrant-client's errors into :class:`PassageServerError` naming ``url``.

    With ``url=None`` (qdrant-client's local mode, no server) errors pass through unchanged.
    """
    try:
        yield
    except (ApiException, httpx.HTTPError, OSError) as exc:
        if url is None:
            raise
        raise PassageServerError(f"Qdrant server at {display_url(url)} {_describe(exc)}") from exc
