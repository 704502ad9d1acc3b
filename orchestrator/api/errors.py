"""How errors reach clients: always JSON with ``detail``, never a 500 for bad input.

::

    ApiError                 4xx raised by handlers: status, field and message
    storage.NotFound         -> 404 {"detail": "..."}
    storage.Conflict         -> 409
    storage.InvalidRecord    -> 400
    ToolSchemaError          -> 400 (``source_code``)
    ValidationException      -> 422 {"detail": [{"loc": [...], "msg": ..., "type": ...}]}
    JSON nested too deeply   -> 400 (the decoder's RecursionError)
    other HTTPException      -> its status with {"detail": ...} (a body that is not JSON: 400
                                saying so, with the decoder's words)
    Redis fails              -> 503 + Retry-After, naming the Redis URL (an outage: try again)
    embedding endpoint fails -> 502; archival owner or local model missing -> 503
    Qdrant server fails      -> 502, naming the server's URL (MEMGRID_QDRANT_URL)
    any other UserError      -> 400; any other RuntimeFailure -> 503 (storage.errors' kinds)
    anything else            -> 500 {"detail": "internal error"} (logged with its traceback)

422 bodies use the shape of FastAPI's ``HTTPValidationError``, as Letta's server answers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from redis.exceptions import RedisError

from agents.archival_rpc import ArchivalUnavailable
from agents.tools.schema import ToolSchemaError
from bus import describe, is_transient
from storage.embeddings.errors import (
    EmbeddingDimensionUnknown,
    EmbeddingEndpointError,
    EmbeddingModelMissing,
    EmbeddingNotConfigured,
)
from storage.errors import Conflict, InvalidRecord, NotFound, RuntimeFailure, UserError
from storage.passages.protocol import PassageDimensionError, PassageServerError

__all__ = ("RETRY_AFTER_S", "ApiError", "exception_handlers", "redis_location")

log = structlog.get_logger("memgrid.api")

_MISSING = re.compile(r"missing required field `([^`]+)`")
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


class ApiError(UserError):
    """A client mistake: ``status`` (4xx), the offending ``field`` and what to do."""

    def __init__(
        self, status: int, message: str, *, field: str | None = None, source: str = "body"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.source = source
        self.message = message


def _json(
    status: int, body: Mapping[str, Any], headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        content=dict(body), status_code=status, media_type=MediaType.JSON, headers=headers
    )


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    if exc.status == 422 and exc.field is not None:
        loc = [exc.source, *exc.field.split(".")]
        return _json(422, {"detail": [{"loc": loc, "msg": exc.message, "type": "value_error"}]})
    detail = f"{exc.field}: {exc.message}" if exc.field else exc.message
    return _json(exc.status, {"detail": detail})


def _not_found(_: Request[Any, Any, Any], exc: NotFound) -> Response[Any]:
    return _json(404, {"detail": str(exc)})


def _conflict(_: Request[Any, Any, Any], exc: Conflict) -> Response[Any]:
    return _json(409, {"detail": str(exc)})


def _invalid(_: Request[Any, Any, Any], exc: UserError) -> Response[Any]:
    return _json(400, {"detail": str(exc)})


def _bad_tool(_: Request[Any, Any, Any], exc: ToolSchemaError) -> Response[Any]:
    return _json(400, {"detail": f"source_code: {exc}"})


def _loc(source: str | None, key: str | None, message: str) -> tuple[list[str | int], str]:
    """FastAPI's ``loc`` from Litestar's ``source``/``key`` and msgspec's ``- at `$.a[0].b```."""
    match = _AT.match(message)
    msg, path = (match.group("msg"), match.group("path")) if match else (message, None)
    loc: list[str | int] = [source or "body"]
    where = path if path is not None else ("" if key == "data" else key or "")
    for part in re.split(r"[.\[\]]+", where):
        if part:
            loc.append(int(part) if part.isdigit() else part)
    missing = _MISSING.search(msg)
    if missing:  # msgspec names a missing field in the message, not in the path
        loc.append(missing.group(1))
    return loc, msg


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors: list[dict[str, Any]] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not isinstance(item, dict):
            continue
        loc, msg = _loc(item.get("source"), item.get("key"), str(item.get("message", "")))
        errors.append({"loc": loc, "msg": msg, "type": "value_error"})
    if not errors:
        loc, msg = _loc("body", None, str(exc.detail))
        errors.append({"loc": loc, "msg": msg, "type": "value_error"})
    return _json(422, {"detail": errors})


