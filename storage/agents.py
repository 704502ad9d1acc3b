"""Agent records in Redis: create, read, list, update, delete, with unique names.

An agent's record holds what the step loop needs every step (system prompt, model, tools,
rules, attached block ids, in-context message ids, summary). Messages and blocks are records of
their own (see :mod:`storage.messages` and :mod:`storage.blocks`).
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis

from storage import keys
from storage._agent_pages import UnknownCursor, backfill_created_index, page_ids, records
from storage._util import text, texts
from storage.errors import Conflict, InvalidRecord, NotFound
from storage.records import Agent, decode, encode, now

__all__ = ("AgentStore", "UnknownCursor")

# KEYS: names hash, agent key, all-agents set, creation index. ARGV: name, id, json,
# created_at.
_CREATE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
return 1
"""

# KEYS: names hash, agent key. ARGV: old name, new name, id, json, SHA1 of the record as read.
# Returns 1 (written), 0 (the new name is taken), -1 (the record changed since it was read: a
# step committed meanwhile) or -2 (the agent is gone).
_RENAME = """
local current = redis.call('GET', KEYS[2])
if not current then return -2 end
if redis.sha1hex(current) ~= ARGV[5] then return -1 end
if ARGV[1] ~= ARGV[2] then
  if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then return 0 end
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('SET', KEYS[2], ARGV[4])
return 1
"""


# How often an edit re-reads and retries when a step commits between its read and its write.
EDIT_ATTEMPTS = 20

Edit = Callable[[Agent], Mapping[str, Any] | None]


