"""Turn an embedding handle into an :class:`~storage.embeddings.Embedder`.

Valid handles:

- ``local/all-MiniLM-L6-v2`` (also ``all-MiniLM-L6-v2`` and
  ``sentence-transformers/all-MiniLM-L6-v2``): the local ONNX model, 384-d;
- ``openai/<model>``, e.g. ``openai/text-embedding-3-small``: an OpenAI-compatible endpoint at
  ``OPENAI_BASE_URL``, vectors of the size it serves; ``openai/<model>@<size>`` asks it for
  vectors of that size (``embedding_config.embedding_dim``, the ``dimensions`` parameter);
- ``hashing/<dimension>``, e.g. ``hashing/384``: the feature-hashing embedder, for tests only.
"""

from __future__ import annotations

import anyio

from storage.embeddings.errors import UnknownEmbeddingHandle
from storage.embeddings.hashing import HashingEmbedder
from storage.embeddings.protocol import Embedder
from storage.settings import DEFAULT_EMBEDDING, StorageSettings

# The ONNX and openai stacks load only when an embedder of theirs is made (~150 MiB RSS).
MINILM_HANDLE = DEFAULT_EMBEDDING

__all__ = ("UnknownEmbeddingHandle", "embedder_from_handle", "open_embedder", "split_size")

_MINILM_ALIASES = frozenset(
    {MINILM_HANDLE, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
)
_VALID_FORMS = (
    f"{MINILM_HANDLE} (the local default), openai/<model> such as "
    "openai/text-embedding-3-small (openai/<model>@<size> asks for vectors of that size), "
    "or hashing/<dimension> (tests only)"
)


def split_size(rest: str) -> tuple[str, int | None]:
    """``text-embedding-3-small@256`` -> ``("text-embedding-3-small", 256)``; no size: ``None``."""
    model, at, size = rest.rpartition("@")
    if at and model and size.isdigit() and int(size) > 0:
        return model, int(size)
    return rest, None


def embedder_from_handle(handle: str, settings: StorageSettings) -> Embedder:
    """The embedder that ``handle`` selects; nothing is loaded or contacted yet.

    Args:
        handle: see the module docstring for the valid forms.
        settings: where the local graph is cached (``home``) and the endpoint of remote
            handles (``openai_base_url``, ``openai_api_key``).

    Raises:
        UnknownEmbeddingHandle: ``handle`` has none of the valid forms.
        EmbeddingModelMissing: the local model's weights are not installed.
        EmbeddingNotConfigured: a remote handle without ``OPENAI_API_KEY`` or
            ``OPENAI_BASE_URL`` (a ``ValueError``).
    """
    name = handle.strip()
    if name.lower() in {alias.lower() for alias in _MINILM_ALIASES}:
        from storage.embeddings.minilm import MiniLMEmbedder

        return MiniLMEmbedder(home=settings.home)
    provider, _, rest = name.partition("/")
    if provider == "openai" and rest:
        from storage.embeddings.remote import OpenAIEmbedder

        model, size = split_size(rest)
        return OpenAIEmbedder(
            model,
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            dimension=size,
        )
    if provider == "hashing" and rest.isdigit() and int(rest) > 0:
        return HashingEmbedder(int(rest))
    raise UnknownEmbeddingHandle(
        f"unknown embedding handle {handle!r}; use {_VALID_FORMS} (MEMGRID_EMBEDDING sets the "
        "default)"
    )


async def open_embedder(handle: str, settings: StorageSettings) -> Embedder:
    """Like :func:`embedder_from_handle`, and ready: ``dimension`` can be read.

    A remote model of unknown vector length is asked once; the local model is loaded. On
    failure the embedder is closed before the error propagates.
    """
    embedder = embedder_from_handle(handle, settings)
    from storage.embeddings.minilm import MiniLMEmbedder
    from storage.embeddings.remote import OpenAIEmbedder

    try:
        if isinstance(embedder, OpenAIEmbedder):
            await embedder.probe()
        elif isinstance(embedder, MiniLMEmbedder):
            await embedder.load()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await embedder.aclose()
        raise
    return embedder
