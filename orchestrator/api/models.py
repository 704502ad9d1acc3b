"""``/v1/models/`` and ``/v1/models/embedding``: what agents here can be given.

Chat models are what the configured OpenAI-compatible endpoint (``OPENAI_BASE_URL``) lists at
its ``/models`` when it answers within a few seconds, else the configured handle
(``MEMGRID_MODEL``, default ``openai/gpt-4o-mini``). Embedding models are the endpoint's
embedding models (ids with ``embed`` in them), the default handle (``MEMGRID_EMBEDDING``), the
local embedder (all-MiniLM-L6-v2, 384-d, no endpoint needed) and the hashing embedder.

Each item carries the fields of both client generations: Letta 0.16's ``Model`` and
``EmbeddingModel`` (letta-client 1.x) and 0.11's ``LLMConfig`` and ``EmbeddingConfig``
(letta-client 0.1.x reads the same routes into those).
"""

from __future__ import annotations

import msgspec
import openai
import structlog
from litestar import Controller, get

from agents.manage import default_model
from agents.runtime import LLMPool
from orchestrator.api.state import Api, ApiState
from orchestrator.api.views import embedding_config

__all__ = ("EmbeddingModelView", "ModelView", "ModelsController")

log = structlog.get_logger("memgrid.api")

LIST_TIMEOUT_S = 3.0
DEFAULT_CONTEXT_WINDOW = 128_000
LOCAL_EMBEDDING = "local/all-MiniLM-L6-v2"
HASHING_EMBEDDING = "hashing/384"
_OPENAI_URL = "https://api.openai.com/v1"


class ModelView(msgspec.Struct, kw_only=True):
    """Letta's ``Model`` (0.16), also read as ``LLMConfig`` (0.11)."""

    handle: str
    name: str
    display_name: str
    model: str
    provider_type: str = "openai"
    provider_name: str = "openai"
    provider_category: str = "base"
    model_type: str = "llm"
    model_endpoint_type: str = "openai"
    model_endpoint: str
    model_wrapper: str | None = None
    context_window: int
    max_context_window: int
    put_inner_thoughts_in_kwargs: bool = True
    temperature: float = 0.7
    max_tokens: int | None = None
    enable_reasoner: bool = False


class EmbeddingModelView(msgspec.Struct, kw_only=True):
    """Letta's ``EmbeddingModel`` (0.16), also read as ``EmbeddingConfig`` (0.11)."""

    handle: str
    name: str
    display_name: str
    provider_type: str
    provider_name: str
    model_type: str = "embedding"
    embedding_endpoint_type: str
    embedding_endpoint: str | None
    embedding_model: str
    embedding_dim: int
    embedding_chunk_size: int = 300
    batch_size: int = 32


async def _endpoint_models(api: ApiState) -> list[tuple[str, int]] | None:
    """``(id, context window)`` of what the endpoint lists, or None when it does not answer."""
    pool = api.rt.llm
    if not isinstance(pool, LLMPool):  # an in-process model has no endpoint to list
        return None
    settings = pool.settings
    base_url = settings.base_url
    client = openai.AsyncOpenAI(
        base_url=base_url,
        api_key=settings.api_key or "unset",
        timeout=LIST_TIMEOUT_S,
        max_retries=0,
    )
    try:
        page = await client.models.list()
        found: list[tuple[str, int]] = []
        for item in page.data:
            extra = item.model_extra or {}
            window = extra.get("context_window") or extra.get("max_model_len")
            found.append((item.id, window if isinstance(window, int) else DEFAULT_CONTEXT_WINDOW))
        return found
    except (openai.OpenAIError, ValueError) as exc:  # unreachable, refused, or not a list
        log.info("models_endpoint_unavailable", base_url=base_url, error=repr(exc))
        return None
    finally:
        await client.close()


def _is_embedding(model_id: str) -> bool:
    return "embed" in model_id.lower()


def _model(handle: str, window: int, endpoint: str) -> ModelView:
    name = handle.partition("/")[2] or handle
    return ModelView(
        handle=handle,
        name=name,
        display_name=name,
        model=name,
        model_endpoint=endpoint,
        context_window=window,
        max_context_window=window,
    )


def _embedding(handle: str, base_url: str | None, dim: int | None = None) -> EmbeddingModelView:
    config = embedding_config(handle, base_url)
    remote = config.embedding_endpoint_type == "openai"
    return EmbeddingModelView(
        handle=handle,
        name=config.embedding_model,
        display_name=config.embedding_model,
        provider_type="openai" if remote else "hugging-face",
        provider_name="openai" if remote else handle.partition("/")[0],
        embedding_endpoint_type=config.embedding_endpoint_type,
        embedding_endpoint=config.embedding_endpoint,
        embedding_model=config.embedding_model,
        embedding_dim=dim or config.embedding_dim,
    )


class ModelsController(Controller):
    """The chat and embedding models that agents can be created with."""

    path = "/v1/models"
    tags = ["models"]

    @get("/")
    async def list_models(self, api: Api) -> list[ModelView]:
        """The endpoint's chat models, or the configured handle when it does not answer."""
        base_url = api.openai_base_url
        endpoint = base_url or _OPENAI_URL
        listed = await _endpoint_models(api)
        configured = default_model()
        if listed is None:
            return [_model(configured, DEFAULT_CONTEXT_WINDOW, endpoint)]
        models = [
            _model(f"openai/{name}", window, endpoint)
            for name, window in listed
            if not _is_embedding(name)
        ]
        if configured not in {m.handle for m in models}:
            models.append(_model(configured, DEFAULT_CONTEXT_WINDOW, endpoint))
        return models

    @get("/embedding")
    async def list_embedding_models(self, api: Api) -> list[EmbeddingModelView]:
        """The endpoint's embedding models, the default handle, local MiniLM and hashing."""
        base_url = api.openai_base_url
        listed = await _endpoint_models(api) or []
        handles = [f"openai/{name}" for name, _window in listed if _is_embedding(name)]
        for handle in (api.rt.settings.embedding, LOCAL_EMBEDDING, HASHING_EMBEDDING):
            if handle not in handles:
                handles.append(handle)
        return [_embedding(handle, base_url) for handle in handles]
