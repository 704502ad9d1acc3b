"""Redis Streams transport: connections, key names, envelopes, inboxes, leases, events.

The names that need the Redis client (``connect``, the outage helpers, the local server
helpers) load on first use, so that a command that only parses its arguments
(``memgrid --help``) or names an error does not pay for importing redis.

Errors, under memgrid's root (:mod:`storage.errors`, the one module of ours bus imports)::

    MemgridError
    ├── BusError
    │   ├── RedisUnavailable   RuntimeFailure  Redis cannot be reached or started
    │   ├── LeaseLost          ControlSignal   the agent's lease moved: stop writing
    │   └── CommitRefused      RuntimeFailure  a fenced commit would fail: nothing written
    └── WatchConflict          ControlSignal   a watched key moved in a fenced transaction:
                                               re-read and retry (bus.lease)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bus._lazy import lazy_exports as _lazy_exports
from bus.errors import BusError, LeaseLost, RedisUnavailable
from bus.settings import BusSettings

if TYPE_CHECKING:
    from bus.connection import (
        CLUSTER_SCHEMES,
        TRANSIENT_ERRORS,
        Outage,
        connect,
        describe,
        detect_cluster,
        is_cluster,
        is_transient,
        resolve_redis_url,
        through_outage,
    )
    from bus.local_redis import (
        ensure_local_redis,
        find_redis_server,
        leave_local_redis,
        restart_local_redis_if_down,
        running_local_redis,
        stop_local_redis,
    )

__all__ = (
    "CLUSTER_SCHEMES",
    "TRANSIENT_ERRORS",
    "BusError",
    "BusSettings",
    "LeaseLost",
    "Outage",
    "RedisUnavailable",
    "connect",
    "describe",
    "detect_cluster",
    "ensure_local_redis",
    "find_redis_server",
    "is_cluster",
    "is_transient",
    "leave_local_redis",
    "resolve_redis_url",
    "restart_local_redis_if_down",
    "running_local_redis",
    "stop_local_redis",
    "through_outage",
)

__getattr__, __dir__ = _lazy_exports(globals())
