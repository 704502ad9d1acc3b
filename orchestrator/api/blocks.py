"""``/v1/blocks``: the memory block registry (blocks that agents attach and share)."""

from __future__ import annotations

import contextlib
from typing import Any, Literal

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
        """Create a block; it outlives the agents it is attached to. Its template name (0.11:
        ``name``), template flag, tags and project id are kept for listing blocks by them."""
        metadata = {**(data.metadata or {}), "shared": "true"}
        block = new_block(
            data.label,
            data.value,
            limit=data.limit if data.limit is not None else max(DEFAULT_LIMIT, len(data.value)),
            description=data.description or "",
            read_only=data.read_only,
            metadata=metadata,
            template_name=data.template_name or data.name,
            is_template=data.is_template,
            tags=list(dict.fromkeys(data.tags or [])),
            project_id=data.project_id,
        )
        return block_view(await api.rt.blocks.create(block, editor="api"))

    @get("/", dependencies=ordered(50))
    async def list_blocks(
        self,
        api: Api,
        *,
        label: FromQuery[str | None] = None,
        name: FromQuery[str | None] = None,
        templates_only: FromQuery[bool] = False,
        label_search: FromQuery[str | None] = None,
        value_search: FromQuery[str | None] = None,
        description_search: FromQuery[str | None] = None,
        tags: FromQuery[list[str] | None] = None,
        match_all_tags: FromQuery[bool] = False,
        project_id: FromQuery[str | None] = None,
        identity_id: FromQuery[str | None] = None,
        identifier_keys: FromQuery[list[str] | None] = None,
        connected_to_agents_count_gt: FromQuery[int | None] = None,
        connected_to_agents_count_lt: FromQuery[int | None] = None,
        connected_to_agents_count_eq: FromQuery[list[int] | None] = None,
        order_by: FromQuery[Literal["created_at"]] = "created_at",
        paging: Paging,
    ) -> list[BlockView]:
        """Blocks, oldest first (``order=desc``: newest first; ``order_by`` is always
        ``created_at``), with Letta's filters, all of which must hold:

        - ``label``: that label exactly; else ``label_search``: labels containing it.
        - ``value_search``, ``description_search``: values, descriptions containing it.
          The three searches ignore case (Letta's ``ILIKE``), not a full-text index.
        - ``name``: that template name (given at creation: ``template_name``, 0.11 ``name``).
        - ``templates_only``: templates (``is_template``) with true, the others without it.
        - ``tags``: any of them (all with ``match_all_tags=true``); ``project_id``: that one.
        - ``connected_to_agents_count_gt``/``_lt``/``_eq``: attached to more, fewer, or
          exactly one of these numbers of agents.
        - ``identity_id``, ``identifier_keys``: memgrid has no identities, so no block is
          connected to one and either filter lists nothing (as Letta does for a block
          without identities). Letta's hidden blocks do not exist here: none is left out.
        """
        if identity_id is not None or identifier_keys:
            return []
        wanted = (label_search or "").lower(), (value_search or "").lower()
        described = (description_search or "").lower()
        blocks = [
            b
            for b in await api.rt.blocks.list(label=label)
            if (label is not None or wanted[0] in b.label.lower())
            and wanted[1] in b.value.lower()
            and described in b.description.lower()
            and (name is None or b.template_name == name)
            and b.is_template == templates_only
            and (project_id is None or b.project_id == project_id)
            and (not tags or (all if match_all_tags else any)(t in b.tags for t in tags))
        ]
        counts = (connected_to_agents_count_gt, connected_to_agents_count_lt)
        if counts != (None, None) or connected_to_agents_count_eq is not None:
            attached = await api.rt.blocks.attached_counts([b.id for b in blocks])
            blocks = [
                b
                for b, n in zip(blocks, attached, strict=True)
                if (counts[0] is None or n > counts[0])
                and (counts[1] is None or n < counts[1])
                and (connected_to_agents_count_eq is None or n in connected_to_agents_count_eq)
            ]
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
