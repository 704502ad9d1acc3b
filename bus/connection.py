"""Redis connections: the configured URL, else the local server of ``MEMGRID_HOME``; and how
long-running loops ride out a Redis outage (:data:`TRANSIENT_ERRORS`, :class:`Outage`).

A Redis Cluster is selected by the URL form ``redis+cluster://host:port`` (any node; also
``rediss+cluster://``), and detected when ``MEMGRID_REDIS_URL`` names a plain ``redis://``
node of a cluster (``cluster_enabled:1`` in its INFO): :func:`resolve_redis_url` rewrites it to
the cluster form and :func:`connect` returns redis-py's asyncio ``RedisCluster``, which routes
each command and script by its keys' hash slot. Every script and transaction of memgrid
touches one slot (see :mod:`bus.keys`), so both clients run the same code.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import anyio
import redis
import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig

from bus._pool import WaitingPool
from bus.local_redis import ensure_local_redis
from bus.settings import BusSettings

__all__ = (
    "CLUSTER_SCHEMES",
    "TRANSIENT_ERRORS",
    "Outage",
    "cluster_copy",
    "connect",
    "describe",
    "detect_cluster",
    "is_cluster",
    "is_transient",
    "resolve_redis_url",
    "through_outage",
)

T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
)
"""Errors of a Redis that is away for a while: refused or reset connections, timeouts, a
server still loading its AOF after a restart (``BusyLoadingError`` is a ``ConnectionError``),
and a primary demoted to replica in a failover (``READONLY``, until clients reconnect to the
new primary). Long-running loops wait them out (see :func:`is_transient` for the rest); a
request answers "try again"."""

# Replies of a server changing state: a blocked read cut by a demotion to replica, a replica
# whose primary is gone, a cluster slot moving.
_TRANSIENT_REPLIES = ("UNBLOCKED", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")

# The same, and READONLY, from a command inside a Lua script: Redis wraps them in
# ``Error running script ...: -READONLY You can't write ...`` (a plain ResponseError).
_IN_SCRIPT = re.compile(r"-(READONLY|LOADING|" + "|".join(_TRANSIENT_REPLIES) + r")\b")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis is away or changing state for a while (wait, try again)."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if not isinstance(exc, ResponseError):
        return False
    text = str(exc)
    return text.startswith(_TRANSIENT_REPLIES) or _IN_SCRIPT.search(text) is not None


_log = structlog.get_logger("memgrid.redis")


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes that select a Redis Cluster, and the plain scheme of each one's nodes."""


def _cluster_scheme(url: str) -> str | None:
    scheme, sep, _rest = url.partition("://")
    return CLUSTER_SCHEMES.get(scheme.lower()) if sep else None


def is_cluster(client: aioredis.Redis) -> bool:
    """Whether ``client`` talks to a Redis Cluster (made by :func:`connect` from a cluster URL)."""
    return isinstance(client, RedisCluster)


def detect_cluster(url: str) -> str:
    """``url`` in the cluster form when it names a plain node of a Redis Cluster, else as it is.

    Blocking (one INFO): call it from a thread. A node that does not answer is left for the
    caller's first command to report.
    """
    if _cluster_scheme(url) is not None or not url.lower().startswith(("redis://", "rediss://")):
        return url
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=5.0, socket_timeout=5.0) as probe:
            enabled = probe.info("cluster").get("cluster_enabled")
    except redis.RedisError:
        return url
    if str(enabled) != "1":
        return url
    scheme, _sep, rest = url.partition("://")
    return f"{scheme.lower()}+cluster://{rest}"


def resolve_redis_url(settings: BusSettings) -> str:
    """``MEMGRID_REDIS_URL`` when set (in the cluster form when it names a cluster node, see
    :func:`detect_cluster`), else the local server (started on first use). Blocking."""
    if settings.redis_url:
        return detect_cluster(settings.redis_url)
    return ensure_local_redis(settings.home, settings.redis_server)


