"""Errors raised by the bus, under memgrid's root (:mod:`storage.errors`).

BusError (MemgridError)
├── RedisUnavailable      RuntimeFailure  the configured or local Redis cannot be reached
├── LeaseLost             ControlSignal   a fencing token no longer matches: stop writing
└── CommitRefused         RuntimeFailure  a fenced commit would fail: nothing was written
"""

from __future__ import annotations

from storage.errors import ControlSignal, MemgridError, RuntimeFailure

__all__ = ("BusError", "CommitRefused", "LeaseLost", "RedisUnavailable")


class BusError(MemgridError):
    """Base class of every error raised by :mod:`bus`."""


class RedisUnavailable(BusError, RuntimeFailure):
    """Redis could not be reached or started; the message says what to set or fix."""


class LeaseLost(BusError, ControlSignal):
    """The agent's lease moved to another worker; the current step must not commit."""


class CommitRefused(BusError, RuntimeFailure):
    """A fenced commit was refused before any write: one of its commands would have failed
    inside the script (a key of another type, a command too long to split). A bug or corrupt
    data, not a transient failure: nothing of the commit was written."""
