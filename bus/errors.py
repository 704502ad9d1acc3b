"""Errors raised by the bus.

BusError
├── RedisUnavailable      the configured or local Redis cannot be reached or started
└── LeaseLost             a fencing token no longer matches: this worker must stop writing
"""

from __future__ import annotations

__all__ = ("BusError", "LeaseLost", "RedisUnavailable")


class BusError(Exception):
    """Base class of every error raised by :mod:`bus`."""


class RedisUnavailable(BusError):
    """Redis could not be reached or started; the message says what to set or fix."""


class LeaseLost(BusError):
    """The agent's lease moved to another worker; the current step must not commit."""
