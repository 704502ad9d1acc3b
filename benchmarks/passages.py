"""Passage store benchmark: insert rate and filtered search latency of both engines.

For each size, random 384-d unit vectors are spread over ~100 owners, each passage with one
or two of five tags; searches filter by owner and one tag (top 10), the query that archival
memory search makes. Every engine is driven through its ``PassageStore`` adapter, as memgrid
uses it. The baseline is an exact numpy search over the same vectors with the same filter,
measured in the same run; recall@10 is against it.

Engines: ``edge`` (qdrant-edge-py, without and then with ``optimize()``) and ``server``
(qdrant-client's local mode in memory, which stands in for a server here: a pure-Python
engine, ~1 s per query at 100k, so it runs fewer queries at large sizes).

At a million passages (issue #14: "filtered search stays fast at 1M")::

    .venv/bin/python benchmarks/passages.py --sizes 1000000 --engines edge --dimension 32 \
        --owners 1000 --no-optimize

takes ~76 s of CPU (~2.6 GB resident), most of it inserting. Only the embedded
engine can be measured there: no Qdrant server installs on these machines (PyPI has no wheel
that ships one), and local mode, which stands in for a server, is pure Python (run it at
10k-100k). ``optimize()`` (an HNSW build) is left out at 1M: it freezes the process for many
minutes on 2 cores. Small vectors keep the run short: what grows with the number of passages
is finding one owner's points among all (the payload index), not scoring them (each of the
1,000 owners holds ~1,000 passages, ~300 with the queried tag).

Usage::

    .venv/bin/python benchmarks/passages.py [--sizes 10000,100000] [--engines edge,server]
        [--queries 200] [--no-optimize] [--dimension 384] [--owners 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import numpy as np
import numpy.typing as npt
from _harness import percentile  # benchmarks/ is first on sys.path

from storage.passages import EdgePassageStore, PassageStore, ServerPassageStore
from storage.records import Passage

__all__ = ("main",)

DIMENSION = 384
OWNERS = 100
TAGS = ("work", "home", "idea", "todo", "note")
BATCH = 1000
TOP_K = 10
SERVER_QUERY_BUDGET = 2_000_000  # passages x queries for local mode: 200 at 10k, 20 at 100k


@dataclass
class Dataset:
    vectors: npt.NDArray[np.float32]
    owners: npt.NDArray[np.int64]
    tag_mask: npt.NDArray[np.bool_]  # passages x tags
    passages: list[Passage]
    queries: list[tuple[int, int, npt.NDArray[np.float32]]]  # owner, tag, vector


@dataclass
class Row:
    engine: str
    size: int
    insert_rate: float | None
    latencies: list[float]
    recall: float | None
    note: str = ""


def _unit(rng: np.random.Generator, rows: int, dimension: int) -> npt.NDArray[np.float32]:
    vectors = rng.standard_normal((rows, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def make_dataset(
    size: int, queries: int, seed: int, *, dimension: int = DIMENSION, owners_n: int = OWNERS
) -> Dataset:
    rng = np.random.default_rng(seed)
    vectors = _unit(rng, size, dimension)
    owners = rng.integers(0, owners_n, size)
    first = rng.integers(0, len(TAGS), size)
    second = rng.integers(0, len(TAGS), size)
    tag_mask = np.zeros((size, len(TAGS)), dtype=bool)
    tag_mask[np.arange(size), first] = True
    with_second = rng.random(size) < 0.5
    tag_mask[np.flatnonzero(with_second), second[with_second]] = True
    passages = [
        Passage(
            id=f"passage-{i:08d}",
            owner_id=f"agent-{owners[i]:05d}",
            text=f"passage number {i}",
            tags=[TAGS[t] for t in np.flatnonzero(tag_mask[i])],
            created_at=1_700_000_000.0 + i,
        )
        for i in range(size)
    ]
    picks = [
        (int(rng.integers(owners_n)), int(rng.integers(len(TAGS))), vector)
        for vector in _unit(rng, queries, dimension)
    ]
    return Dataset(vectors, owners, tag_mask, passages, picks)


def numpy_search(data: Dataset, owner: int, tag: int, query: npt.NDArray[np.float32]) -> list[int]:
    """Exact filtered top-k: the baseline."""
    rows = np.flatnonzero((data.owners == owner) & data.tag_mask[:, tag])
    scores = data.vectors[rows] @ query
    best = np.argpartition(-scores, min(TOP_K, len(rows) - 1))[:TOP_K] if len(rows) else rows
    return [int(rows[i]) for i in best[np.argsort(-scores[best])]]


def numpy_row(data: Dataset, size: int) -> tuple[Row, list[set[int]]]:
    latencies, answers = [], []
    for owner, tag, query in data.queries:
        started = time.perf_counter()
        answers.append(set(numpy_search(data, owner, tag, query)))
        latencies.append(time.perf_counter() - started)
    return Row("numpy exact (baseline)", size, None, latencies, None), answers


async def insert_all(store: PassageStore, data: Dataset) -> float:
    spent = 0.0
    for start in range(0, len(data.passages), BATCH):
        vectors = data.vectors[start : start + BATCH].tolist()  # embedders hand out lists
        began = time.perf_counter()
        await store.insert(data.passages[start : start + BATCH], vectors)
        spent += time.perf_counter() - began
    return len(data.passages) / spent


async def search_all(
    store: PassageStore, data: Dataset, truth: Sequence[set[int]], limit: int
) -> tuple[list[float], float]:
    latencies, found = [], 0
    for (owner, tag, query), expected in zip(data.queries[:limit], truth, strict=False):
        vector = query.tolist()
        began = time.perf_counter()
        hits = await store.search(f"agent-{owner:05d}", vector, top_k=TOP_K, tags=[TAGS[tag]])
        latencies.append(time.perf_counter() - began)
        found += len({int(hit.passage.id.removeprefix("passage-")) for hit in hits} & expected)
    wanted = sum(len(expected) for expected in truth[:limit])
    return latencies, found / max(wanted, 1)


async def bench_edge(data: Dataset, size: int, truth: list[set[int]], optimize: bool) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="memgrid-bench-") as folder:
        store = EdgePassageStore(Path(folder) / "qdrant")
        try:
            rate = await insert_all(store, data)
            latencies, recall = await search_all(store, data, truth, len(data.queries))
            rows.append(Row("edge", size, rate, latencies, recall, "no optimize()"))
            if optimize:
                began = time.perf_counter()
                await store.optimize()
                took = time.perf_counter() - began
                latencies, recall = await search_all(store, data, truth, len(data.queries))
                note = f"after optimize() ({took:.0f} s, process frozen)"
                rows.append(Row("edge", size, None, latencies, recall, note))
        finally:
            await store.aclose()
    return rows


async def bench_server(data: Dataset, size: int, truth: list[set[int]]) -> Row:
    limit = max(10, min(len(data.queries), SERVER_QUERY_BUDGET // size))
    with warnings.catch_warnings():
        # Local mode warns past 20k points that it is meant for small data: known, measured.
        warnings.filterwarnings("ignore", message=".*Local mode is not recommended.*")
        store = ServerPassageStore(location=":memory:")
        try:
            rate = await insert_all(store, data)
            latencies, recall = await search_all(store, data, truth, limit)
        finally:
            await store.aclose()
    return Row("server (local mode)", size, rate, latencies, recall, f"{limit} queries")


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f}"


def print_table(rows: Sequence[Row], baselines: dict[int, float]) -> None:
    header = (
        f"{'engine':<24}{'size':>8}{'insert/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'p50/numpy':>11}{'recall@10':>11}  note"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        p50 = statistics.median(row.latencies)
        rate = f"{row.insert_rate:10.0f}" if row.insert_rate else f"{'':>10}"
        ratio = f"{p50 / baselines[row.size]:10.1f}x"
        recall = f"{row.recall:11.3f}" if row.recall is not None else f"{'':>11}"
        print(
            f"{row.engine:<24}{row.size:>8}{rate}{_ms(p50):>9}"
            f"{_ms(percentile(row.latencies, 99)):>9}{ratio}{recall}  {row.note}",
            flush=True,
        )


async def run(args: argparse.Namespace) -> None:
    rows: list[Row] = []
    baselines: dict[int, float] = {}
    engines = set(args.engines.split(","))
    for size in (int(s) for s in args.sizes.split(",")):
        began = time.perf_counter()
        data = make_dataset(
            size, args.queries, args.seed, dimension=args.dimension, owners_n=args.owners
        )
        print(f"... {size} passages generated in {time.perf_counter() - began:.1f}s", flush=True)
        baseline, truth = numpy_row(data, size)
        baselines[size] = statistics.median(baseline.latencies)
        rows.append(baseline)
        if "edge" in engines:
            rows += await bench_edge(data, size, truth, optimize=not args.no_optimize)
        if "server" in engines:
            rows.append(await bench_server(data, size, truth))
        print(f"... {size} passages done", flush=True)
    print()
    print(
        f"filtered search: owner + 1 tag, top {TOP_K}; {args.dimension}-d; {args.owners} owners; "
        f"{args.queries} queries (server local mode: fewer, see note); cpus={os.cpu_count()}"
    )
    print_table(rows, baselines)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--engines", default="edge,server", help="edge, server or both")
    parser.add_argument("--queries", type=int, default=200, help="searches per size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dimension", type=int, default=DIMENSION, help="vector size")
    parser.add_argument("--owners", type=int, default=OWNERS, help="agents sharing the passages")
    parser.add_argument("--no-optimize", action="store_true", help="skip edge's optimize()")
    anyio.run(run, parser.parse_args(argv))


if __name__ == "__main__":
    main()
