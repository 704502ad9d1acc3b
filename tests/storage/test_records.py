"""Stored records carry their schema version; records written without one still decode."""

from __future__ import annotations

import msgspec
import pytest

from storage.records import SCHEMA_VERSION, Agent, Block, Message, Run, decode, encode, new_id


@pytest.mark.parametrize(
    "record",
    [
        Block(id=new_id("block"), label="human"),
        Message(id=new_id("message"), agent_id="agent-1", role="user", content="hi", seq=1),
        Run(id=new_id("run"), agent_id="agent-1"),
        Agent(id=new_id("agent"), name="a", system="s", model="m", embedding="e"),
    ],
    ids=lambda record: type(record).__name__,
)
def test_a_new_record_stores_its_schema_version(record: msgspec.Struct) -> None:
    raw = encode(record)
    assert msgspec.json.decode(raw)["v"] == SCHEMA_VERSION
    again = decode(type(record), raw)
    assert again == record
    assert encode(again) == raw  # encoding is stable (the fenced commit compares bytes)


def test_a_record_stored_without_a_version_decodes_as_version_1() -> None:
    legacy = b'{"id":"block-1","label":"human","value":"Name: Bob"}'
    block = decode(Block, legacy)
    assert (block.v, block.label, block.value) == (1, "human", "Name: Bob")
    assert msgspec.json.decode(encode(block))["v"] == 1
    stored = b'{"v":1,"id":"block-1","label":"human"}'
    assert decode(Block, stored).v == 1
