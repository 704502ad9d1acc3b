"""Embeddings, models and unknown routes, through the SDK and raw HTTP."""

from __future__ import annotations

import math

import httpx
import openai
import pytest

from agents.scripted import EmbeddingRequest, ScriptedModel, ServerError, Slow
from agents.scripted.replies import Reply
from storage.embeddings.hashing import hash_embed


async def test_embeddings_are_deterministic_and_sized(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    texts = ["green tea", "black coffee"]
    default = await scripted_client.embeddings.create(model="text-embedding-3-small", input=texts)
    assert [item.index for item in default.data] == [0, 1]
    assert all(len(item.embedding) == 384 for item in default.data)
    # The SDK asks for base64 by default: float32 on the wire, close to the float vectors.
    for item, text in zip(default.data, texts, strict=True):
        assert item.embedding == pytest.approx(hash_embed(text, 384), abs=1e-6)
    again = await scripted_client.embeddings.create(
        model="text-embedding-3-small", input=texts, encoding_format="float"
    )
    assert again.data[0].embedding == hash_embed("green tea", 384)
    small = await scripted_client.embeddings.create(
        model="text-embedding-3-small", input="green tea", dimensions=16
    )
    (vector,) = small.data
    assert len(vector.embedding) == 16
    assert math.isclose(sum(x * x for x in vector.embedding), 1.0, rel_tol=1e-5)
    assert small.usage.prompt_tokens > 0
    assert [r.dimensions for r in scripted_model.embedding_requests] == [None, None, 16]
    assert scripted_model.embedding_requests[0].texts == texts


async def test_embeddings_policy_can_fail_or_answer(
    scripted_model: ScriptedModel, scripted_client: openai.AsyncOpenAI
) -> None:
    answers: list[list[list[float]] | ServerError | Slow | None] = [
        ServerError(503),
        [[1.0, 0.0]],
        Slow(0.01, Reply()),
    ]

    def policy(request: EmbeddingRequest) -> list[list[float]] | ServerError | Slow | None:
        return answers.pop(0)

    scripted_model.embeddings_policy = policy
    with pytest.raises(openai.InternalServerError):
        await scripted_client.embeddings.create(model="e", input="x")
    fixed = await scripted_client.embeddings.create(model="e", input="x", encoding_format="float")
    assert fixed.data[0].embedding == [1.0, 0.0]
    later = await scripted_client.embeddings.create(model="e", input=[[1, 2, 3]], dimensions=8)
    assert len(later.data[0].embedding) == 8
    assert scripted_model.embedding_requests[-1].texts == ["1 2 3"]


async def test_models_listing_and_retrieval() -> None:
    async with ScriptedModel.serve(models={"scripted-a": 4096, "scripted-b": 8192}) as model:
        async with openai.AsyncOpenAI(
            base_url=model.base_url, api_key="x", max_retries=0
        ) as client:
            page = await client.models.list()
            assert [m.id for m in page.data] == ["scripted-a", "scripted-b"]
            assert all(m.object == "model" for m in page.data)
            assert page.data[0].model_extra == {"context_window": 4096}
            one = await client.models.retrieve("anything")
            assert one.id == "anything"
        async with httpx.AsyncClient(base_url=model.base_url) as raw:
            missing = await raw.get("/nope")
            assert missing.status_code == 404
            assert missing.json()["error"]["type"] == "invalid_request_error"
            bad = await raw.post("/chat/completions", content=b"{not json")
            assert bad.status_code == 400
            assert set(bad.json()["error"]) == {"message", "type", "param", "code"}
            # Paths without the /v1 prefix are served too.
            models = await raw.get(str(model.base_url).removesuffix("/v1") + "/models")
            assert models.status_code == 200
