"""structlog set-up, called once at process entry: pretty on a terminal, JSON otherwise."""

from __future__ import annotations

import logging
import os
import sys

import structlog

__all__ = ("configure_logging",)


class _StderrLogger:
    """Writes to whatever ``sys.stderr`` is at the time of the call (test capture swaps it)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _stderr_logger(*args: object) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(level: str | None = None, *, json: bool | None = None) -> None:
    """Configure structlog and stdlib logging to stderr.

    Args:
        level: log level name; default ``$MEMGRID_LOG_LEVEL`` or ``WARNING``.
        json: force JSON lines (``True``) or pretty output (``False``); default: pretty when
            stderr is a terminal.
    """
    name = (level or os.environ.get("MEMGRID_LOG_LEVEL") or "WARNING").upper()
    numeric = logging.getLevelName(name)
    if not isinstance(numeric, int):
        raise SystemExit(
            f"MEMGRID_LOG_LEVEL={name!r} is not a log level; use DEBUG, INFO, WARNING or ERROR"
        )
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    # Third-party chatter stays at WARNING unless asked for.
    for noisy in ("httpx", "httpcore", "httpx2", "httpcore2", "openai", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
