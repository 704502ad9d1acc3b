"""Per-agent leases with fencing tokens: one step at a time per agent, everywhere.

A worker owns an agent while its lease key (``mg:{A}:lease``, value ``<worker>:<token>``) lives;
it renews the lease while it works. Each acquisition increments the agent's fence counter
(``mg:{A}:fence``) and the new value is the fencing token. Every commit of a step watches the
fence key and checks the token (:func:`fenced`), so a worker that was paused or partitioned
past its lease, after another worker took over, cannot write stale state: its transaction
fails with :class:`bus.errors.LeaseLost`. Renewals do not touch the fence key, so they never
abort a commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from bus import keys
from bus.errors import LeaseLost

__all__ = ("Lease", "WatchConflict", "acquire", "fenced")

# KEYS: lease, fence. ARGV: worker id, ttl ms. Returns the token, or 0 when held by another.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', tonumber(ARGV[2]))
return token
"""

# KEYS: lease. ARGV: expected value, ttl ms. Returns 1 when renewed, 0 when lost.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""

# KEYS: lease. ARGV: expected value.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_scripts: dict[int, tuple[object, object, object]] = {}


class Lease:
    """A held lease: the agent, the token, and how to renew or release it."""

    def __init__(
        self, redis: aioredis.Redis, agent_id: str, worker_id: str, token: int, ttl_ms: int
    ) -> None:
        self.redis = redis
        self.agent_id = agent_id
        self.worker_id = worker_id
        self.token = token
        self.ttl_ms = ttl_ms
        self.value = f"{worker_id}:{token}"

    async def renew(self) -> bool:
        """Extend the lease; False when it was lost (expired and maybe taken)."""
        renewed = await self.redis.eval(
            _RENEW, 1, keys.lease(self.agent_id), self.value, self.ttl_ms
        )
        return bool(renewed)

    async def release(self) -> None:
        await self.redis.eval(_RELEASE, 1, keys.lease(self.agent_id), self.value)

    async def check(self) -> None:
        """Raise :class:`LeaseLost` if another worker has taken the agent since."""
        current = await self.redis.get(keys.fence(self.agent_id))
        if current is None or int(current) != self.token:
            raise LeaseLost(
                f"agent {self.agent_id}: fencing token {self.token} is stale "
                f"(now {current!r}); another worker owns it"
            )


async def acquire(
    redis: aioredis.Redis, agent_id: str, worker_id: str, ttl_ms: int
) -> Lease | None:
    """Take the agent's lease, or None when another worker holds it."""
    token = await redis.eval(
        _ACQUIRE, 2, keys.lease(agent_id), keys.fence(agent_id), worker_id, ttl_ms
    )
    if not token:
        return None
    return Lease(redis, agent_id, worker_id, int(token), ttl_ms)


@asynccontextmanager
async def fenced(
    redis: aioredis.Redis,
    lease: Lease | None,
    agent_id: str,
    *,
    watch: tuple[str, ...] = (),
    prepare: Callable[[Pipeline], Awaitable[None]] | None = None,
) -> AsyncIterator[Pipeline]:
    """A MULTI transaction that commits only while ``lease``'s token is current.

    Stage writes on the yielded pipeline; they execute on exit. ``watch`` adds keys whose
    change during the transaction makes it fail with :class:`WatchConflict` (the caller
    re-reads and retries); ``prepare`` runs after the watches, before MULTI, to read them.
    With ``lease=None`` (an in-process run that holds no lease) only ``watch`` applies.
    """
    async with redis.pipeline(transaction=True) as pipe:
        if lease is not None or watch:
            await pipe.watch(*((keys.fence(agent_id),) if lease is not None else ()), *watch)
        if lease is not None:
            current = await pipe.get(keys.fence(agent_id))
            if current is None or int(current) != lease.token:
                raise LeaseLost(
                    f"agent {agent_id}: fencing token {lease.token} is stale (now {current!r})"
                )
        if prepare is not None:
            await prepare(pipe)
        if lease is not None or watch:
            pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        yield pipe
        try:
            await pipe.execute()
        except WatchError as exc:
            if lease is not None:
                current = await redis.get(keys.fence(agent_id))
                if current is None or int(current) != lease.token:
                    raise LeaseLost(
                        f"agent {agent_id}: another worker took over during the commit"
                    ) from exc
            raise WatchConflict(f"agent {agent_id}: a watched key changed; retry") from exc


class WatchConflict(Exception):
    """A watched key (not the fence) changed during a fenced transaction: re-read and retry."""
