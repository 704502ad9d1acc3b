"""Applying a loaded workflow: create or update its blocks, tools, agents and routes by name.

Re-applying is idempotent. A block's or persona's value is rewritten only when the file's value
changed since the last apply, so memory the agents edited themselves survives a re-run of an
unchanged workflow.
"""

from __future__ import annotations

import hashlib

import msgspec

from agents.manage import AgentSpec, BlockSpec, base_tool_names, create_agent
from agents.messaging import route
from agents.runtime import Runtime
from agents.tools.schema import schema_from_function
from orchestrator.workflow import AgentDef, BlockDef, Workflow
from storage import keys
from storage.blocks import new_block
from storage.errors import NotFound
from storage.records import Agent, Block, Tool, new_id

__all__ = ("Applied", "apply_workflow")


class Applied(msgspec.Struct, kw_only=True):
    """What an apply did, for the CLI to print."""

    agents: dict[str, Agent]
    blocks: dict[str, Block]
    created: list[str]
    updated: list[str]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


async def _sync_value(
    rt: Runtime, wf_key: str, marker: str, block: Block, value: str, editor: str
) -> Block:
    """Rewrite ``block``'s value only when the file's value changed since the last apply."""
    redis = rt.redis
    digest = _digest(value)
    previous = await redis.hget(wf_key, marker)
    if previous is not None and _text(previous) == digest:
        return block
    if block.value != value:
        block = await rt.blocks.set_fields(block.id, value=value, editor=editor)
    await redis.hset(wf_key, marker, digest)
    return block


async def _apply_block(rt: Runtime, wf: Workflow, spec: BlockDef, applied: Applied) -> Block:
    wf_key = keys.workflow(wf.name)
    existing = await rt.redis.hget(wf_key, f"block:{spec.label}")
    editor = f"workflow:{wf.name}"
    block: Block | None = None
    if existing is not None:
        try:
            block = await rt.blocks.get(_text(existing))
        except NotFound:
            block = None
    if block is None:
        block = await rt.blocks.create(
            new_block(
                spec.label,
                spec.value,
                limit=spec.limit,
                description=spec.description,
                read_only=spec.read_only,
                metadata={"shared": "true", "workflow": wf.name},
            ),
            editor=editor,
        )
        await rt.redis.hset(wf_key, mapping={f"block:{spec.label}": block.id})
        await rt.redis.hset(wf_key, f"value:block:{spec.label}", _digest(spec.value))
        applied.created.append(f"block {spec.label}")
        return block
    if (block.limit, block.description, block.read_only) != (
        spec.limit,
        spec.description,
        spec.read_only,
    ):
        block = await rt.blocks.set_fields(
            block.id,
            limit=max(spec.limit, len(block.value)),
            description=spec.description,
            read_only=spec.read_only,
            editor=editor,
        )
    block = await _sync_value(rt, wf_key, f"value:block:{spec.label}", block, spec.value, editor)
    applied.updated.append(f"block {spec.label}")
    return block


async def _apply_tools(rt: Runtime, wf: Workflow) -> None:
    for name, func in wf.tools.items():
        schema = schema_from_function(func)
        existing = await rt.tools.get_by_name(name)
        await rt.tools.upsert(
            Tool(
                id=existing.id if existing else new_id("tool"),
                name=name,
                description=schema.description,
                json_schema={**schema.json_schema(), "name": name},
                import_path=wf.tool_imports[name],
                tags=[f"workflow:{wf.name}"],
            )
        )


def _own_blocks(spec: AgentDef) -> list[BlockSpec]:
    blocks = [BlockSpec(label="persona", value=spec.persona or "")]
    if spec.human is not None:
        blocks.append(BlockSpec(label="human", value=spec.human))
    blocks += [  # a BlockDef has a BlockSpec's fields
        msgspec.convert(b, BlockSpec, from_attributes=True)
        for b in spec.memory_blocks
        if b.label not in {"persona", "human"}
    ]
    return blocks


