"""Reading an OpenAI-compatible endpoint's failures: what it said, whether the prompt was too
long, how long it asks us to wait, and whether anybody listens at all."""

from __future__ import annotations

import math
import re
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import openai

__all__ = ("is_context_error", "message_of", "retry_after", "unreachable")

_CONTEXT_PATTERNS = re.compile(
    r"context[_ ]length|maximum context|context window|too many tokens|prompt is too long|"
    r"reduce the length|input is too long",
    re.IGNORECASE,
)


def retry_after(exc: BaseException) -> float | None:
    """The server's ``retry-after-ms`` or ``Retry-After`` in seconds; ``None`` when absent or
    nonsensical (negative, NaN, infinite, unparsable), so that the backoff applies instead."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if not value:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue  # Retry-After may be an HTTP date: the backoff is as good
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def unreachable(exc: BaseException) -> str | None:
    """Why no connection could be made (refused, unknown host), if that is what ``exc`` says;
    ``None`` for anything else (a timeout or a connection cut mid-answer is worth retrying)."""
    import httpx2

    cause: BaseException | None = exc
    for _depth in range(8):
        if cause is None:
            return None
        if isinstance(cause, httpx2.TimeoutException | TimeoutError) and not _refused_below(cause):
            return None
        if isinstance(cause, _connect_failures()):
            reason = str(cause) or type(cause).__name__
            inner: BaseException | None = cause
            for _inner_depth in range(8):  # the deepest OS error says most: refused, no host
                if isinstance(inner, BaseExceptionGroup) and inner.exceptions:
                    inner = inner.exceptions[0]
                if inner is None:
                    break
                if isinstance(inner, OSError) and str(inner):
                    reason = str(inner)
                inner = inner.__cause__ or inner.__context__
            return reason
        cause = cause.__cause__ or cause.__context__
    return None


def _connect_failures() -> tuple[type[BaseException], ...]:
    """The errors that say no connection could be made: refused, no such host, TLS refused,
    no route (httpx2's ``ConnectError``; aiohttp's ``ClientConnectorError``)."""
    import aiohttp
    import httpx2

    return (
        httpx2.ConnectError,
        aiohttp.ClientConnectorError,
        ConnectionRefusedError,
        socket.gaierror,
    )


def _refused_below(exc: BaseException) -> bool:
    """Whether the explicit causes of a timeout end in a connect failure: the SDK's aiohttp
    transport reports aiohttp's connect errors (refused, no such host, a certificate refused)
    as ``httpx2.ConnectTimeout`` raised from them, though nothing waited."""
    cause = exc.__cause__
    for _depth in range(8):
        if cause is None:
            return False
        if isinstance(cause, _connect_failures()):
            return True
        cause = cause.__cause__
    return False


def message_of(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(exc)


def is_context_error(exc: openai.APIStatusError) -> bool:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("code") == "context_length_exceeded":
            return True
    return bool(_CONTEXT_PATTERNS.search(message_of(exc)))
