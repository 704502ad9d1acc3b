"""The memory block registry: blocks are records of their own so many agents can attach one.

Every write is a compare-and-set on the block's ``version`` run as one Lua script, so that
concurrent edits never lose an update, and every write appends to the block's history, which
keeps the latest versions (``MEMGRID_BLOCK_HISTORY_MAX``). A write may carry an ``edit_id``
(the step and tool call that made it): a second write with the same id is a no-op, which keeps
redelivered steps from editing memory twice.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from storage import keys
from storage._util import fetch, fetch_many, text_or_none, texts
from storage.errors import Conflict, InvalidRecord, NotFound, StaleWriter
from storage.records import Block, BlockEdit, decode, encode, new_id, now

__all__ = ("BlockStore", "new_block", "validate_block")

# KEYS: block, history, edit marker (may be a dummy key in the same slot), fence (or dummy).
# ARGV: expected version ("" = must not exist), new json, history json, marker ttl ("" = none),
#       expected fencing token ("" = unfenced), history entries to keep.
_CAS = """
if ARGV[5] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[5] then return {4, ''} end
local current = redis.call('GET', KEYS[1])
if ARGV[4] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  return {2, current or ''}
end
if ARGV[1] == '' then
  if current then return {0, current} end
else
  if not current then return {3, ''} end
  local version = cjson.decode(current)['version'] or 1
  if tostring(version) ~= ARGV[1] then return {0, current} end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[6]), -1)
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], '1', 'EX', tonumber(ARGV[4])) end
return {1, ARGV[2]}
"""

_EDIT_MARKER_TTL_S = 7 * 24 * 3600
_MAX_CAS_RETRIES = 50


def validate_block(block: Block) -> None:
    """Raise :class:`InvalidRecord` when a block breaks a rule."""
    if not block.label.strip():
        raise InvalidRecord("a block needs a non-empty label, e.g. 'human' or 'persona'")
    if block.limit <= 0:
        raise InvalidRecord(f"block {block.label!r}: limit must be positive, got {block.limit}")
    if len(block.value) > block.limit:
        raise InvalidRecord(
            f"block {block.label!r}: value has {len(block.value)} characters, over its limit "
            f"of {block.limit}; shorten the value or raise the limit"
        )


class BlockStore:
    """Blocks in Redis with versioned compare-and-set writes and a bounded history.

    Args:
        redis: an asyncio client.
        history_max: how many of a block's latest versions its history keeps
            (``MEMGRID_BLOCK_HISTORY_MAX``); each write drops the older ones.
    """

    def __init__(self, redis: aioredis.Redis, *, history_max: int = 100) -> None:
        if history_max < 1:
            raise InvalidRecord(f"history_max must be at least 1, got {history_max}")
        self._redis = redis
        self._history_max = history_max
        self._cas = redis.register_script(_CAS)

    async def create(self, block: Block, *, editor: str = "api") -> Block:
        """Store a new block (its id must be new) and its first history entry."""
        validate_block(block)
        edit = BlockEdit(block_id=block.id, version=block.version, value=block.value, editor=editor)
        status, _ = await self._run_cas(block, "", edit, None)
        if status == 0:
            raise Conflict(f"block {block.id} already exists")
        await self._redis.sadd(keys.blocks_all(), block.id)
        return block

    async def get(self, block_id: str) -> Block:
        return await fetch(
            self._redis, keys.block(block_id), Block, f"no block with id {block_id!r}"
        )

    async def get_many(self, block_ids: Sequence[str]) -> builtins.list[Block]:
        """The blocks that exist, in the order asked (missing ids are skipped)."""
        return await fetch_many(self._redis, [keys.block(b) for b in block_ids], Block)

    async def list(self, *, label: str | None = None) -> builtins.list[Block]:
        ids = sorted(texts(await self._redis.smembers(keys.blocks_all())))
        blocks = await self.get_many(ids)
        if label is not None:
            blocks = [b for b in blocks if b.label == label]
        return sorted(blocks, key=lambda b: b.created_at)

    async def update(
        self,
        block_id: str,
        change: Callable[[Block], Block],
        *,
        editor: str,
        edit_id: str | None = None,
        fence: tuple[str, str] | None = None,
    ) -> Block:
        """Apply ``change`` to the latest version with compare-and-set, retrying on conflict.

        ``change`` receives the current block and returns the new one (it may raise to refuse;
        it is re-run on the fresh value after a conflict, so an append is never lost).
        ``fence`` is ``(fence key, token)`` of the editing agent's lease: the write is refused
        with :class:`StaleWriter` when the token is no longer current (checked in the write's
        script on one Redis; just before it on a cluster, where the fence has another slot).
        """
        for _ in range(_MAX_CAS_RETRIES):
            current = await self.get(block_id)
            changed = change(current)
            updated = _next_version(current, changed)
            validate_block(updated)
            edit = BlockEdit(
                block_id=block_id, version=updated.version, value=updated.value, editor=editor
            )
            status, raw = await self._run_cas(updated, str(current.version), edit, edit_id, fence)
            if status in (1, 2):
                return decode(Block, raw) if raw else current
            if status == 3:
                raise NotFound(f"no block with id {block_id!r}")
            if status == 4:
                raise StaleWriter(f"block {block_id}: the editing agent's lease was lost")
        raise Conflict(
            f"block {block_id} changed {_MAX_CAS_RETRIES} times while being written; try again"
        )

    async def set_fields(self, block_id: str, *, editor: str = "api", **fields: Any) -> Block:
        """Update plain fields (value, limit, description, label, read_only, metadata)."""
        allowed = {"value", "limit", "description", "label", "read_only", "metadata"}
        unknown = set(fields) - allowed
        if unknown:
            raise InvalidRecord(f"cannot set block fields {sorted(unknown)}")

        def change(block: Block) -> Block:
            return _replace(block, **fields)

        return await self.update(block_id, change, editor=editor)

    async def history(self, block_id: str) -> builtins.list[BlockEdit]:
        raws = await self._redis.lrange(keys.block_history(block_id), 0, -1)
        if not raws and not await self._redis.exists(keys.block(block_id)):
            raise NotFound(f"no block with id {block_id!r}")
        return [decode(BlockEdit, raw) for raw in raws]

    async def delete(self, block_id: str) -> builtins.list[str]:
        """Delete a block; returns the ids of agents it was attached to (callers detach)."""
        if not await self._redis.exists(keys.block(block_id)):
            raise NotFound(f"no block with id {block_id!r}")
        agents = sorted(texts(await self._redis.smembers(keys.block_agents(block_id))))
        await self._redis.delete(
            keys.block(block_id), keys.block_history(block_id), keys.block_agents(block_id)
        )
        await self._redis.srem(keys.blocks_all(), block_id)
        return agents

    async def mark_attached(self, block_id: str, agent_id: str, attached: bool) -> None:
        if attached:
            await self._redis.sadd(keys.block_agents(block_id), agent_id)
        else:
            await self._redis.srem(keys.block_agents(block_id), agent_id)

    async def attached_agents(self, block_id: str) -> builtins.list[str]:
        return sorted(texts(await self._redis.smembers(keys.block_agents(block_id))))

    async def attached_counts(self, block_ids: Sequence[str]) -> builtins.list[int]:
        """How many agents each block is attached to, in order (one pipeline)."""
        async with self._redis.pipeline(transaction=False) as pipe:  # a slot per block
            for block_id in block_ids:
                pipe.scard(keys.block_agents(block_id))
            return [int(n) for n in await pipe.execute()]

    async def _run_cas(
        self,
        block: Block,
        expected: str,
        edit: BlockEdit,
        edit_id: str | None,
        fence: tuple[str, str] | None = None,
    ) -> tuple[int, bytes]:
        marker = f"{keys.block(block.id)}:edit:{edit_id or '-'}"
        fence_key, token = fence if fence is not None else (marker, None)
        if token is not None and isinstance(self._redis, RedisCluster):
            # The fence lives in the editing agent's hash slot, the block in its own: on a
            # cluster no script may read both, so the fence is checked just before the write.
            # A writer whose lease lapses between the two writes what the new holder, which
            # replays the same journaled step with the same edit id, then finds done (the
            # edit marker, in the block's slot): the edit still lands once.
            if text_or_none(await self._redis.get(fence_key)) != token:
                return 4, b""
            fence_key, token = marker, None
        result = await self._cas(
            keys=[keys.block(block.id), keys.block_history(block.id), marker, fence_key],
            args=[
                expected,
                encode(block),
                encode(edit),
                str(_EDIT_MARKER_TTL_S) if edit_id else "",
                "" if token is None else str(token),
                self._history_max,
            ],
        )
        return int(result[0]), bytes(result[1])


def new_block(label: str, value: str = "", **fields: Any) -> Block:
    """A new block record with a fresh id."""
    return Block(id=new_id("block"), label=label, value=value, **fields)


def _replace(block: Block, **fields: Any) -> Block:
    return msgspec.structs.replace(block, **fields)


def _next_version(current: Block, changed: Block) -> Block:
    return _replace(changed, version=current.version + 1, updated_at=now())
