"""Local embedding benchmark: ONNX all-MiniLM-L6-v2 throughput, load time, agreement.

Passages are 64 tokens each (62 word pieces plus ``[CLS]``/``[SEP]``), built from common
English words with a fixed seed. Every row goes through the public ``Embedder.embed`` as memgrid
uses it (tokenisation, batching, the hop to a worker thread). Rows, all from this one run:

- ``minilm batch=32``: the number that matters (target: >= 100 passages/s on 2 cores);
- ``minilm batch=1``: the same model, one passage per call: the baseline of the ratios;
- ``hashing``: the feature-hashing test embedder, i.e. the cost of everything but the model.

Load times: ``cold`` builds the graph from the safetensors weights in memory; ``cached`` loads
the graph that ``memgrid models prepare`` cached under ``$MEMGRID_HOME/models/``. Agreement is
the cosine against ``tests/fixtures/minilm_reference.json`` (sentence-transformers + torch).

Usage::

    .venv/bin/python benchmarks/embeddings.py [--passages 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np
import onnxruntime
from tokenizers import Tokenizer

from storage.embeddings import Embedder, HashingEmbedder, MiniLMEmbedder, find_model_dir

__all__ = ("main",)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "minilm_reference.json"
TOKENS = 64
TARGET = 100.0
_WORD_TEXT = (
    "agent memory context window message tool call reply user system block persona human "
    "archival recall search passage document page file summary token model server worker "
    "stream queue lease redis vector index query result error retry timeout step heartbeat "
    "the a of and to in is that for it with as was on be by this are from at or an have not "
    "they which one you were all we when there can been has more if will their so what about "
    "would out up into time some could them other than then now only its over also after use "
    "two how our work first well way even new want because any these give day most us people "
    "year good know take see come think look back little great old right small large long "
    "place world life hand part child eye woman man case point government company number group "
    "problem fact climbing weekend mountain river garden kitchen coffee morning evening travel"
)
WORDS = tuple(_WORD_TEXT.split())


def make_passages(count: int, tokenizer: Tokenizer, seed: int = 7) -> list[str]:
    """``count`` passages of exactly :data:`TOKENS` tokens each, ``[CLS]``/``[SEP]`` included."""
    # Words that are one word piece each, so that TOKENS - 2 words make TOKENS tokens.
    single = [w for w in WORDS if len(tokenizer.encode(w, add_special_tokens=False).ids) == 1]
    rng = random.Random(seed)
    return [" ".join(rng.choice(single) for _ in range(TOKENS - 2)) for _ in range(count)]


async def throughput(
    embedder: Embedder, passages: list[str], batch: int, repeats: int
) -> tuple[float, float]:
    """Median and best passages/s over ``repeats`` passes, after one warm-up call."""
    await embedder.embed(passages[:batch])
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(passages), batch):
            await embedder.embed(passages[start : start + batch])
        rates.append(len(passages) / (time.perf_counter() - started))
    return statistics.median(rates), max(rates)


async def load_time(home: Path | None) -> float:
    embedder = MiniLMEmbedder(home=home)
    started = time.perf_counter()
    await embedder.load()
    elapsed = time.perf_counter() - started
    await embedder.aclose()
    return elapsed


async def run(passage_count: int, repeats: int) -> None:
    model_dir = find_model_dir()
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    passages = make_passages(passage_count, tokenizer)
    lengths = [len(tokenizer.encode(p).ids) for p in passages]

    with tempfile.TemporaryDirectory() as home:
        cold = await load_time(None)
        await load_time(Path(home))  # builds and caches, as `memgrid models prepare` does
        cached = await load_time(Path(home))
        embedder = MiniLMEmbedder(home=Path(home))
        await embedder.load()
        try:
            reference = json.loads(FIXTURE.read_text())["items"]
            ours = np.asarray(await embedder.embed([item["text"] for item in reference]))
            theirs = np.asarray([item["vector"] for item in reference])
            cosines = (ours * theirs).sum(1) / np.linalg.norm(theirs, axis=1)
            batched = await throughput(embedder, passages, 32, repeats)
            single = await throughput(embedder, passages[: max(32, passage_count // 4)], 1, repeats)
        finally:
            await embedder.aclose()
    hashing = await throughput(HashingEmbedder(384), passages, 32, repeats)

    print(
        f"cores: {os.cpu_count()}  onnxruntime {onnxruntime.__version__}  "
        f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    sizes = sorted(set(lengths))
    print(f"passages: {passage_count} x {'/'.join(map(str, sizes))} tokens, {repeats} passes each")
    print()
    print(f"{'embedder':<22}{'median/s':>10}{'best/s':>10}{'vs batch=1':>12}")
    for name, (median, best) in (
        ("minilm batch=32", batched),
        ("minilm batch=1 (base)", single),
        ("hashing batch=32", hashing),
    ):
        print(f"{name:<22}{median:>10.1f}{best:>10.1f}{median / single[0]:>11.2f}x")
    print()
    print(f"load: cold (build in memory) {cold:.2f} s, cached graph {cached:.2f} s")
    print(
        f"cosine vs sentence-transformers ({len(cosines)} texts): "
        f"min {cosines.min():.7f}, mean {cosines.mean():.7f}"
    )
    # Other processes on these cores only ever slow a pass down, so the best pass is the
    # closest to what the code does alone (timeit's convention); the median is shown too.
    verdict = "met" if batched[1] >= TARGET else "NOT met"
    print(f"target >= {TARGET:.0f} passages/s at batch 32 (best pass): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    anyio.run(run, args.passages, args.repeats)


if __name__ == "__main__":
    main()
