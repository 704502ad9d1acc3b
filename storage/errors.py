"""Errors raised by storage.

StorageError
├── NotFound            an id or name that does not exist
├── Conflict            a unique name taken, or a version that moved under a write
├── InvalidRecord       a record that breaks a rule (limit, read-only, empty label...)
└── InvalidSetting      an environment variable whose value cannot be used
"""

from __future__ import annotations

__all__ = (
    "Conflict",
    "InvalidRecord",
    "InvalidSetting",
    "NotFound",
    "StaleWriter",
    "StorageError",
)


class StorageError(Exception):
    """Base class of every error raised by :mod:`storage`."""


class NotFound(StorageError):
    """The record does not exist; the message names what was looked up."""


class Conflict(StorageError):
    """A uniqueness or version conflict; the message says which."""


class StaleWriter(Conflict):
    """A fenced write from a worker that lost the agent's lease; nothing was written."""


class InvalidRecord(StorageError):
    """The record breaks a rule; the message says which and how to fix it."""


class InvalidSetting(StorageError):
    """A setting's value cannot be used; the message names the variable and what it takes."""
