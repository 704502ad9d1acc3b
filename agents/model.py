"""The model seam: what the step loop needs from a model, and nothing more.

The loop asks a :class:`ModelPool` for the :class:`ChatModel` of an agent, then makes one
chat call per step, streamed when a client follows the run live. Embeddings are not here:
they belong to storage (``storage.embeddings``). A model subclasses :class:`ChatModel` and
writes one method, :meth:`ChatModel.complete`; the loop's ``chat`` and ``stream`` are built on
it.

Two implementations ship:

- :class:`agents.runtime.LLMPool`: any OpenAI-compatible endpoint through the ``openai`` SDK
  (:class:`agents.llm.LLMClient`), with retries, timeouts and error classification. Every
  process memgrid starts uses it; so do the API, acceptance and chaos suites, against the
  scripted model over loopback HTTP.
- :class:`agents.scripted.FunctionModel`: the scripted model's policies run in-process, with no
  server and no HTTP, for fast unit tests of the runtime (as pydantic-ai's ``FunctionModel``).

A model signals failures with the :class:`agents.llm.LLMError` tree; the loop handles nothing
else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec

from agents._completion import LLMResponse
from agents._streaming import DeltaSink
from storage.records import Agent

__all__ = ("ChatCall", "ChatModel", "ModelPool")


class ChatCall(msgspec.Struct, frozen=True):
    """One chat completion asked of a model: ``messages`` (OpenAI's chat format) offering
    ``tools`` (``tool_choice`` "auto" when None), the answer capped at ``max_tokens``."""

    model: str
    messages: Sequence[Mapping[str, Any]]
    tools: Sequence[Mapping[str, Any]] = ()
    tool_choice: str | None = None
    max_tokens: int | None = None


class ChatModel(Protocol):
    """One model endpoint: a chat completion, plain or streamed."""

    async def complete(self, call: ChatCall, sink: DeltaSink | None) -> LLMResponse:
        """The answer to ``call``; with a ``sink``, streamed: ``sink.restart()`` before every
        attempt, and each piece of the answer handed to it as it arrives.

        Raises:
            agents.llm.LLMError: the model failed for good (retries, if any, are spent).
        """
        ...

    async def chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        *,
        tool_choice: str | None = None,
        max_tokens: int | None = None,
    ) -> LLMResponse:
        """One completion of ``messages`` (OpenAI's chat format) offering ``tools``."""
        return await self.complete(ChatCall(model, messages, tools, tool_choice, max_tokens), None)

    async def stream(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        *,
        sink: DeltaSink,
        tool_choice: str | None = None,
        max_tokens: int | None = None,
    ) -> LLMResponse:
        """Like :meth:`chat`, handing each piece of the answer to ``sink`` as it arrives;
        ``sink.restart()`` comes before every attempt."""
        return await self.complete(ChatCall(model, messages, tools, tool_choice, max_tokens), sink)


class ModelPool(Protocol):
    """The models of one process: each agent's endpoint (agents may name their own)."""

    @property
    def endpoint(self) -> str | None:
        """Where agents that name no endpoint of their own go (``None``: the default)."""
        ...

    def for_agent(self, agent: Agent) -> ChatModel:
        """The model that serves ``agent``."""
        ...

    def reserve(self, connections: int) -> None:
        """Be ready for ``connections`` calls in flight at once (a worker's concurrency)."""
        ...

    async def aclose(self) -> None:
        """Release connections and anything else held."""
        ...