async def _apply_agent(
    rt: Runtime, wf: Workflow, spec: AgentDef, shared: dict[str, Block], applied: Applied
) -> Agent:
    shared_ids = [shared[label].id for label in spec.blocks]
    tools = [*(base_tool_names(spec.agent_type) if spec.include_base_tools else ()), *spec.tools]
    agent_id = await rt.agents.id_for_name(spec.name)
    if agent_id is None:
        agent = await create_agent(
            rt,
            AgentSpec(
                name=spec.name,
                agent_type=spec.agent_type,
                system=spec.system,
                model=spec.model,
                embedding=spec.embedding,
                memory_blocks=_own_blocks(spec),
                block_ids=shared_ids,
                tools=spec.tools,
                include_base_tools=spec.include_base_tools,
                tool_rules=spec.tool_rules,
                tags=spec.tags,
                description=spec.description,
                metadata={"workflow": wf.name},
                context_window=spec.context_window,
                max_steps=spec.max_steps,
            ),
        )
        wf_key = keys.workflow(wf.name)
        for own in _own_blocks(spec):
            await rt.redis.hset(wf_key, f"value:{spec.name}:{own.label}", _digest(own.value))
        applied.created.append(f"agent {spec.name}")
        return agent
    current = await rt.agents.get(agent_id)
    blocks = await rt.blocks.get_many(current.block_ids)
    by_label = {b.label: b for b in blocks}
    wf_key = keys.workflow(wf.name)
    own_ids = []
    for own in _own_blocks(spec):
        block = by_label.get(own.label)
        if block is None or block.id in shared_ids:
            block = await rt.blocks.create(
                new_block(own.label, own.value, limit=own.limit, description=own.description),
                editor=f"workflow:{wf.name}",
            )
        else:
            block = await _sync_value(
                rt,
                wf_key,
                f"value:{spec.name}:{own.label}",
                block,
                own.value,
                f"workflow:{wf.name}",
            )
        own_ids.append(block.id)
    block_ids = [*shared_ids, *own_ids]
    problems = rt.gate.check(spec.tool_rules, tools)
    if problems:
        from storage.errors import InvalidRecord

        raise InvalidRecord(f"agent {spec.name!r}: invalid tool rules: " + "; ".join(problems))
    fields: dict[str, object] = {
        "tools": tools,
        "tool_rules": list(spec.tool_rules),
        "tags": list(spec.tags),
        "block_ids": block_ids,
        "description": spec.description,
        "agent_type": spec.agent_type,
    }
    for name in ("system", "model", "embedding", "context_window", "max_steps"):
        value = getattr(spec, name)
        if value is not None:
            fields[name] = value
    # A compare-and-set on the record as stored when written: a step that commits meanwhile
    # keeps its messages and summary.
    agent = await rt.agents.change(
        agent_id,
        lambda stored: {**fields, "metadata": {**stored.metadata, "workflow": wf.name}},
    )
    for block_id in set(current.block_ids) - set(block_ids):
        await rt.blocks.mark_attached(block_id, agent_id, False)
    for block_id in block_ids:
        await rt.blocks.mark_attached(block_id, agent_id, True)
    applied.updated.append(f"agent {spec.name}")
    return agent


async def apply_workflow(rt: Runtime, wf: Workflow) -> Applied:
    """Create or update everything the workflow declares."""
    applied = Applied(agents={}, blocks={}, created=[], updated=[])
    for spec in wf.blocks:
        applied.blocks[spec.label] = await _apply_block(rt, wf, spec, applied)
    await _apply_tools(rt, wf)
    for agent_spec in wf.agents:
        applied.agents[agent_spec.name] = await _apply_agent(
            rt, wf, agent_spec, applied.blocks, applied
        )
    routes_key = keys.workflow_routes(wf.name)
    routes = {route(r.from_, r.to) for r in wf.routes}
    old = {m.decode() if isinstance(m, bytes) else m for m in await rt.redis.smembers(routes_key)}
    # The routes set and the workflow hash have two hash slots (no transaction spans them on a
    # cluster): new routes first, then the dropped ones go, then the flag, so that a router
    # reading in between never refuses a route that both versions allow.
    async with rt.redis.pipeline(transaction=False) as pipe:
        if routes:
            pipe.sadd(routes_key, *routes)
        if old - routes:
            pipe.srem(routes_key, *(old - routes))
        pipe.hset(keys.workflow(wf.name), "routes_declared", "1" if wf.routes else "0")
        await pipe.execute()
    return applied
