"""The runtime: the stores, model clients and seams one process needs to run agent steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import msgspec
import redis.asyncio as aioredis

from agents import metrics
from agents.gate import ToolGate
from agents.llm import LLMClient, LLMSettings
from agents.messaging import Router, WorkflowRouter
from agents.model import ModelPool
from agents.rules import RuleGate
from agents.tokens import TokenCounter
from agents.tools.base import Archival
from agents.tools.registry import CustomToolRunner, ImportPathRunner
from storage.agents import AgentStore
from storage.blocks import BlockStore
from storage.messages import MessageLog
from storage.records import Agent
from storage.settings import StorageSettings
from storage.tools import ToolStore

__all__ = ("LLMPool", "Runtime")


class LLMPool:
    """One :class:`LLMClient` per endpoint; agents may name their own endpoint. The
    :class:`agents.model.ModelPool` of OpenAI-compatible endpoints."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._clients: dict[str | None, LLMClient] = {}

    def reserve(self, connections: int) -> None:
        """Keep at least ``connections`` HTTP connections per endpoint (a worker's concurrency);
        applies to clients made from now on. Loads the ``openai`` SDK too (~0.65 s of CPU,
        ~0.3 ms a turn of a worker's first 5 s): a worker's first turn would pay it."""
        import openai  # noqa: F401  # only loaded, see agents.llm's imports

        if connections > self.settings.max_connections:
            self.settings = msgspec.structs.replace(self.settings, max_connections=connections)

    @property
    def endpoint(self) -> str | None:
        """``OPENAI_BASE_URL``, for agents that name no endpoint (``None``: OpenAI's)."""
        return self.settings.base_url

    def for_agent(self, agent: Agent) -> LLMClient:
        endpoint = agent.model_endpoint or self.settings.base_url
        client = self._clients.get(endpoint)
        if client is None:
            settings = msgspec.structs.replace(self.settings, base_url=endpoint)
            client = self._clients[endpoint] = LLMClient(settings)
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


@dataclass
class Runtime:
    """Everything the step loop touches. Build one per process; close it with ``aclose``."""

    redis: aioredis.Redis
    llm: ModelPool
    archival: Archival | None = None
    # The tool-rule engine and the workflow routes by default; OpenGate / OpenRouter (or any
    # ToolGate / Router) to run without them.
    gate: ToolGate = field(default_factory=RuleGate)
    router: Router = field(default_factory=WorkflowRouter)  # bound to ``redis`` below
    custom_tools: CustomToolRunner = field(default_factory=ImportPathRunner)
    clock: Callable[[], float] = time.time
    tool_timeout_s: float = 120.0
    counters: dict[str, TokenCounter] = field(default_factory=dict)
    settings: StorageSettings = field(default_factory=StorageSettings.from_env)
    # The process's metrics (a no-op until enabled), reached from here by the step loop.
    metrics: ClassVar[metrics.Observer] = metrics.Observer()

    def __post_init__(self) -> None:
        if isinstance(self.router, WorkflowRouter) and self.router.redis is None:
            self.router = WorkflowRouter(self.redis)
        self.agents = AgentStore(self.redis)
        self.blocks = BlockStore(self.redis, history_max=self.settings.block_history_max)
        self.messages = MessageLog(self.redis)
        self.tools = ToolStore(self.redis)

    def counter(self, model: str) -> TokenCounter:
        counter = self.counters.get(model)
        if counter is None:
            counter = self.counters[model] = TokenCounter()
        return counter

    async def aclose(self) -> None:
        await self.llm.aclose()
