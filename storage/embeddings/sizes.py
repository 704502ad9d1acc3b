"""The vector sizes that embedding endpoints were seen to serve, per endpoint and model.

Only views read them (Letta's ``embedding_config.embedding_dim``): an embedder learns its size
from its own first response and never from here. The process that embeds records a size it
learnt (:func:`record_size`, one Redis hash field per endpoint and model, overwritten when
learnt again: bounded by the models configured); API processes, which may embed nothing
themselves, load them (:func:`load_sizes`) so that every process shows the same size.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from storage import keys

__all__ = (
    "KNOWN_DIMENSIONS",
    "OPENAI_URL",
    "learned_dimension",
    "load_sizes",
    "record_size",
    "remember_dimension",
)

OPENAI_URL = "https://api.openai.com/v1"

KNOWN_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
"""What OpenAI itself serves: a hint for views before any size was seen, never enforced."""

# (endpoint, model) -> vector length, as seen by this process or loaded from Redis.
_LEARNED: dict[tuple[str, str], int] = {}


def _endpoint(base_url: str | None) -> str:
    return (base_url or OPENAI_URL).rstrip("/")


def remember_dimension(model: str, base_url: str | None, dimension: int) -> None:
    """Note that ``base_url`` (OpenAI when ``None``) serves ``model`` as ``dimension``-d."""
    _LEARNED[(_endpoint(base_url), model)] = dimension


def learned_dimension(model: str, base_url: str | None) -> int | None:
    """The vector length ``base_url`` (OpenAI when ``None``) was seen to serve for ``model``
    (here or, once loaded, in another process), or ``None`` if none was seen yet."""
    return _LEARNED.get((_endpoint(base_url), model))


async def record_size(
    redis: aioredis.Redis, model: str, base_url: str | None, dimension: int
) -> None:
    """Remember the size here and share it through Redis."""
    remember_dimension(model, base_url, dimension)
    await redis.hset(keys.embedding_sizes(), f"{_endpoint(base_url)} {model}", str(dimension))


async def load_sizes(redis: aioredis.Redis) -> None:
    """Take the sizes that any process recorded."""
    found: dict[bytes | str, bytes | str] = await redis.hgetall(keys.embedding_sizes())
    for field, value in found.items():
        name = field.decode() if isinstance(field, bytes) else field
        size = value.decode() if isinstance(value, bytes) else value
        endpoint, _, model = name.partition(" ")
        if model and size.isdigit():
            _LEARNED[(endpoint, model)] = int(size)
