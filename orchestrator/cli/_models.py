"""``memgrid models prepare``: build, cache and try the local embedding model.

Run by ``make install``: it builds the ONNX graph of all-MiniLM-L6-v2 from the installed
weights once, caches it under ``$MEMGRID_HOME/models/``, loads it and embeds one sentence.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from orchestrator.cli._common import UsageError, run

__all__ = ("register",)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "models", help="prepare the local embedding model"
    )
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION", required=True)
    prepare = actions.add_parser(
        "prepare", help="build and cache the MiniLM ONNX graph, then embed one sentence"
    )
    prepare.set_defaults(handler=_prepare)


def _prepare(args: argparse.Namespace) -> int:
    # Imported here: ONNX Runtime and friends are not needed by other commands' start-up.
    from storage.embeddings import EmbeddingModelMissing, MiniLMEmbedder, prepare_model
    from storage.settings import StorageSettings

    home = StorageSettings.from_env().home
    started = time.perf_counter()
    try:
        path = prepare_model(home)
    except EmbeddingModelMissing as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        raise UsageError(
            f"cannot write the model cache under {home} ({exc}); set MEMGRID_HOME"
        ) from exc
    built = time.perf_counter() - started

    async def try_it() -> tuple[int, float]:
        embedder = MiniLMEmbedder(home=home)
        try:
            loaded = time.perf_counter()
            await embedder.load()
            load_s = time.perf_counter() - loaded
            (vector,) = await embedder.embed(["memgrid prepares its local embedding model."])
        finally:
            await embedder.aclose()
        return len(vector), load_s

    dimension, load_s = run(try_it)
    print(f"model: {path}")
    print(f"dimension: {dimension}")
    print(f"prepare: {built:.2f} s, load: {load_s:.2f} s")
    return 0
