"""Errors raised by the bus.

BusError
├── RedisUnavailable      the configured or local Redis cannot be reached or started
├── LeaseLost             a fencing token no longer matches: this worker must stop writing
└── CommitRefused         a fenced commit holds a command that would fail: nothing was written
"""

from __future__ import annotations

__all__ = ("BusError", "CommitRefused", "LeaseLost", "RedisUnavailable")


class BusError(Exception):
    """Base class of every error raised by :mod:`bus`."""


class RedisUnavailable(BusError):
    """Redis could not be reached or started; the message says what to set or fix."""


class LeaseLost(BusError):
    """The agent's lease moved to another worker; the current step must not commit."""


class CommitRefused(BusError):
    """A fenced commit was refused before any write: one of its commands would have failed
    inside the script (a key of another type, a command too long to split). A bug or corrupt
    data, not a transient failure: nothing of the commit was written."""
