"""The LLM client: any OpenAI-compatible endpoint through the ``openai`` SDK.

Errors (drawn as a tree)::

    LLMError (MemgridError)
    ├── ContextWindowExceeded   RuntimeFailure  the provider says the request is too long:
    │                                           compact and retry
    ├── LLMUnavailable          RuntimeFailure  retries exhausted on 429 / 5xx / timeouts /
    │                                           connection errors
    ├── LLMInvalidResponse      RuntimeFailure  retries exhausted on answers that are not chat
    │                                           completions
    └── LLMRejected             UserError       a 4xx that retrying cannot fix (bad key,
                                                unknown model...), or no endpoint at all

Retries use exponential backoff with full jitter and honour ``Retry-After``; every call makes
at most ``1 + max_retries`` requests. An endpoint that cannot be reached at all (connection
refused, a host name that does not resolve) gets one quick retry, not the backoff: nobody
listens there, and the error names the URL and what to set. A 200 whose body is not a chat
completion (broken JSON, no choices) is retried too: a proxy's hiccup looks like that.
Malformed tool-call JSON is not an error here: the raw arguments go back to the step loop,
which answers the model with a tool error.
"""

from __future__ import annotations

import os
import random
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from agents import metrics
from agents._completion import LLMResponse, Unparsable, parse
from agents._endpoint_errors import is_context_error, message_of, retry_after, unreachable
from agents._streaming import DeltaSink, stream_completion
from agents.model import ChatCall, ChatModel
from storage.errors import MemgridError, RuntimeFailure, UserError

if TYPE_CHECKING:
    # Loaded on the first model call (~0.65 s): commands that never call a model stay fast.
    import openai

__all__ = (
    "ContextWindowExceeded",
    "DeltaSink",
    "LLMClient",
    "LLMError",
    "LLMInvalidResponse",
    "LLMRejected",
    "LLMResponse",
    "LLMSettings",
    "LLMUnavailable",
    "model_name",
)

_OPENAI_URL = "https://api.openai.com/v1"
_UNREACHABLE_RETRIES = 1
_UNREACHABLE_DELAY_S = 0.2
# Prefixes stripped from handles; anything else is passed through (vLLM models contain '/').
_CONNECTIONS_PER_CLIENT = 4
# The SDK's telemetry headers (its platform, retry count and read timeout), left out of each
# call (the SDK's ``Omit``): no server needs them, and the 8 cost the HTTP stack ~0.1 ms of CPU
# a call to build, check and send.
_UNSENT_HEADERS = (
    "X-Stainless-Lang",
    "X-Stainless-Package-Version",
    "X-Stainless-OS",
    "X-Stainless-Arch",
    "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version",
    "X-Stainless-Retry-Count",
    "X-Stainless-Read-Timeout",
)
_PROVIDER_PREFIXES = ("openai/", "ollama/", "vllm/", "lmstudio/", "llamacpp/", "litellm/")


class LLMError(MemgridError):
    """Base class of LLM call failures."""


class ContextWindowExceeded(LLMError, RuntimeFailure):
    """The provider refused the request as longer than the model's context window."""


class LLMUnavailable(LLMError, RuntimeFailure):
    """The endpoint kept failing (rate limits, 5xx, timeouts) after every retry."""


class LLMInvalidResponse(LLMError, RuntimeFailure):
    """The endpoint kept answering 200 with something that is not a chat completion."""


class LLMRejected(LLMError, UserError):
    """The endpoint refused the request for a reason retrying will not fix."""


class LLMSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the model is. From the environment: ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``,
    ``MEMGRID_LLM_TIMEOUT`` (seconds per call, default 120), ``MEMGRID_LLM_RETRIES``
    (default 4). ``max_connections`` sizes the HTTP pool, kept-alive connections included: a
    worker sets it to its concurrency, so that many model calls in flight do not open and close
    a connection each (the SDK keeps only 100 alive)."""

    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 20.0
    max_connections: int = 100

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LLMSettings:
        env = os.environ if environ is None else environ
        try:
            timeout = float(env.get("MEMGRID_LLM_TIMEOUT") or 120.0)
            retries = int(env.get("MEMGRID_LLM_RETRIES") or 4)
        except ValueError as exc:
            raise ValueError(
                "MEMGRID_LLM_TIMEOUT must be seconds and MEMGRID_LLM_RETRIES an integer"
            ) from exc
        return cls(
            base_url=env.get("OPENAI_BASE_URL") or None,
            api_key=env.get("OPENAI_API_KEY") or None,
            timeout_s=timeout,
            max_retries=retries,
        )


def model_name(handle: str) -> str:
    """The model name to send for a handle such as ``openai/gpt-4o-mini``."""
    for prefix in _PROVIDER_PREFIXES:
        if handle.startswith(prefix):
            return handle[len(prefix) :]
    return handle


def _refused(exc: openai.APIStatusError) -> LLMError:
    """A request the endpoint will never take as it is: too long for the model's context
    window (the loop compacts and asks again), or refused outright."""
    if is_context_error(exc):
        return ContextWindowExceeded(message_of(exc))
    return LLMRejected(f"the model endpoint refused the request: {message_of(exc)}")


class LLMClient(ChatModel):
    """Chat completions with tools, with retries, timeouts and error classification: the
    :class:`agents.model.ChatModel` of an OpenAI-compatible endpoint."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        # Several SDK clients, each with a small connection pool, filled in order: httpcore
        # scans its whole pool on every request (a poll() of each idle connection), so one
        # pool of 500 connections cost ~5.5 ms of CPU a call with 500 in flight, 32 pools of
        # 16 ~1.5 ms; pools of 4 cost ~0.1 ms a call less than pools of 16 at 32 in flight. A
        # process with few calls in flight uses only the first.
        shards = max(1, -(-settings.max_connections // _CONNECTIONS_PER_CLIENT))
        self._per_client = -(-settings.max_connections // shards)
        self._clients: list[openai.AsyncOpenAI | None] = [None] * shards
        self._in_flight = [0] * shards
        self._tls: ssl.SSLContext | None = None  # one for all clients: each costs ~10 ms

    def _sdk_client(self, connections: int) -> openai.AsyncOpenAI:
        import httpx2  # the SDK's HTTP client interface (limits, TLS), over aiohttp here
        import openai

        settings = self.settings
        if self._tls is None:
            self._tls = httpx2.create_ssl_context()  # what each client would make: certifi, env
        return openai.AsyncOpenAI(
            base_url=settings.base_url,
            # Local servers (vLLM, Ollama, the scripted model) need no key; the SDK needs one.
            api_key=settings.api_key or "not-needed",
            timeout=settings.timeout_s,
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(
                verify=self._tls,
                timeout=settings.timeout_s,
                limits=httpx2.Limits(
                    max_connections=connections, max_keepalive_connections=connections
                ),
            ),
        )

    def _sdk(self, index: int) -> openai.AsyncOpenAI:
        client = self._clients[index]
        if client is None:
            client = self._clients[index] = self._sdk_client(self._per_client)
        return client

    def _take(self) -> int:
        """The first client with a free connection, else the least busy one."""
        busy = self._in_flight
        index = next((i for i, n in enumerate(busy) if n < self._per_client), None)
        if index is None:
            index = min(range(len(busy)), key=busy.__getitem__)
        busy[index] += 1
        return index

    async def aclose(self) -> None:
        for client in self._clients:
            if client is not None:
                await client.close()

    async def chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        *,
        tool_choice: str | None = None,
        max_tokens: int | None = None,
        sink: DeltaSink | None = None,
    ) -> LLMResponse:
        """One completion, retried on transient failures.

        With a ``sink`` the completion streams (``stream=True``) and each chunk goes to the
        sink as it arrives; a stream that breaks is retried as a whole, the sink told first.
        """
        import openai  # loaded by the first call (see the imports above)

        if not self.settings.base_url and not self.settings.api_key:
            raise LLMRejected(
                "no model endpoint is configured: set OPENAI_API_KEY (OpenAI) or "
                "OPENAI_BASE_URL (vLLM, Ollama, LiteLLM, `memgrid scripted-model`...); "
                "`memgrid doctor` checks it"
            )
        kwargs: dict[str, Any] = {"model": model_name(model), "messages": list(messages)}
        if tools:
            kwargs["tools"] = list(tools)
            kwargs["tool_choice"] = tool_choice or "auto"
        if max_tokens:
            kwargs["max_tokens"] = max_tokens
        if sink is not None:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        # Content-Type is the SDK's default; its telemetry headers are left out (see
        # _UNSENT_HEADERS).
        options: Any = {"headers": dict.fromkeys(_UNSENT_HEADERS, openai.omit)}
        attempt = 0
        while True:
            try:
                index = self._take()
                try:
                    with metrics.model_call(), anyio.fail_after(self.settings.timeout_s + 5):
                        if sink is not None:
                            sink.restart()
                            return await stream_completion(
                                self._sdk(index), _request_encoder.encode(kwargs), sink
                            )
                        # The SDK's typed request transform walks every message and schema
                        # through type hints (~3 ms a call), and its typed response costs
                        # ~0.5 ms more; our request is plain JSON, so it goes through the same
                        # client (same errors, retries off, timeouts) as bytes, and the answer
                        # comes back as bytes for msgspec.
                        body = await self._sdk(index).post(
                            "/chat/completions",
                            content=_request_encoder.encode(kwargs),
                            cast_to=bytes,
                            options=options,
                        )
                finally:
                    self._in_flight[index] -= 1
                return parse(body)
            except Unparsable as exc:
                attempt = await self._backoff(
                    attempt,
                    exc,
                    lambda n, last: LLMInvalidResponse(
                        f"the model endpoint answered {n} times with something that is "
                        f"not a chat completion; last: {last}"
                    ),
                )
            except openai.BadRequestError as exc:
                raise _refused(exc) from exc
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise LLMRejected(
                    f"the model endpoint refused our key ({message_of(exc)}); "
                    "set OPENAI_API_KEY to a valid key"
                ) from exc
            except openai.NotFoundError as exc:
                raise LLMRejected(
                    f"model {kwargs['model']!r} not found at the endpoint ({message_of(exc)}); "
                    "check the agent's model handle and OPENAI_BASE_URL"
                ) from exc
            except (
                openai.RateLimitError,
                openai.InternalServerError,
                openai.APIConnectionError,
                openai.APITimeoutError,
                TimeoutError,
            ) as exc:
                if isinstance(exc, openai.APIStatusError) and is_context_error(exc):
                    raise ContextWindowExceeded(message_of(exc)) from exc
                nobody = unreachable(exc)
                if nobody is not None:  # nobody listens: one quick retry, no backoff
                    attempt += 1
                    if attempt > min(_UNREACHABLE_RETRIES, self.settings.max_retries):
                        raise LLMUnavailable(self._unreachable_message(nobody)) from exc
                    await anyio.sleep(_UNREACHABLE_DELAY_S)
                    continue
                attempt = await self._backoff(
                    attempt,
                    exc,
                    lambda n, last: LLMUnavailable(
                        f"the model endpoint {self.url} failed {n} times; last error: "
                        f"{type(last).__name__}: {message_of(last)}"
                    ),
                )
            except openai.APIStatusError as exc:
                if exc.status_code >= 500 or exc.status_code in (408, 409, 429):
                    attempt = await self._backoff(
                        attempt, exc, lambda _, last: LLMUnavailable(message_of(last))
                    )
                    continue
                raise _refused(exc) from exc

    async def complete(self, call: ChatCall, sink: DeltaSink | None) -> LLMResponse:
        """:meth:`chat` of ``call`` (:meth:`stream`, which it inherits, comes here)."""
        return await self.chat(
            call.model,
            call.messages,
            call.tools,
            tool_choice=call.tool_choice,
            max_tokens=call.max_tokens,
            sink=sink,
        )

    @property
    def url(self) -> str:
        """The endpoint this client calls."""
        return self.settings.base_url or _OPENAI_URL

    def _unreachable_message(self, reason: str) -> str:
        where = (
            "is a server listening there? check OPENAI_BASE_URL"
            if self.settings.base_url
            else "check the network, or set OPENAI_BASE_URL to an OpenAI-compatible server"
        )
        return (
            f"cannot reach the model endpoint {self.url} ({reason}); {where} "
            "(`memgrid doctor` checks it)"
        )

    async def _backoff(
        self, attempt: int, exc: Exception, spent: Callable[[int, Exception], LLMError]
    ) -> int:
        """Count a failed attempt and wait before the next one; once the retries are spent,
        raise ``spent(attempts, exc)`` instead."""
        attempt += 1
        if attempt > self.settings.max_retries:
            raise spent(attempt, exc) from exc
        await anyio.sleep(self._delay(attempt, exc))
        return attempt

    def _delay(self, attempt: int, exc: BaseException) -> float:
        asked = retry_after(exc)
        if asked is not None:
            return min(asked, self.settings.backoff_cap_s * 3)
        ceiling = min(
            self.settings.backoff_cap_s, self.settings.backoff_base_s * 2 ** (attempt - 1)
        )
        return random.uniform(0, ceiling)


_request_encoder = msgspec.json.Encoder()
