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
from storage._util import by_id_or_name, mget, text, texts
from storage.errors import Conflict, InvalidRecord, NotFound
from storage.records import Agent, decode, encode, now

__all__ = ("AgentStore", "UnknownCursor")

# Every script here touches one hash slot (Redis Cluster): the names hash (``mg:agent-names``)
# and an agent's keys (``mg:{<id>}:...``) are changed by separate single-slot steps, in an
# order that leaves, after a crash between two, at most a name that points to no agent or to
# an agent no longer so named; :meth:`AgentStore.id_for_name` checks the record and skips both.

# KEYS: names hash. ARGV: name, id, the ids its owner may be replaced for ('' = none). Claims
# the name for the id unless another agent holds it; returns 1 (claimed or already the id's)
# or 0 (taken).
_CLAIM_NAME = """
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if holder and holder ~= ARGV[2] and holder ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: names hash. ARGV: name, id. Removes the name only while it is the id's.
_DROP_NAME = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1])
"""

# KEYS: agent key. ARGV: json, SHA1 of the record as read. Returns 1 (written), -1 (the record
# changed since it was read: a step committed meanwhile) or -2 (the agent is gone).
_SAVE_IF_UNCHANGED = """
local current = redis.call('GET', KEYS[1])
if not current then return -2 end
if redis.sha1hex(current) ~= ARGV[2] then return -1 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


# How often an edit re-reads and retries when a step commits between its read and its write.
EDIT_ATTEMPTS = 20

Edit = Callable[[Agent], Mapping[str, Any] | None]


class AgentStore:
    """Agents in Redis. Names are unique (a hash name -> id guards them)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._claim_name = redis.register_script(_CLAIM_NAME)
        self._drop_name = redis.register_script(_DROP_NAME)
        self._save = redis.register_script(_SAVE_IF_UNCHANGED)

    async def create(self, agent: Agent) -> Agent:
        _validate(agent)
        # The record first (its id is new), then the name (the commit point: from then on the
        # agent is found by name and id), then the list, then the creation index (the pages of
        # GET /v1/agents). A crash after the record leaves an unreachable record; after the
        # name, an agent missing from the list until deleted; after the list, one missing from
        # the creation index until the next page() extends it (backfill_created_index: the two
        # sizes differ).
        if not await self._redis.set(keys.agent(agent.id), encode(agent), nx=True):
            raise Conflict(f"an agent with id {agent.id!r} already exists")
        if not await self._take_name(agent.name, agent.id):
            await self._redis.delete(keys.agent(agent.id))
            raise Conflict(f"an agent named {agent.name!r} already exists; pick another name")
        await self._redis.sadd(keys.agents_all(), agent.id)
        await self._redis.zadd(keys.agents_by_created(), {agent.id: agent.created_at})
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
        """The id of the agent named ``name``: a name entry left by a crash between the steps
        of a create, rename or delete (its agent gone, or renamed) counts as no agent."""
        raw = await self._redis.hget(keys.agent_names(), name)
        if raw is None:
            return None
        agent_id = text(raw)
        record = await self._redis.get(keys.agent(agent_id))
        if record is None or decode(Agent, record).name != name:
            return None
        return agent_id

    async def _take_name(self, name: str, agent_id: str) -> bool:
        """Claim ``name`` for ``agent_id``; a leftover entry (see :meth:`id_for_name`) is
        replaced. Whether the name is the agent's now."""
        for _attempt in range(3):
            raw = await self._redis.hget(keys.agent_names(), name)
            leftover = ""
            if raw is not None and text(raw) != agent_id:
                if await self.id_for_name(name) is not None:
                    return False
                leftover = text(raw)
            claimed = await self._claim_name(
                keys=[keys.agent_names()], args=[name, agent_id, leftover]
            )
            if int(claimed):
                return True
        return False

    async def resolve(self, name_or_id: str) -> Agent:
        """The agent with this id, else with this name."""
        missing = f"no agent named or with id {name_or_id!r}; see `memgrid agents list`"
        return await by_id_or_name(name_or_id, self.get, self.get_by_name, missing)

    async def get_by_name(self, name: str) -> Agent | None:
        """The agent named ``name``, or ``None``."""
        agent_id = await self.id_for_name(name)
        return None if agent_id is None else await self.get(agent_id)

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
            # One SMEMBERS per tag (each tag's set has its own hash slot), combined here.
            async with self._redis.pipeline(transaction=False) as pipe:
                for tag in tags:
                    pipe.smembers(keys.agent_tags(tag))
                found = [set(texts(members)) for members in await pipe.execute()]
            ids = sorted(set.intersection(*found) if match_all_tags else set.union(*found))
        else:
            ids = texts(await self._redis.smembers(keys.agents_all()))
        if not ids:
            return []
        raws = await mget(self._redis, [keys.agent(i) for i in ids])
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
        agents = await records(self._redis, ids)
        # A name entry left by a crash between a rename's steps still names the renamed
        # agent (see id_for_name): its record says which name is the agent's.
        if name is not None:
            agents = [a for a in agents if a.name == name]
        if query_text:
            agents = [a for a in agents if query_text.lower() in a.name.lower()]
        return agents

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
            renamed = updated.name != current.name
            # A rename: the new name first, then the record (compare-and-set), then the old
            # name goes. Each a single-slot step; a crash between them leaves a name entry
            # that id_for_name sees through (its record carries the other name).
            if renamed and not await self._take_name(updated.name, agent_id):
                raise Conflict(f"an agent named {updated.name!r} already exists; pick another name")
            outcome = int(
                await self._save(
                    keys=[keys.agent(agent_id)],
                    args=[encode(updated), hashlib.sha1(raw).hexdigest()],
                )
            )
            if outcome != 1 and renamed:
                await self._drop_name(keys=[keys.agent_names()], args=[updated.name, agent_id])
            if outcome == -1:
                continue
            if outcome == -2:
                raise NotFound(f"no agent with id {agent_id!r}")
            if renamed:
                await self._drop_name(keys=[keys.agent_names()], args=[current.name, agent_id])
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
        # The record first: once it is gone the agent is gone everywhere (a name or list entry
        # left by a crash after it points to no record, and readers skip it: a page of
        # GET /v1/agents holding it shows one agent fewer).
        await self._redis.delete(keys.agent(agent_id))
        async with self._redis.pipeline(transaction=False) as pipe:  # keys of several slots
            pipe.srem(keys.agents_all(), agent_id)
            pipe.zrem(keys.agents_by_created(), agent_id)
            for tag in agent.tags:
                pipe.srem(keys.agent_tags(tag), agent_id)
            await pipe.execute()
        await self._drop_name(keys=[keys.agent_names()], args=[agent.name, agent_id])
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
