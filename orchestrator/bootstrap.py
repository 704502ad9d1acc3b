"""Process bootstrap: building a :class:`agents.runtime.Runtime` from the environment."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from agents.llm import LLMSettings
from agents.runtime import LLMPool, Runtime
from agents.sandbox import SandboxSettings
from agents.tool_envs import ToolEnvs
from agents.tools.registry import ImportPathRunner, SandboxRunner
from bus import BusSettings, connect, resolve_redis_url
from orchestrator.shared_archival import SharedArchival
from storage.settings import StorageSettings

__all__ = ("open_runtime",)


@asynccontextmanager
async def open_runtime(
    *, redis_url: str | None = None, own_archival: bool = False
) -> AsyncIterator[Runtime]:
    """A runtime on the configured (or local) Redis, Qdrant, embedders and model endpoint.

    Args:
        redis_url: use this Redis instead of the configured or local one.
        own_archival: open the passage engine now (long-running processes do, so that they
            serve the others); otherwise it opens on first use.
    """
    if redis_url is None:
        redis_url = await anyio.to_thread.run_sync(resolve_redis_url, BusSettings.from_env())
    redis = connect(redis_url)
    storage = StorageSettings.from_env()
    sandbox_settings = SandboxSettings.from_env()
    sandbox_env: dict[str, str] = {}
    api_url = os.environ.get("MEMGRID_API_URL")
    if api_url:  # so that tools call back: memgrid's name and the one letta-client reads
        sandbox_env.update(MEMGRID_API_URL=api_url, LETTA_BASE_URL=api_url)
        api_key = os.environ.get("MEMGRID_API_KEY")
        if api_key:  # whoever registered a tool holds the key already (docs/security.md)
            sandbox_env.update(MEMGRID_API_KEY=api_key, LETTA_API_KEY=api_key)
    envs = ToolEnvs(sandbox_settings.envs) if sandbox_settings.envs is not None else None
    try:
        async with anyio.create_task_group() as tg:
            archival = SharedArchival(storage, redis, tg)
            if own_archival:
                await archival.inner()
            rt = Runtime(
                redis=redis,
                llm=LLMPool(LLMSettings.from_env()),
                archival=archival,
                custom_tools=ImportPathRunner(
                    sandbox=SandboxRunner(sandbox_settings, env=sandbox_env, envs=envs)
                ),
            )
            try:
                yield rt
            finally:
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await rt.aclose()
                    await archival.aclose()
    except BaseExceptionGroup as group:
        # The caller's own error, raised in the body, comes out of the task group wrapped:
        # hand it back as it was raised.
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await redis.aclose()


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found += _leaves(exc)
        else:
            found.append(exc)
    return found
