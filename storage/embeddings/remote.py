"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint, through the openai SDK.

Handles look like ``openai/text-embedding-3-small``: the part after ``openai/`` is the model
name sent to ``OPENAI_BASE_URL`` (OpenAI itself when unset). The vector length is learnt from
the endpoint's first response, never assumed from the model's name: LiteLLM or Ollama aliases,
vLLM and the scripted model serve ``text-embedding-3-small`` at other sizes than OpenAI's
1536. Call :meth:`OpenAIEmbedder.probe` (or :func:`storage.embeddings.open_embedder`, which
does) before reading ``dimension``; it is remembered for views (:mod:`storage.embeddings.sizes`).
An explicit ``dimension`` is asked of the endpoint (the ``dimensions`` parameter) and checked on
every response.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import openai

from storage.embeddings.errors import (
    EmbeddingDimensionUnknown,
    EmbeddingEndpointError,
    EmbeddingNotConfigured,
)
from storage.embeddings.sizes import KNOWN_DIMENSIONS, OPENAI_URL, remember_dimension

__all__ = (
    "KNOWN_DIMENSIONS",
    "EmbeddingDimensionUnknown",
    "EmbeddingEndpointError",
    "EmbeddingNotConfigured",
    "OpenAIEmbedder",
)

# A local server (vLLM, Ollama, llama.cpp) usually wants no key, but the SDK insists on one.
_PLACEHOLDER_KEY = "not-needed"


class OpenAIEmbedder:
    """:class:`storage.embeddings.Embedder` for ``openai/<model>`` handles.

    Vectors are normalised to unit length here, since not every compatible server does.

    Args:
        model: the model name sent to the endpoint, e.g. ``text-embedding-3-small``.
        base_url: ``OPENAI_BASE_URL``; ``None`` means OpenAI.
        api_key: ``OPENAI_API_KEY``; may be ``None`` when ``base_url`` is a local server.
        dimension: the vector length to ask for (``embedding_config.embedding_dim``): sent as
            ``dimensions`` and checked on every response; ``None`` takes the endpoint's.
        batch_size: texts per request.
        timeout: seconds per request.
        max_retries: retries of the SDK on connection errors, 429 and 5xx.

    Raises:
        EmbeddingNotConfigured: neither ``api_key`` nor ``base_url`` is given.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        dimension: int | None = None,
        batch_size: int = 256,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        if api_key is None and base_url is None:
            raise EmbeddingNotConfigured(
                f"openai/{model} needs OPENAI_API_KEY, or OPENAI_BASE_URL for a local server: "
                "set them where memgrid embeds (the workers), or use another embedding"
            )
        self._model = model
        self._base_url = base_url or OPENAI_URL
        self._requested = dimension
        self._dimension = dimension
        self._batch_size = batch_size
        self._client = openai.AsyncOpenAI(
            base_url=self._base_url,
            api_key=api_key or _PLACEHOLDER_KEY,
            timeout=timeout,
            max_retries=max_retries,
        )

    @property
    def handle(self) -> str:
        size = "" if self._requested is None else f"@{self._requested}"
        return f"openai/{self._model}{size}"

    @property
    def dimension(self) -> int:
        """The vector length.

        Raises:
            EmbeddingDimensionUnknown: no response has been seen yet (and no ``dimension``
                was given); ``await probe()`` first.
        """
        if self._dimension is None:
            raise EmbeddingDimensionUnknown(
                f"the vector length of {self.handle} is not known yet; "
                "await probe() (or use open_embedder) before reading dimension"
            )
        return self._dimension

    async def probe(self) -> int:
        """The vector length, asking the endpoint once if it is not known yet."""
        if self._dimension is None:
            await self.embed(["dimension probe"])
        return self.dimension

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors.extend(await self._embed_batch(texts[start : start + self._batch_size]))
        return vectors

    async def _embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        # OpenAI refuses an empty string as input; one space embeds as "nothing" too.
        inputs = [text or " " for text in texts]
        try:
            if self._requested is None:
                response = await self._client.embeddings.create(
                    model=self._model, input=inputs, encoding_format="float"
                )
            else:
                response = await self._client.embeddings.create(
                    model=self._model,
                    input=inputs,
                    encoding_format="float",
                    dimensions=self._requested,
                )
        except openai.APIStatusError as exc:
            asked = (
                f"; it may not serve {self._requested}-d vectors: leave "
                "embedding_config.embedding_dim out to use the size it serves"
                if self._requested is not None and exc.status_code in (400, 422)
                else ""
            )
            raise EmbeddingEndpointError(
                f"{self._base_url} answered {exc.status_code} for {self.handle}: {exc.message}"
                f" (check OPENAI_BASE_URL, OPENAI_API_KEY and the model name{asked})"
            ) from exc
        except openai.APIConnectionError as exc:
            raise EmbeddingEndpointError(
                f"cannot reach {self._base_url} for {self.handle}: {exc} (check OPENAI_BASE_URL)"
            ) from exc
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(inputs):
            raise EmbeddingEndpointError(
                f"{self._base_url} returned {len(data)} vectors for {len(inputs)} texts"
            )
        lengths = {len(item.embedding) for item in data}
        if len(lengths) != 1 or 0 in lengths:
            raise EmbeddingEndpointError(
                f"{self._base_url} returned vectors of lengths {sorted(lengths)} for {self.handle}"
            )
        matrix = np.asarray([item.embedding for item in data], dtype=np.float64)
        got = int(matrix.shape[1])
        if self._requested is not None and got != self._requested:
            raise EmbeddingEndpointError(
                f"{self._base_url} returned {got}-d vectors for {self.handle} but "
                f"embedding_config.embedding_dim asks for {self._requested}: set it to {got} or "
                "leave it out to use the size the endpoint serves"
            )
        if self._dimension is None:
            self._dimension = got
            remember_dimension(self._model, self._base_url, got)
        elif got != self._dimension:
            # The endpoint now serves another size (its model was swapped): vectors of two
            # sizes cannot share an agent's archival memory.
            raise EmbeddingEndpointError(
                f"{self._base_url} returned {got}-d vectors for {self.handle}, earlier "
                f"{self._dimension}-d: the model behind it changed; restart memgrid to learn "
                "the new size (passages embedded before must be re-inserted)"
            )
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        result: list[list[float]] = (matrix / np.maximum(norms, 1e-12)).tolist()
        return result

    async def aclose(self) -> None:
        await self._client.close()
