"""The chaos checks catch what they are for: a doubled or lost edit, a broken history."""

from __future__ import annotations

from collections import Counter

import msgspec
import redis.asyncio as aioredis

from storage.blocks import BlockStore, new_block
from storage.records import Block
from tests.chaos._check import Findings, _history


async def _append(store: BlockStore, block_id: str, marker: str, edit_id: str) -> None:
    """What core_memory_append does to a block, keyed by a step's edit id."""

    def change(block: Block) -> Block:
        value = f"{block.value}\n<{marker}>" if block.value else f"<{marker}>"
        return msgspec.structs.replace(block, value=value)

    await store.update(block_id, change, editor="test", edit_id=edit_id)


def test_tally_counts_shortfalls_as_lost_and_extras_as_duplicated() -> None:
    found = Findings()
    found.tally("reply", Counter({"a": 2, "c": 1}), ["a", "b", "c"])
    assert (found.lost, found.duplicated) == (1, 1)
    assert found.problems == ["reply: 'a' 2 times, expected 1", "reply: 'b' missing (0 of 1)"]


async def test_history_check_finds_a_doubled_edit_and_a_lost_one(
    redis_client: aioredis.Redis,
) -> None:
    store = BlockStore(redis_client)
    block = await store.create(new_block("team"))
    await _append(store, block.id, "j1", "s1")
    await _append(store, block.id, "j1", "s1")  # the same edit id: a no-op, as it must be
    await _append(store, block.id, "j2", "s2")
    found = Findings()
    await _history(redis_client, block.id, "team", ["j1", "j2"], found)
    assert (found.lost, found.duplicated, found.problems) == (0, 0, [])

    await _append(store, block.id, "j2", "s3")  # a re-run step that edited twice
    found = Findings()
    await _history(redis_client, block.id, "team", ["j1", "j2", "j3"], found)
    assert found.duplicated == 2  # once in the history, once in the value
    assert found.lost == 2  # j3: neither in the history nor in the value
