"""``/v1/blocks``: the memory block registry (blocks that agents attach and share)."""

from __future__ import annotations

import contextlib
from typing import Any

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from orchestrator.api.paging import Paging, ordered
from orchestrator.api.schemas import BlockUpdateIn, CreateBlockIn
from orchestrator.api.state import Api
from orchestrator.api.views import BlockView, Deleted, block_view
from storage.blocks import new_block
from storage.errors import NotFound

__all__ = ("BlocksController", "block_changes")

DEFAULT_LIMIT = 5000


def block_changes(data: BlockUpdateIn) -> dict[str, Any]:
    """The fields of a ``BlockUpdate`` that were given, as :meth:`BlockStore.set_fields` takes."""
    fields: dict[str, Any] = {}
    for name in ("value", "limit", "label", "description", "read_only", "metadata"):
        value = getattr(data, name)
        if value is not None:
            fields[name] = dict(value) if name == "metadata" else value
    return fields


class BlocksController(Controller):
    """Create, list, retrieve, modify and delete blocks."""

    path = "/v1/blocks"
    tags = ["blocks"]

    @post("/", status_code=200)
    async def create_block(self, data: JSONBody[CreateBlockIn], api: Api) -> BlockView:
        """Create a block; it outlives the agents it is attached to."""
        metadata = {**(data.metadata or {}), "shared": "true"}
        block = new_block(
            data.label,
            data.value,
            limit=data.limit if data.limit is not None else max(DEFAULT_LIMIT, len(data.value)),
            description=data.description or "",
            read_only=data.read_only,
            metadata=metadata,
        )
        return block_view(await api.rt.blocks.create(block, editor="api"))

    @get("/", dependencies=ordered(50))
    async def list_blocks(
        self,
        api: Api,
        *,
        label: FromQuery[str | None] = None,
        name: FromQuery[str | None] = None,
        paging: Paging,
    ) -> list[BlockView]:
        """Blocks, oldest first (``order=desc``: newest first)."""
        blocks = await api.rt.blocks.list(label=label)
        return [block_view(b) for b in paging.of(blocks, lambda b: b.id)]

    @get("/count")
    async def count_blocks(self, api: Api) -> int:
        """How many blocks there are."""
        return len(await api.rt.blocks.list())

    @get("/{block_id:str}")
    async def retrieve_block(self, block_id: FromPath[str], api: Api) -> BlockView:
        """A block by id."""
        return block_view(await api.rt.blocks.get(block_id))

    @patch("/{block_id:str}")
    async def modify_block(
        self, block_id: FromPath[str], data: JSONBody[BlockUpdateIn], api: Api
    ) -> BlockView:
        """Change a block's value, limit, label, description, read-only flag or metadata."""
        fields = block_changes(data)
        if not fields:
            return block_view(await api.rt.blocks.get(block_id))
        return block_view(await api.rt.blocks.set_fields(block_id, editor="api", **fields))

    @delete("/{block_id:str}", status_code=200)
    async def delete_block(self, block_id: FromPath[str], api: Api) -> Deleted:
        """Delete a block and detach it from every agent."""
        for agent_id in await api.rt.blocks.delete(block_id):
            with contextlib.suppress(NotFound):
                await api.rt.agents.change(
                    agent_id,
                    lambda stored: (
                        {"block_ids": [b for b in stored.block_ids if b != block_id]}
                        if block_id in stored.block_ids
                        else None
                    ),
                )
        return Deleted(message=f"block {block_id} deleted")
