"""Redis Streams transport: connections, key names, envelopes, inboxes, leases, events.

The names that need the Redis client (``connect``, the local server helpers) load on first
use, so that a command that only parses its arguments (``memgrid --help``) or names an error
does not pay for importing redis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bus.errors import BusError, LeaseLost, RedisUnavailable
from bus.settings import BusSettings

if TYPE_CHECKING:
    from bus.connection import connect, resolve_redis_url
    from bus.local_redis import ensure_local_redis, find_redis_server, stop_local_redis

__all__ = (
    "BusError",
    "BusSettings",
    "LeaseLost",
    "RedisUnavailable",
    "connect",
    "ensure_local_redis",
    "find_redis_server",
    "resolve_redis_url",
    "stop_local_redis",
)

_LAZY = {
    "connect": "bus.connection",
    "resolve_redis_url": "bus.connection",
    "ensure_local_redis": "bus.local_redis",
    "find_redis_server": "bus.local_redis",
    "stop_local_redis": "bus.local_redis",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
