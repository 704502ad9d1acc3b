"""Redis Streams transport: connections, key names, envelopes, inboxes, leases, events."""

from bus.connection import connect, resolve_redis_url
from bus.errors import BusError, LeaseLost, RedisUnavailable
from bus.local_redis import ensure_local_redis, find_redis_server, stop_local_redis
from bus.settings import BusSettings

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
