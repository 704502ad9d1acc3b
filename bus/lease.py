"""Per-agent leases with fencing tokens: one step at a time per agent, everywhere.

A worker owns an agent while its lease key (``mg:{A}:lease``, value ``<worker>:<token>``) lives;
it renews the lease while it works. Each acquisition stores a new fencing token in the agent's
fence key (``mg:{A}:fence``): the previous token's counter plus one, and a random nonce made by
the acquirer (``<counter>.<nonce>``). Every commit of a step runs as one script that first
compares the fence with the token (:func:`fenced`), so a worker that was paused or partitioned
past its lease, after another worker took over, cannot write stale state: its commit fails
with :class:`bus.errors.LeaseLost` and writes nothing. Renewals do not touch the fence key, so
they never abort a commit.

The nonce is what makes a token unique: when Redis loses its last writes (a restart with
``appendfsync everysec``), the counter can go back and the next acquisition reuses a counter
value that a live, forgotten holder still has; its nonce differs, so that holder's commits are
refused. The counter keeps tokens readable and ordered in logs.

A commit can also expect other keys to hold what the caller last read (compare-and-set on their
SHA1): the step loop expects the agent record it merged its fields into, so an API edit made
during the step is re-read and kept instead of overwritten.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import anyio
import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from bus import keys
from bus._commit import split
from bus._replies import Entry
from bus.errors import CommitRefused, LeaseLost
from bus.scripts import LuaScript
from bus.streams import GROUP, NEXT_ENTRY_LUA, deliveries_of, entry_of
from storage.errors import ControlSignal

__all__ = (
    "Lease",
    "Taken",
    "WatchConflict",
    "acquire",
    "fenced",
    "journal",
    "renew_all",
    "take",
)

# Writes a new token (KEYS[2]: the fence) and the lease (KEYS[1]) for ARGV: worker id, ttl ms,
# nonce. A fence written before nonces (a bare counter) is read as that counter.
_NEW_TOKEN_LUA = """
local previous = redis.call('GET', KEYS[2])
local counter = previous and tonumber(string.match(previous, '^%d+')) or 0
local token = (counter + 1) .. '.' .. ARGV[3]
redis.call('SET', KEYS[2], token)
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', tonumber(ARGV[2]))
"""

# KEYS: lease, fence. ARGV: worker id, ttl ms, nonce. Returns the token, or 0 when held by
# another.
_ACQUIRE = LuaScript(
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n" + _NEW_TOKEN_LUA + "return token"
)

# KEYS: lease, fence, the agent's inbox, its record (one slot). ARGV: worker id, ttl ms, nonce,
# the inbox's group. Returns 0 when another holds the lease, else {the token, the inbox's next
# entry for the worker (a pending one first) or false, the record}. The entry is read before
# the first write: an inbox without its group fails the script with nothing written.
_TAKE = LuaScript(
    NEXT_ENTRY_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local entry = next_entry(KEYS[3], ARGV[4], ARGV[1], true)
"""
    + _NEW_TOKEN_LUA
    + "return {token, entry, redis.call('GET', KEYS[4])}"
)