def _upstream(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _json(502, {"detail": f"{type(exc).__name__}: {exc}"})


def _dimension(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # An owner's passages of one size met a vector of another: a state the client can fix.
    return _json(409, {"detail": str(exc)})


def _unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _json(503, {"detail": str(exc)})


RETRY_AFTER_S = 1
_outage_logged_at = 0.0
_OUTAGE_LOG_EVERY_S = 30.0


def redis_location(request: Request[Any, Any, Any]) -> str:
    """The Redis this API process uses, as a URL without credentials."""
    api = getattr(request.app.state, "api", None)
    if api is None:
        return "(not connected yet)"
    return describe(api.rt.redis)


def _redis_down(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    global _outage_logged_at
    where = redis_location(request)
    if is_transient(exc):
        # One log line per outage (or per half minute of one), not one per request.
        now = time.monotonic()
        if now - _outage_logged_at > _OUTAGE_LOG_EVERY_S:
            _outage_logged_at = now
            log.warning("api_redis_unavailable", redis=where, error=repr(exc))
        detail = (
            f"Redis at {where} is unavailable ({type(exc).__name__}: {exc}); memgrid "
            f"reconnects by itself: retry in {RETRY_AFTER_S}s"
        )
    else:
        log.warning("api_redis_error", path=request.url.path, redis=where, error=repr(exc))
        detail = f"Redis at {where} refused the request ({type(exc).__name__}: {exc}); try again"
    return _json(503, {"detail": detail}, headers={"Retry-After": str(RETRY_AFTER_S)})


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    detail = exc.detail
    limit = request.app.request_max_body_size
    if isinstance(exc.__cause__, SerializationException):  # the body did not decode
        detail = (
            f"the request body is not valid JSON ({detail}); send one JSON object with "
            "Content-Type: application/json"
        )
    elif exc.status_code == 413 and limit is not None:
        # Litestar's own refusal of a body over the limit: say which limit and its setting.
        detail = (
            f"the request body is larger than the limit of {limit} bytes "
            "(MEMGRID_API_MAX_BODY_BYTES); send less, or raise the server's limit"
        )
    return _json(exc.status_code, {"detail": detail}, headers=exc.headers)


def _too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    # msgspec's decoder stops a hostile body (thousands of nested arrays) with RecursionError
    # before Litestar validates anything: the client's mistake, not ours. Other recursion is.
    if "deserializing" not in str(exc):
        return _internal(request, exc)
    return _json(
        400,
        {"detail": "the JSON body is nested too deeply to decode; send at most a few levels"},
    )


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("api_internal_error", path=request.url.path, error=repr(exc), exc_info=exc)
    return _json(500, {"detail": "internal error; see the server's log"})


exception_handlers: dict[type[Exception] | int, Callable[..., Response[Any]]] = {
    ApiError: _api_error,
    NotFound: _not_found,
    Conflict: _conflict,
    InvalidRecord: _invalid,
    ToolSchemaError: _bad_tool,
    ValidationException: _validation,
    EmbeddingEndpointError: _upstream,
    PassageDimensionError: _dimension,
    PassageServerError: _upstream,
    EmbeddingDimensionUnknown: _upstream,
    EmbeddingModelMissing: _unavailable,
    EmbeddingNotConfigured: _unavailable,
    ArchivalUnavailable: _unavailable,
    RedisError: _redis_down,
    UserError: _invalid,
    RuntimeFailure: _unavailable,
    HTTPException: _http,
    RecursionError: _too_deep,
    Exception: _internal,
}