class _Cluster(RedisCluster):
    """redis-py's cluster client, with its slot map loaded before its first command.

    Left to load it lazily, concurrent first commands race it: some go to the wrong node and
    come back MOVED, the client then reloads the map and drops the connections that others are
    waiting on, which fail with ConnectionError (32 concurrent first scripts: ~15 failed, and
    with redis-py's default retries some ran twice). Loading it first leaves MOVED to what it
    is for: slots that move.
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)

    async def _determine_slot(self, command: str, *args: Any) -> int:
        """The slot of a command's keys; those of XREAD and XREADGROUP read here from their
        ``STREAMS`` part. redis-py asks a node for them (COMMAND GETKEYS, twice: two round
        trips before every read of a stream: the workers' signal reads, a run's followers)."""
        if command.upper() in ("XREAD", "XREADGROUP"):
            words = [a.upper() if isinstance(a, str) else a for a in args]
            at = next((i for i, w in enumerate(words) if w in ("STREAMS", b"STREAMS")), None)
            if at is not None:
                named = args[at + 1 :]
                streams = named[: len(named) // 2]
                slots = {self.keyslot(stream) for stream in streams}
                if len(slots) == 1:
                    return slots.pop()
        return int(await super()._determine_slot(command, *args))


# A cluster client runs a command once, as the one-Redis client does: redis-py's default (3
# retries on a connection error or timeout, after reloading the slot map) would run a command
# whose reply was lost a second time, and a script twice. Callers that may retry, retry
# (through_outage); a fenced commit in doubt fails the attempt, which starts again from what
# is committed. Redirections (MOVED, ASK) are followed all the same: the command did not run.
_CLUSTER: dict[str, Any] = {
    "retry": Retry(NoBackoff(), 0),
    "socket_connect_timeout": 5.0,
    "socket_timeout": None,
    "socket_keepalive": True,
    "health_check_interval": 30,
    "decode_responses": False,
}
# What a copy of a cluster client takes over from the original's connection options.
_CREDENTIALS = ("username", "password", "ssl", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def cluster_copy(client: aioredis.Redis, *, max_connections: int) -> aioredis.Redis:
    """A new client to the cluster of ``client`` (a cluster client) with connections of its
    own, as :func:`connect` makes them."""
    assert isinstance(client, RedisCluster)
    options = client.get_connection_kwargs()
    nodes = [ClusterNode(n.host, n.port) for n in client.get_nodes()] or list(
        client.nodes_manager.startup_nodes.values()
    )
    copy = _Cluster(
        startup_nodes=[ClusterNode(n.host, n.port) for n in nodes],
        max_connections=max_connections,
        **_CLUSTER,
        **{k: options[k] for k in _CREDENTIALS if options.get(k) is not None},
    )
    return cast(aioredis.Redis, copy)


def connect(url: str, *, max_connections: int = 256) -> aioredis.Redis:
    """An asyncio Redis client on ``url``; the caller closes it with ``aclose()``.

    The pool (:class:`bus._pool.WaitingPool`) waits (up to 30 s) when all ``max_connections``
    are busy instead of failing, so a worker with many agents in flight waits its turn for a
    connection. There is no socket
    read timeout: blocking reads (XREAD BLOCK, BLPOP) bound themselves, and redis-py's default
    would cut any block longer than 5 s; keepalive and health checks catch dead peers.
    Commands are not retried by the client: a write whose reply was lost may have run, and
    only the caller knows whether running it again is safe. Idle connections are checked when
    taken from the pool, so that after a Redis restart a command goes out on a new connection
    instead of failing on one that the old server closed; redis-py skips that check while
    maintenance notifications (a Redis Enterprise feature, on by default) are enabled, so they
    are off.

    A cluster URL (``redis+cluster://node:port``) gives redis-py's ``RedisCluster``, typed as
    ``Redis`` (the commands memgrid uses behave the same on both; :func:`is_cluster` tells
    them apart) with up to ``max_connections`` connections per node.
    """
    plain = _cluster_scheme(url)
    if plain is not None:
        cluster = _Cluster.from_url(
            f"{plain}://{url.partition('://')[2]}", max_connections=max_connections, **_CLUSTER
        )
        # RedisCluster is no subclass of Redis but answers the same commands, scripts and
        # (single-slot) pipelines; typing it as Redis keeps one client type across the code.
        return cast(aioredis.Redis, cluster)
    pool = WaitingPool.from_url(
        url,
        max_connections=max_connections,
        timeout=30,
        socket_connect_timeout=5.0,
        socket_timeout=None,
        health_check_interval=30,
        # TCP keepalive finds dead peers; unix-socket connections do not take the option.
        **({} if url.startswith("unix:") else {"socket_keepalive": True}),
        decode_responses=False,
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def describe(client: aioredis.Redis) -> str:
    """Where ``client`` connects, as a URL without credentials (for messages and logs)."""
    if isinstance(client, RedisCluster):
        node = client.get_default_node() or next(iter(client.nodes_manager.startup_nodes.values()))
        return f"redis+cluster://{node.host}:{node.port}/0"  # a cluster has database 0 only
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"


class Outage:
    """Backoff for one long-running loop through Redis outages.

    Call :meth:`wait` with each transient error and :meth:`ok` after each pass that reached
    Redis. The first failure of an outage is logged (``redis_unavailable``), the retries are
    not; the end of it is (``redis_back``, with how long it lasted). Delays double from
    ``base_s`` up to ``cap_s``, each drawn between half and all of that (jitter: processes
    that lost Redis together do not hammer it together when it returns).
    """

    def __init__(self, loop: str, *, base_s: float = 0.05, cap_s: float = 2.0) -> None:
        self.loop = loop
        self._base_s = base_s
        self._cap_s = cap_s
        self._failures = 0
        self._since: float | None = None

    @property
    def down(self) -> bool:
        """Whether the last attempt failed."""
        return self._since is not None

    def delay(self) -> float:
        """How long to wait before the next attempt."""
        ceiling = min(self._cap_s, self._base_s * 2 ** min(self._failures, 16))
        return random.uniform(ceiling / 2, ceiling)

    async def wait(self, exc: BaseException) -> None:
        """Note a failed attempt and sleep before the next one."""
        if self._since is None:
            self._since = time.monotonic()
            _log.warning("redis_unavailable", loop=self.loop, error=repr(exc))
        delay = self.delay()
        self._failures += 1
        await anyio.sleep(delay)

    def ok(self) -> None:
        """Note a successful attempt: the outage, if any, is over."""
        if self._since is not None:
            down_s = round(time.monotonic() - self._since, 2)
            _log.warning("redis_back", loop=self.loop, down_s=down_s)
        self._since = None
        self._failures = 0


async def through_outage(
    within_s: float, loop: str, call: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
) -> T:
    """``call(*args, **kwargs)``, retried through a Redis outage for up to ``within_s`` s.

    Only for calls that are safe to run twice (a reply lost with the connection may hide a
    call that ran). After ``within_s`` one last try raises whatever it raises.
    """
    outage = Outage(loop)
    with anyio.move_on_after(within_s):
        while True:
            try:
                result = await call(*args, **kwargs)
            except RedisError as exc:
                if not is_transient(exc):
                    raise
                await outage.wait(exc)
                continue
            outage.ok()
            return result
    return await call(*args, **kwargs)
