"""Waits between agents: the reply outbox, wake-up checks and the wait-for graph.

Replies travel in the replying run's final commit: the commit adds an entry to the agent's own
outbox stream (``mg:{B}:outbox``, in B's hash slot, so the commit stays on one shard), and the
worker relays it to the waiting run's reply hash and wakes the waiter. The relay is idempotent
(the body is fixed at commit time; a relayed entry is deleted last), so a worker that dies
between the commit and the relay only delays the reply: its signal for B stays pending, the
next worker to take it reclaims it as stale and relays what the outbox still holds.

A suspended run is woken by a "ready" signal. One sent while another worker holds the agent's
lease is dropped (that worker drains the inbox), so whoever suspends a run checks, after
releasing the lease, whether the wait is already over (all replies in, or the deadline passed)
and signals again if so; otherwise it (re)arms the timer. Deadlines are compared on the Redis
server's clock only, so workers whose clocks disagree still agree on when a wait has ended.

The wait-for graph (``mg:waits``, agent -> the agents its waiting run waits on) lets a wait be
refused when it would close a cycle across different runs: A waits on B in one conversation
while B, in another, waits on A; each request would queue behind the other's wait. Checking
and recording happen in one script, so two such waits cannot both pass. An edge lasts until
its wait ends (or, if its removal was lost to a crash, until its deadline).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from bus import keys as bus_keys
from bus.scripts import LuaScript
from storage.records import Run

__all__ = (
    "REPLIES_TTL_S",
    "claim_wait",
    "end_wait",
    "fire_timers",
    "relay_replies",
    "reply_text",
    "server_time",
    "stage_reply",
    "wait_over",
    "wake_if_due",
)

REPLIES_TTL_S = 7 * 24 * 3600
_RELAY_BATCH = 100


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def server_time(redis: aioredis.Redis) -> float:
    """The Redis server's clock (seconds): the one clock every wait deadline is read on."""
    seconds, micros = await redis.time()
    return float(seconds) + micros / 1_000_000


def reply_text(run: Run) -> str:
    """What a finished run says back to an agent that waited on it."""
    if run.replies:
        return "\n".join(run.replies)
    if run.status == "failed":
        return f"(the agent could not answer: its run failed: {run.error or run.stop_reason})"
    return f"(the agent ended its turn without replying; stop reason: {run.stop_reason})"


def stage_reply(pipe: Any, run: Run, now: float) -> None:
    """Stage ``run``'s reply to its waiter (if any) in the agent's outbox, in the caller's
    commit; :func:`relay_replies` hands it over afterwards."""
    target = run.reply_to
    if target is None:
        return
    body = json.dumps({"reply": reply_text(run), "status": run.status, "at": now})
    pipe.xadd(
        bus_keys.outbox(run.agent_id),
        {"a": target.agent_id, "r": target.run_id, "c": target.call_id, "b": body},
    )


async def relay_replies(redis: aioredis.Redis, agent_id: str) -> int:
    """Hand the replies in ``agent_id``'s outbox to their waiters and wake them (idempotent:
    an entry is deleted only once delivered). Returns how many were relayed."""
    outbox = bus_keys.outbox(agent_id)
    entries = await redis.xrange(outbox, count=_RELAY_BATCH)
    if not entries:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for _entry_id, raw in entries:
            if not raw:  # an entry deleted meanwhile (relayed by another worker)
                continue
            fields = {_text(k): _text(v) for k, v in raw.items()}
            key = bus_keys.wait_replies(fields["a"], fields["r"], fields["c"])
            pipe.hset(key, agent_id, fields["b"])
            pipe.expire(key, REPLIES_TTL_S)
            pipe.xadd(bus_keys.ready(fields["a"]), {"a": fields["a"]})
        await pipe.execute()
    await redis.xdel(outbox, *[_text(entry_id) for entry_id, _raw in entries])
    return len(entries)


