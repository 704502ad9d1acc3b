"""memgrid's error root, and the errors raised by storage.

Every exception memgrid defines derives from :class:`MemgridError` and from exactly one of
three kinds, the split pydantic-ai and Temporal make, so that an entry point catches kinds,
not lists::

    MemgridError
    ├── UserError        the caller can fix it: bad input, an unknown name, a setting, an
    │                    install step; a 4xx, or a one-line CLI error (exit 2)
    ├── RuntimeFailure   a dependency or the runtime failed (Redis, the model endpoint, an
    │                    embedding endpoint, the passage engine): retry, or fix the service;
    │                    a 502/503
    └── ControlSignal    not a failure: flow control between memgrid's own parts (a suspended
                         run, a lost lease, a tool refusal the model reads); never reaches a
                         user

Each package's tree hangs under it (drawn in each package's docstring); a package base
(``StorageError``, ``BusError``, ``LLMError``...) has no kind of its own, its errors do.

The root lives here because every package may import it: bus and storage import nothing of
ours, except that bus may import this one module, which imports nothing at all
(tests/test_architecture.py allows exactly that).

Storage's own::

    StorageError
    ├── NotFound            UserError       an id or name that does not exist
    ├── Conflict            UserError       a unique name taken, or a version that moved
    ├── StaleWriter         ControlSignal   a fenced write from a worker that lost its lease
    ├── InvalidRecord       UserError       a record that breaks a rule (limit, read-only...)
    └── InvalidSetting      UserError       an environment variable that cannot be used
"""

from __future__ import annotations

__all__ = (
    "Conflict",
    "ControlSignal",
    "InvalidRecord",
    "InvalidSetting",
    "MemgridError",
    "NotFound",
    "RuntimeFailure",
    "StaleWriter",
    "StorageError",
    "UserError",
)


class MemgridError(Exception):
    """The root of every exception memgrid defines."""


class UserError(MemgridError):
    """A mistake the caller can fix; the message says what was wrong and what to do."""


class RuntimeFailure(MemgridError):
    """A dependency or the runtime failed; the message names it. Retrying may help."""


class ControlSignal(MemgridError):
    """Flow control between memgrid's parts, not a failure: caught inside memgrid."""


class StorageError(MemgridError):
    """Base class of every error raised by :mod:`storage`."""


class NotFound(StorageError, UserError):
    """The record does not exist; the message names what was looked up."""


class Conflict(StorageError, UserError):
    """A uniqueness or version conflict; the message says which."""


class StaleWriter(StorageError, ControlSignal):
    """A fenced write from a worker that lost the agent's lease; nothing was written: the
    worker stops the step (not a Conflict for anyone to resolve)."""


class InvalidRecord(StorageError, UserError):
    """The record breaks a rule; the message says which and how to fix it."""


class InvalidSetting(StorageError, UserError):
    """A setting's value cannot be used; the message names the variable and what it takes."""