# KEYS: lease. ARGV: expected value, ttl ms. Returns 1 when renewed, 0 when lost.
_RENEW = LuaScript("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
""")

# KEYS: lease. ARGV: expected value.
_RELEASE = LuaScript("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")

# The fenced commit. KEYS: the fence, the expected keys, then every key the commands touch
# (declared so that a cluster routes the script to their one slot, and refuses it before it
# runs when they span slots; the script itself finds them in the commands). ARGV: how many
# expected keys, the token ('' = no lease), a '1' or '0' per expected key (it held a value, or
# must not exist), each expected key's value ('' for a missing one; compared whole, which costs
# Redis ~1 us where a SHA1 of an 8 KB agent record cost ~10, and the worker no hashing), then
# the commands as one MessagePack array of arrays of strings (one argument, cheap for the client
# to pack; Redis's cmsgpack decodes it in about half the time its cjson took for the JSON sent
# before, and any bytes travel as they are).
# Checks first, writes after: all or nothing. A script is not rolled back when a command
# errors, so no command may fail once writing starts: Python splits long commands below
# unpack's limit (bus/_commit.py) and the script checks, before any write, that each key a
# typed command touches holds that type (or nothing, or will by then).
# Returns {1, the last command's reply}, {0, current fence} (lease lost), {-1, key} (an
# expected key changed) or {-2, key, its type, command} (a command would fail: nothing written).
_COMMIT = LuaScript("""
local expected = tonumber(ARGV[1])
if ARGV[2] ~= '' then
  local current = redis.call('GET', KEYS[1])
  if current ~= ARGV[2] then return {0, current or ''} end
end
for k = 1, expected do
  local value = redis.call('GET', KEYS[k + 1])
  if string.byte(ARGV[3], k) == 49 then  -- '1': the key held ARGV[k + 3]
    if value ~= ARGV[k + 3] then return {-1, KEYS[k + 1]} end
  elseif value then return {-1, KEYS[k + 1]} end
end
local commands = cmsgpack.unpack(ARGV[expected + 4])
local kinds = {
  ZADD = 'zset', ZREM = 'zset', ZINCRBY = 'zset', ZREMRANGEBYSCORE = 'zset',
  ZREMRANGEBYRANK = 'zset', SADD = 'set', SREM = 'set', HSET = 'hash', HMSET = 'hash',
  HSETNX = 'hash', HDEL = 'hash', HINCRBY = 'hash', RPUSH = 'list', LPUSH = 'list',
  LTRIM = 'list', XADD = 'stream', XTRIM = 'stream', XDEL = 'stream', XACK = 'stream'
}
local planned = {}
for _, command in ipairs(commands) do
  local name = string.upper(command[1])
  local kind = kinds[name]
  if kind then
    local key = command[2]
    local seen = planned[key] or redis.call('TYPE', key)['ok']
    if seen ~= 'none' and seen ~= kind then return {-2, key, seen, name} end
    planned[key] = kind
  elseif name == 'SET' then
    planned[command[2]] = 'string'
  elseif name == 'MSET' then
    for j = 2, #command, 2 do planned[command[j]] = 'string' end
  elseif name == 'DEL' or name == 'UNLINK' then
    for j = 2, #command do planned[command[j]] = 'none' end
  end
end
local last
for _, command in ipairs(commands) do
  last = redis.call(unpack(command))
end
return {1, last}
""")


# KEYS: the fence, the journal key. ARGV: token, value, ttl s. Returns {1} when written, {2,
# value} when an earlier value stays, {0, current fence} when the lease is lost.
_JOURNAL = LuaScript("""
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then return {0, current or ''} end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', tonumber(ARGV[3])) then return {1} end
return {2, redis.call('GET', KEYS[2])}
""")


class Lease:
    """A held lease: the agent, the token, and how to renew or release it."""

    def __init__(
        self, redis: aioredis.Redis, agent_id: str, worker_id: str, token: str, ttl_ms: int
    ) -> None:
        self.redis = redis
        self.agent_id = agent_id
        self.worker_id = worker_id
        self.token = token
        self.ttl_ms = ttl_ms
        self.value = f"{worker_id}:{token}"

    @property
    def counter(self) -> int:
        """The token's counter: one more than the previous acquisition's (as Redis recalls)."""
        return int(self.token.partition(".")[0])

    async def renew(self) -> bool:
        """Extend the lease; False when it was lost (expired and maybe taken)."""
        return (await renew_all(self.redis, [self]))[0]

    async def release(self) -> None:
        await _RELEASE(self.redis, [keys.lease(self.agent_id)], [self.value])

    def stale(self, current: object) -> LeaseLost:
        """The error for a commit refused because the fence has moved on to ``current``."""
        return LeaseLost(
            f"agent {self.agent_id}: fencing token {self.token} is stale "
            f"(now {current!r}); another worker owns it"
        )


async def journal(redis: aioredis.Redis, lease: Lease, key: str, value: bytes, ttl_s: int) -> bytes:
    """Write ``value`` at ``key`` unless something is there already (first writer wins), while
    ``lease`` is current; returns what the key holds now.

    Raises:
        LeaseLost: another worker took the agent: a stale worker writes nothing.
    """
    outcome = await _JOURNAL(redis, [keys.fence(lease.agent_id), key], [lease.token, value, ttl_s])
    if outcome[0] == 0:
        raise lease.stale(outcome[1])
    return value if outcome[0] == 1 else bytes(outcome[1])


async def renew_all(redis: aioredis.Redis, leases: Sequence[Lease]) -> list[bool]:
    """Renew many leases in one round trip; for each, whether it was still held."""
    if not leases:
        return []
    if isinstance(redis, RedisCluster):  # no scripts in a cluster pipeline: one call each
        renewed: list[bool] = [False] * len(leases)

        async def _one(i: int, lease: Lease) -> None:
            value = await _RENEW(redis, [keys.lease(lease.agent_id)], [lease.value, lease.ttl_ms])
            renewed[i] = bool(value)

        async with anyio.create_task_group() as tg:
            for i, lease in enumerate(leases):
                tg.start_soon(_one, i, lease)
        return renewed
    for _attempt in range(2):
        async with redis.pipeline(transaction=False) as pipe:
            for lease in leases:
                pipe.evalsha(_RENEW.sha, 1, keys.lease(lease.agent_id), lease.value, lease.ttl_ms)
            results = await pipe.execute(raise_on_error=False)
        if not any(isinstance(r, NoScriptError) for r in results):
            break
        await redis.script_load(_RENEW.source)  # a restarted or flushed server
    for result in results:
        if isinstance(result, Exception):
            raise result
    return [bool(result) for result in results]


async def acquire(
    redis: aioredis.Redis, agent_id: str, worker_id: str, ttl_ms: int
) -> Lease | None:
    """Take the agent's lease, or None when another worker holds it."""
    nonce = secrets.token_hex(8)
    token = await _ACQUIRE(
        redis, [keys.lease(agent_id), keys.fence(agent_id)], [worker_id, ttl_ms, nonce]
    )
    if not token:
        return None
    return Lease(redis, agent_id, worker_id, _text(token), ttl_ms)


class Taken(NamedTuple):
    """What :func:`take` got: the lease, the inbox's next entry (None: empty), the record, and
    how many times that entry has been delivered (this time included: a crashed holder's
    deliveries count; see :func:`bus.streams.deliveries_of`)."""

    lease: Lease
    entry: Entry | None
    record: bytes | None
    deliveries: int = 1


async def take(
    redis: aioredis.Redis, agent_id: str, worker_id: str, ttl_ms: int, *, record_key: str
) -> Taken | None:
    """Take the agent's lease with the next entry of its inbox for ``worker_id`` (a pending one
    first, as :func:`bus.streams.next_entry` with ``claim``) and its record (``record_key``),
    in one round trip; None when another worker holds the lease.

    Raises:
        redis.exceptions.ResponseError: NOGROUP: the inbox has no consumer group (nothing
            was written: make it and take again).
    """
    nonce = secrets.token_hex(8)
    found = await _TAKE(
        redis,
        [keys.lease(agent_id), keys.fence(agent_id), keys.inbox(agent_id), record_key],
        [worker_id, ttl_ms, nonce, GROUP],
    )
    if not found:
        return None
    lease = Lease(redis, agent_id, worker_id, _text(found[0]), ttl_ms)
    return Taken(lease, entry_of(found[1]), found[2], deliveries_of(found[1]))


_msgpack = msgspec.msgpack.Encoder()


def _packed(commands: list[list[Any]]) -> bytes:
    """The commands as one MessagePack array of arrays of strings.

    redis-py packs each argument in Python (~1 us each, ~200 in a step's commit); msgspec
    packs them all at once and the script unpacks them with cmsgpack, in C on both sides.
    Bytes go as MessagePack strings (a header and the bytes: Redis's cmsgpack predates the
    bin types), numbers as redis-py would send them.
    """
    return _msgpack.encode(
        [
            [a if type(a) is str else _string(a) if type(a) is bytes else _arg(a) for a in command]
            for command in commands
        ]
    )


def _string(value: bytes) -> msgspec.Raw:
    n = len(value)
    if n < 32:
        head = bytes((0xA0 | n,))
    elif n < 0x100:
        head = bytes((0xD9, n))
    elif n < 0x10000:
        head = b"\xda" + n.to_bytes(2, "big")
    else:
        head = b"\xdb" + n.to_bytes(4, "big")
    return msgspec.Raw(head + value)


def _arg(value: object) -> object:
    """A value other than exactly str or bytes: a subclass, or a number (as its repr, which is
    what redis-py sends)."""
    if isinstance(value, bytes):
        return _string(value)
    return value if isinstance(value, str) else repr(value)


@asynccontextmanager
async def fenced(
    redis: aioredis.Redis,
    lease: Lease | None,
    agent_id: str,
    *,
    expect: Mapping[str, bytes | None] | None = None,
    reply: list[Any] | None = None,
) -> AsyncIterator[Pipeline]:
    """Writes that commit, all or nothing, only while ``lease``'s token is current.

    Stage writes on the yielded pipeline (it is never executed itself); on exit they run in one
    script call that checks the fence first. ``expect`` maps keys to the value the caller last
    read (None: the key must not exist); if any changed, nothing is written and
    :class:`WatchConflict` is raised (the caller re-reads and retries). With ``lease=None`` (an
    in-process run that holds no lease) only ``expect`` applies. ``reply`` receives the last
    staged command's reply (such as a read staged last: it sees the commit's writes).

    A commit of any size is all or nothing: long variadic commands are split (see
    :mod:`bus._commit`) and no command can fail after the first write.

    Raises:
        LeaseLost: another worker took the agent since ``lease`` was acquired.
        WatchConflict: an expected key holds something else.
        CommitRefused: a command would fail (a key of another type; a command that cannot
            be split and is too long); nothing was written.
    """
    expect = expect or {}
    # Staged on a pipeline of a client that never connects: only its command stack is read,
    # whatever ``redis`` is (a cluster client's pipeline keeps no such stack).
    async with _STAGING.pipeline(transaction=False) as pipe:
        yield pipe
        commands = [
            [*(command[0].split() if isinstance(command[0], str) else [command[0]]), *command[1:]]
            for command, _options in pipe.command_stack
        ]
        await pipe.reset()  # type: ignore[no-untyped-call]  # unannotated in redis-py
    if not commands:
        return
    commands = split(commands)
    args: list[object] = [len(expect), "" if lease is None else lease.token]
    args.append("".join("0" if value is None else "1" for value in expect.values()))
    args += [b"" if value is None else value for value in expect.values()]
    args.append(_packed(commands))
    touched = dict.fromkeys(key for command in commands for key in _keys_of(command))
    outcome = await _COMMIT(redis, [keys.fence(agent_id), *expect, *touched], args)
    if outcome[0] == 0 and lease is not None:  # 0 only comes when a token was checked
        raise lease.stale(outcome[1])
    if outcome[0] == -1:
        changed = _text(outcome[1])
        raise WatchConflict(f"agent {agent_id}: {changed} changed since it was read; retry")
    if outcome[0] == -2:
        key, kind, name = (_text(part) for part in outcome[1:4])
        raise CommitRefused(
            f"agent {agent_id}: {key} holds a {kind}, which {name} cannot write; nothing of "
            "the commit was written (a bug or corrupt data: inspect or delete that key)"
        )
    if reply is not None:
        reply.append(outcome[1] if len(outcome) > 1 else None)


# Never connected (a client connects on its first command): stages the commands of a commit.
_STAGING = aioredis.Redis()

# Commands whose every argument is a key, and those of key-value pairs; the rest name one key,
# their first argument (all the commands a commit stages).
_ALL_KEYS = frozenset({"DEL", "UNLINK", "EXISTS", "TOUCH"})
_PAIRS = frozenset({"MSET", "MSETNX"})


def _keys_of(command: Sequence[Any]) -> Sequence[Any]:
    name = _text(command[0]).upper()
    if name == "XGROUP":  # XGROUP <subcommand> <key> ...
        return command[2:3]
    if name in _ALL_KEYS:
        return command[1:]
    if name in _PAIRS:
        return command[1::2]
    return command[1:2]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class WatchConflict(ControlSignal):
    """A watched key (not the fence) changed during a fenced transaction: re-read and retry."""
