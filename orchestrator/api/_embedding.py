"""From a request's ``embedding`` / ``embedding_config`` to an embedding handle.

``embedding_config.embedding_dim`` is honoured when it asks for something: a size other than
the one the API shows for that model (what the endpoint was seen to serve, else OpenAI's size
for the name) pins the size as ``openai/<model>@<size>``, which the endpoint is asked for. The
same size as shown is no request at all, so that a config read from the API and sent back
unchanged names the same embedder. Only ``openai/`` models can be asked for a size.
"""

from __future__ import annotations

from orchestrator.api.errors import ApiError
from orchestrator.api.schemas import EmbeddingConfigIn
from orchestrator.api.views import embedding_config
from storage.embeddings.factory import split_size

__all__ = ("embedding_handle",)


def embedding_handle(
    handle: str | None, config: EmbeddingConfigIn | None, openai_base_url: str | None
) -> str | None:
    """The handle a request names (``embedding`` wins over ``embedding_config``), or ``None``.

    Raises:
        ApiError: 400 on ``embedding_config.embedding_dim`` for a model of fixed size.
    """
    if handle:
        return handle
    if config is None:
        return None
    if config.handle:
        named = config.handle
    elif config.embedding_endpoint_type == "openai" and "/" not in config.embedding_model:
        named = f"openai/{config.embedding_model}"
    else:
        named = config.embedding_model
    wanted = config.embedding_dim
    if wanted is None:
        return named
    shown = embedding_config(named, openai_base_url).embedding_dim
    if wanted == shown:
        return named
    provider, _, rest = named.partition("/")
    if provider == "openai" and rest:
        model, _ = split_size(rest)
        if wanted == embedding_config(f"openai/{model}", openai_base_url).embedding_dim:
            return f"openai/{model}"
        return f"openai/{model}@{wanted}"
    raise ApiError(
        400,
        f"{named} makes {shown}-dimensional vectors and cannot be asked for {wanted}: leave "
        f"embedding_dim out (or set it to {shown}), or use an openai/<model> embedding",
        field="embedding_config.embedding_dim",
    )