class AgentStore:
    """Agents in Redis. Names are unique (a hash name -> id guards them)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._create = redis.register_script(_CREATE)
        self._rename = redis.register_script(_RENAME)

    async def create(self, agent: Agent) -> Agent:
        _validate(agent)
        created = await self._create(
            keys=[
                keys.agent_names(),
                keys.agent(agent.id),
                keys.agents_all(),
                keys.agents_by_created(),
            ],
            args=[agent.name, agent.id, encode(agent), repr(agent.created_at)],
        )
        if not created:
            raise Conflict(f"an agent named {agent.name!r} already exists; pick another name")
        if agent.tags:
            async with self._redis.pipeline(transaction=False) as pipe:
                for tag in agent.tags:
                    pipe.sadd(keys.agent_tags(tag), agent.id)
                await pipe.execute()
        return agent

    async def get(self, agent_id: str) -> Agent:
        return (await self.get_raw(agent_id))[0]

    async def get_raw(self, agent_id: str) -> tuple[Agent, bytes]:
        """The agent and its record as stored (for a compare-and-set on it later)."""
        raw = await self._redis.get(keys.agent(agent_id))
        if raw is None:
            raise NotFound(f"no agent with id {agent_id!r}")
        raw = raw.encode() if isinstance(raw, str) else raw  # decode_responses=False: bytes
        return decode(Agent, raw), raw

    async def id_for_name(self, name: str) -> str | None:
        raw = await self._redis.hget(keys.agent_names(), name)
        return text(raw) if raw is not None else None

    async def resolve(self, name_or_id: str) -> Agent:
        """The agent with this id, else with this name."""
        raw = await self._redis.get(keys.agent(name_or_id))
        if raw is not None:
            return decode(Agent, raw)
        agent_id = await self.id_for_name(name_or_id)
        if agent_id is None:
            raise NotFound(f"no agent named or with id {name_or_id!r}; see `memgrid agents list`")
        return await self.get(agent_id)

    async def list(
        self,
        *,
        name: str | None = None,
        tags: Sequence[str] = (),
        match_all_tags: bool = False,
    ) -> builtins.list[Agent]:
        """Agents, oldest first, optionally filtered by exact name and tags."""
        if name is not None:
            agent_id = await self.id_for_name(name)
            ids = [agent_id] if agent_id else []
        elif tags:
            tag_keys = [keys.agent_tags(t) for t in tags]
            members = await (
                self._redis.sinter(tag_keys) if match_all_tags else self._redis.sunion(tag_keys)
            )
            ids = texts(members)
        else:
            ids = texts(await self._redis.smembers(keys.agents_all()))
        if not ids:
            return []
        raws = await self._redis.mget([keys.agent(i) for i in ids])
        agents = [decode(Agent, raw) for raw in raws if raw is not None]
        return sorted(agents, key=lambda a: (a.created_at, a.id))

    async def page(
        self,
        *,
        name: str | None = None,
        tags: Sequence[str] = (),
        match_all_tags: bool = False,
        query_text: str | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> builtins.list[Agent]:
        """One page of agents in creation order (newest first with ``descending``), filtered
        by exact name, tags (any, or all) and a substring of the name (any case); every filter
        given applies. Only the page's records are read. ``after``/``before`` are agent ids.

        Raises:
            UnknownCursor: a cursor that is not in the filtered listing (its ``field`` says
                which).
        """
        await backfill_created_index(self._redis)
        ids = await page_ids(
            self._redis,
            name=name,
            tags=tags,
            match_all_tags=match_all_tags,
            query_text=query_text,
            after=after,
            before=before,
            limit=limit,
            descending=descending,
        )
        return await records(self._redis, ids)

    async def update(self, agent_id: str, **fields: Any) -> Agent:
        """Change fields of an agent and save it; tags are re-indexed. A compare-and-set: the
        fields not named (a step's ``message_ids``, ``summary``...) stay as stored."""
        return await self.change(agent_id, lambda _current: fields)

    async def change(self, agent_id: str, edit: Edit) -> Agent:
        """Apply ``edit`` to the stored agent with a compare-and-set on the whole record.

        ``edit`` gets the agent as stored and returns the fields to change (nothing: no write);
        it may raise to refuse. When the record changed between the read and the write (a step
        committed its messages), nothing is written and ``edit`` runs again on the new record,
        so an edit never puts back what a step committed. Fields computed from the agent (a
        list with one more id) must be computed by ``edit``, not before.

        Raises:
            NotFound: no such agent (or it was deleted during the edit).
            Conflict: the new name is taken, or the record kept changing.
        """
        for _attempt in range(EDIT_ATTEMPTS):
            current, raw = await self.get_raw(agent_id)
            fields = edit(current)
            if not fields:
                return current
            updated = msgspec.structs.replace(current, **{**fields, "updated_at": now()})
            _validate(updated)
            outcome = int(
                await self._rename(
                    keys=[keys.agent_names(), keys.agent(agent_id)],
                    args=[
                        current.name,
                        updated.name,
                        agent_id,
                        encode(updated),
                        hashlib.sha1(raw).hexdigest(),
                    ],
                )
            )
            if outcome == -1:
                continue
            if outcome == -2:
                raise NotFound(f"no agent with id {agent_id!r}")
            if outcome == 0:
                raise Conflict(f"an agent named {updated.name!r} already exists; pick another name")
            if "tags" in fields:
                await self._reindex_tags(agent_id, current.tags, updated.tags)
            return updated
        raise Conflict(
            f"agent {agent_id!r} changed {EDIT_ATTEMPTS} times while this edit was being "
            "written (busy with steps); send the edit again"
        )

    async def _reindex_tags(
        self, agent_id: str, before: Sequence[str], after: Sequence[str]
    ) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for tag in set(before) - set(after):
                pipe.srem(keys.agent_tags(tag), agent_id)
            for tag in after:
                pipe.sadd(keys.agent_tags(tag), agent_id)
            await pipe.execute()

    def stage_save(self, pipe: aioredis.client.Pipeline, agent: Agent) -> bytes:
        """Add a write of ``agent`` (name unchanged) to the caller's transaction; returns the
        record as it will be stored."""
        raw = encode(agent)
        pipe.set(keys.agent(agent.id), raw)
        return raw

    async def delete(self, agent_id: str) -> Agent:
        """Delete the record and its indexes. Messages and blocks are cleaned by the caller."""
        agent = await self.get(agent_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.agent(agent_id))
            pipe.hdel(keys.agent_names(), agent.name)
            pipe.srem(keys.agents_all(), agent_id)
            pipe.zrem(keys.agents_by_created(), agent_id)
            for tag in agent.tags:
                pipe.srem(keys.agent_tags(tag), agent_id)
            await pipe.execute()
        return agent

    async def count(self) -> int:
        return int(await self._redis.scard(keys.agents_all()))


_MAX_NAME = 256


def _validate(agent: Agent) -> None:
    # Names are free text as in Letta ("Support agent 2" is fine: quote it in a shell), but
    # not empty, not padded, no control characters, and short enough to show in a table.
    name = agent.name
    if not name.strip():
        raise InvalidRecord("an agent needs a non-empty name")
    if name != name.strip():
        raise InvalidRecord(f"name {name!r} starts or ends with spaces; remove them")
    if len(name) > _MAX_NAME:
        raise InvalidRecord(f"name is {len(name)} characters long; at most {_MAX_NAME}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidRecord(f"name {name!r} contains control characters (newline, tab...)")
    if agent.max_steps < 1:
        raise InvalidRecord(f"max_steps must be at least 1, got {agent.max_steps}")
    if agent.context_window < 512:
        raise InvalidRecord(
            f"context_window must be at least 512 tokens, got {agent.context_window}"
        )
