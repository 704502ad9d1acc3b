"""The LLM client: any OpenAI-compatible endpoint through the ``openai`` SDK.

Errors (drawn as a tree)::

    LLMError
    ├── ContextWindowExceeded   the provider says the request is too long: compact and retry
    ├── LLMUnavailable          retries exhausted on 429 / 5xx / timeouts / connection errors
    └── LLMRejected             a 4xx that retrying cannot fix (bad key, unknown model...)

Retries use exponential backoff with full jitter and honour ``Retry-After``. Malformed tool-call
JSON is not an error here: the raw arguments go back to the step loop, which answers the model
with a tool error.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import httpx2  # the HTTP client the openai SDK is built on, for its pool limits
import msgspec
import openai
from openai.types.chat import ChatCompletion

from storage.records import ToolCall

__all__ = (
    "ContextWindowExceeded",
    "LLMClient",
    "LLMError",
    "LLMRejected",
    "LLMResponse",
    "LLMSettings",
    "LLMUnavailable",
    "model_name",
)

# Prefixes stripped from handles; anything else is passed through (vLLM models contain '/').
_PROVIDER_PREFIXES = ("openai/", "ollama/", "vllm/", "lmstudio/", "llamacpp/", "litellm/")
_CONTEXT_PATTERNS = re.compile(
    r"context[_ ]length|maximum context|context window|too many tokens|prompt is too long|"
    r"reduce the length|input is too long",
    re.IGNORECASE,
)


class LLMError(Exception):
    """Base class of LLM call failures."""


class ContextWindowExceeded(LLMError):
    """The provider refused the request as longer than the model's context window."""


class LLMUnavailable(LLMError):
    """The endpoint kept failing (rate limits, 5xx, timeouts) after every retry."""


class LLMRejected(LLMError):
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


class LLMResponse(msgspec.Struct, kw_only=True):
    """One completion: its text (inner thoughts), tool calls and token usage."""

    content: str
    tool_calls: list[ToolCall]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None


def model_name(handle: str) -> str:
    """The model name to send for a handle such as ``openai/gpt-4o-mini``."""
    for prefix in _PROVIDER_PREFIXES:
        if handle.startswith(prefix):
            return handle[len(prefix) :]
    return handle


class LLMClient:
    """Chat completions with tools, with retries, timeouts and error classification."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            # Local servers (vLLM, Ollama, the scripted model) need no key; the SDK needs one.
            api_key=settings.api_key or "not-needed",
            timeout=settings.timeout_s,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(
                timeout=settings.timeout_s,
                limits=httpx2.Limits(
                    max_connections=settings.max_connections,
                    max_keepalive_connections=settings.max_connections,
                ),
            ),
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        *,
        tool_choice: str | None = None,
        max_tokens: int | None = None,
    ) -> LLMResponse:
        """One completion, retried on transient failures."""
        kwargs: dict[str, Any] = {"model": model_name(model), "messages": list(messages)}
        if tools:
            kwargs["tools"] = list(tools)
            kwargs["tool_choice"] = tool_choice or "auto"
        if max_tokens:
            kwargs["max_tokens"] = max_tokens
        attempt = 0
        while True:
            try:
                with anyio.fail_after(self.settings.timeout_s + 5):
                    # The SDK's typed request transform walks every message and schema through
                    # type hints (~3 ms a call); our request is already plain JSON, so post it
                    # through the same client (same errors, retries off, timeouts) directly.
                    completion = await self._client.post(
                        "/chat/completions",
                        body=kwargs,
                        cast_to=ChatCompletion,
                    )
                return _parse(completion)
            except openai.BadRequestError as exc:
                if _is_context_error(exc):
                    raise ContextWindowExceeded(_message(exc)) from exc
                raise LLMRejected(
                    f"the model endpoint refused the request: {_message(exc)}"
                ) from exc
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise LLMRejected(
                    f"the model endpoint refused our key ({_message(exc)}); "
                    "set OPENAI_API_KEY to a valid key"
                ) from exc
            except openai.NotFoundError as exc:
                raise LLMRejected(
                    f"model {kwargs['model']!r} not found at the endpoint ({_message(exc)}); "
                    "check the agent's model handle and OPENAI_BASE_URL"
                ) from exc
            except (
                openai.RateLimitError,
                openai.InternalServerError,
                openai.APIConnectionError,
                openai.APITimeoutError,
                TimeoutError,
            ) as exc:
                if isinstance(exc, openai.APIStatusError) and _is_context_error(exc):
                    raise ContextWindowExceeded(_message(exc)) from exc
                attempt += 1
                if attempt > self.settings.max_retries:
                    raise LLMUnavailable(
                        f"the model endpoint failed {attempt} times; last error: "
                        f"{type(exc).__name__}: {_message(exc)}"
                    ) from exc
                await anyio.sleep(self._delay(attempt, exc))
            except openai.APIStatusError as exc:
                if exc.status_code >= 500 or exc.status_code in (408, 409, 429):
                    attempt += 1
                    if attempt > self.settings.max_retries:
                        raise LLMUnavailable(_message(exc)) from exc
                    await anyio.sleep(self._delay(attempt, exc))
                    continue
                if _is_context_error(exc):
                    raise ContextWindowExceeded(_message(exc)) from exc
                raise LLMRejected(
                    f"the model endpoint refused the request: {_message(exc)}"
                ) from exc

    def _delay(self, attempt: int, exc: BaseException) -> float:
        retry_after = _retry_after(exc)
        if retry_after is not None:
            return min(retry_after, self.settings.backoff_cap_s * 3)
        ceiling = min(
            self.settings.backoff_cap_s, self.settings.backoff_base_s * 2 ** (attempt - 1)
        )
        return random.uniform(0, ceiling)


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(exc)


def _is_context_error(exc: openai.APIStatusError) -> bool:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("code") == "context_length_exceeded":
            return True
    return bool(_CONTEXT_PATTERNS.search(_message(exc)))


def _parse(completion: Any) -> LLMResponse:
    if not getattr(completion, "choices", None):
        raise LLMUnavailable("the model endpoint answered with no choices")
    choice = completion.choices[0]
    message = choice.message
    calls: list[ToolCall] = []
    for index, call in enumerate(message.tool_calls or []):
        function = getattr(call, "function", None)
        if function is None:
            continue
        calls.append(
            ToolCall(
                id=call.id or f"call_{index}",
                name=function.name or "",
                arguments=function.arguments or "",
            )
        )
    usage = completion.usage
    return LLMResponse(
        content=message.content or "",
        tool_calls=calls,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        finish_reason=choice.finish_reason,
    )