async def wait_over(redis: aioredis.Redis, run: Run) -> bool:
    """Whether ``run``'s wait has ended: every reply is in, or the deadline passed."""
    wait = run.wait
    if wait is None:
        return True
    key = bus_keys.wait_replies(run.agent_id, run.id, wait.call_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hlen(key)
        pipe.execute_command("TIME")  # (pipe.time() is refused by a cluster's pipeline)
        replies, (seconds, micros) = await pipe.execute()
    return int(replies) >= len(wait.targets) or seconds + micros / 1e6 >= wait.deadline


async def wake_if_due(redis: aioredis.Redis, run: Run) -> None:
    """After suspending ``run`` and releasing its agent: wake it now if its wait already ended
    (a wake-up sent while the lease was held was dropped), else make sure its timer is set."""
    wait = run.wait
    if wait is None:
        return
    if await wait_over(redis, run):
        await redis.xadd(bus_keys.ready(run.agent_id), {"a": run.agent_id})
    else:
        await redis.zadd(bus_keys.timers(), {run.agent_id: wait.deadline})


# KEYS: the wait-for graph. ARGV: the waiter, its run id, now, the deadline, then the targets.
# Walks the live edges from the targets (dropping expired ones); when they lead back to the
# waiter, returns that path (target first, waiter last) and records nothing; else records the
# waiter's edges.
_CLAIM = LuaScript("""
local waiter, now = ARGV[1], tonumber(ARGV[3])
local parent, queue, head = {}, {}, 1
for i = 5, #ARGV do
  if parent[ARGV[i]] == nil then parent[ARGV[i]] = ''; queue[#queue + 1] = ARGV[i] end
end
while head <= #queue do
  local node = queue[head]
  head = head + 1
  if node == waiter then
    local path = {}
    while node ~= '' do table.insert(path, 1, node); node = parent[node] end
    return path
  end
  local raw = redis.call('HGET', KEYS[1], node)
  if raw then
    local edge = cjson.decode(raw)
    if tonumber(edge.d) > now then
      for _, next in ipairs(edge.t) do
        if parent[next] == nil then parent[next] = node; queue[#queue + 1] = next end
      end
    else
      redis.call('HDEL', KEYS[1], node)  -- a wait that ended unrecorded (a crash, a deletion)
    end
  end
end
local targets = {}
for i = 5, #ARGV do targets[#targets + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], waiter, cjson.encode({r = ARGV[2], d = tonumber(ARGV[4]), t = targets}))
return false
""")

# KEYS: the wait-for graph. ARGV: the waiter, its run id. Removes the waiter's edges if they
# are still this run's.
_END = LuaScript("""
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw and cjson.decode(raw).r == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
""")


async def claim_wait(
    redis: aioredis.Redis, run: Run, targets: Sequence[str], deadline: float, now: float
) -> list[str] | None:
    """Record that ``run``'s agent waits on ``targets`` until ``deadline``, unless one of them
    already waits (maybe through others) on it: then that chain of agent ids, target first.
    ``now`` (the server's clock) tells live edges from those of waits that ended unrecorded."""
    path = await _CLAIM(redis, [bus_keys.waits()], [run.agent_id, run.id, now, deadline, *targets])
    return [_text(p) for p in path] if path else None


async def end_wait(redis: aioredis.Redis, run: Run) -> None:
    """``run``'s agent no longer waits: remove its edges from the wait-for graph."""
    await _END(redis, [bus_keys.waits()], [run.agent_id, run.id])


# KEYS: the timers. ARGV: how many. Returns {now, due members} on the server's clock (a script
# that only reads may call TIME).
_DUE = LuaScript("""
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return {tostring(now), redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])}
""")

# KEYS: the timers. ARGV: now, then members: removes those whose deadline is still <= now.
_REMOVE_DUE = LuaScript("""
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[1]) then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return 0
""")


async def fire_timers(redis: aioredis.Redis, after_signal: Callable[[], None]) -> None:
    """Wake agents whose waiting runs reached their deadline (on the server's clock).

    Signal first, remove after: a worker that dies in between leaves the timer to fire again,
    never a waiting run with no wake-up. Two workers may both signal a timer; the second
    wake-up finds nothing to do. ``after_signal`` is a fault point for tests.
    """
    now, due = await _DUE(redis, [bus_keys.timers()], [100])
    if not due:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for member in due:
            agent_id = _text(member)
            pipe.xadd(bus_keys.ready(agent_id), {"a": agent_id})
        await pipe.execute()
    after_signal()
    # Only those still due: the agent may have armed a later wait's timer meanwhile.
    await _REMOVE_DUE(redis, [bus_keys.timers()], [now, *due])
