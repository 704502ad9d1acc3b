"""Recall search at 1k, 10k and 100k messages against a real redis-server.

Loads one agent per size with generated messages (a vocabulary of 4,000 made-up words with
Zipf-Mandelbrot frequencies, sprinkled with English stop words; user text, assistant thoughts
with ``send_message`` replies, JSON tool returns), then times ``MessageLog.search`` end to end
(script call + MGET + decode) for several kinds of query, and a naive scan-every-message search
at 10k (the middle size) as the baseline that the index has to beat.

Run: ``.venv/bin/python benchmarks/recall.py`` (about a minute on 2 cores); ``--sizes
1000,10000,100000``.
"""

from __future__ import annotations

import argparse
import functools
import random
import time
from collections.abc import Awaitable, Callable

import numpy as np
import redis.asyncio as aioredis
from _harness import (  # benchmarks/ is first on sys.path
    Scratch,
    chat_history,
    int_list,
    options,
    percentile,
    run_on_redis,
    timed,
)

from bus import connect
from storage._recall_index import searchable_text, tokenize
from storage.messages import MessageLog
from storage.records import Message, decode

__all__ = ("main",)

SIZES = (1_000, 10_000, 100_000)
QUERIES = 200
VOCAB = 4_000
STOP = ["the", "a", "of", "and", "to", "in", "is", "it", "that", "i", "you", "for", "on", "with"]
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "ti",
    "vo",
    "ze",
    "pa",
    "qua",
    "bri",
    "dor",
    "fen",
    "gal",
    "hup",
    "jin",
    "kor",
    "lum",
    "mex",
]


def _vocabulary(rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < VOCAB:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words, key=lambda w: rng.random())


class Corpus:
    """Sentences drawn from the vocabulary; rank r has weight 1 / (r + 10)."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.words = _vocabulary(self.rng)
        weights = 1.0 / (np.arange(VOCAB) + 10.0)
        self.np_rng = np.random.default_rng(seed)
        self.p = weights / weights.sum()

    def sentence(self, n: int) -> str:
        picks = self.np_rng.choice(VOCAB, size=n, p=self.p)
        out = []
        for i in picks:
            if self.rng.random() < 0.3:
                out.append(self.rng.choice(STOP))
            out.append(self.words[int(i)])
        return " ".join(out).capitalize() + "."

    def messages(self, agent_id: str, count: int) -> list[Message]:
        """``count`` messages of user text, thoughts with replies and tool returns that
        repeat the text, a system message every 50th."""
        said: dict[int, str] = {}

        def text(n: int) -> str:
            said[n] = self.sentence(self.rng.randint(6, 30))
            return said[n]

        return chat_history(
            agent_id,
            range(1, count + 1),
            text,
            lambda n: self.sentence(12),
            result=lambda n: said[n],
            system_every=50,
        )


async def _load(log: MessageLog, client: aioredis.Redis, messages: list[Message]) -> float:
    started = time.perf_counter()
    for i in range(0, len(messages), 500):
        async with client.pipeline(transaction=True) as pipe:
            log.stage(pipe, messages[i : i + 500])
            await pipe.execute()
    return len(messages) / (time.perf_counter() - started)


async def _timed(
    run: Callable[[str], Awaitable[object]], queries: list[str]
) -> tuple[float, float]:
    pending = iter(queries)
    laps = await timed(len(queries), lambda: run(next(pending)))
    return percentile(laps, 50), percentile(laps, 99)


def _queries(corpus: Corpus, stored: list[Message]) -> dict[str, list[str]]:
    rng = random.Random(11)
    words = corpus.words

    def content_words() -> list[str]:
        while True:
            found = tokenize(searchable_text(rng.choice(stored)))
            if len(found) >= 3:
                return found

    def pair() -> str:
        found = content_words()
        return " ".join(rng.sample(found, 2))

    def phrase() -> str:
        found = content_words()
        i = rng.randrange(len(found) - 1)
        return f'"{found[i]} {found[i + 1]}"'

    return {
        "1-term": [words[rng.randrange(10, 300)] for _ in range(QUERIES)],
        "2-term": [pair() for _ in range(QUERIES)],
        "rare": [words[rng.randrange(2000, VOCAB)] for _ in range(QUERIES)],
        "phrase": [phrase() for _ in range(QUERIES)],
        "2 top terms": [" ".join(rng.sample(words[:10], 2)) for _ in range(QUERIES)],
    }


async def _naive_search(client: aioredis.Redis, agent_id: str, query: str) -> list[Message]:
    """The baseline: read every message, tokenise it, keep those with all terms."""
    terms = set(tokenize(query))
    ids = await client.zrevrange(f"mg:{{{agent_id}}}:messages", 0, -1)
    hits: list[Message] = []
    for i in range(0, len(ids), 1000):
        raw = await client.mget([f"mg:{{{agent_id}}}:msg:{m.decode()}" for m in ids[i : i + 1000]])
        for blob in raw:
            message = decode(Message, blob)
            if terms <= set(tokenize(searchable_text(message))):
                hits.append(message)
    return hits[:10]


async def _run(args: argparse.Namespace, redis: Scratch) -> None:
    client, sizes = connect(redis.url), args.sizes
    log = MessageLog(client)
    corpus = Corpus()
    rows: dict[int, dict[str, tuple[float, float]]] = {}
    rates: dict[int, float] = {}
    memory: dict[int, float] = {}
    baseline: tuple[float, float] | None = None
    try:
        middle = sizes[len(sizes) // 2]
        for size in sizes:
            agent_id = f"agent-bench-{size}"
            messages = corpus.messages(agent_id, size)
            before = int((await client.info("memory"))["used_memory"])
            rates[size] = await _load(log, client, messages)
            memory[size] = (int((await client.info("memory"))["used_memory"]) - before) / size
            await log.search(agent_id, "warm up")
            rows[size] = {}
            for kind, queries in _queries(corpus, messages).items():
                rows[size][kind] = await _timed(functools.partial(log.search, agent_id), queries)
            if size == middle:
                naive = _queries(corpus, messages)["1-term"][:10]
                baseline = await _timed(functools.partial(_naive_search, client, agent_id), naive)
    finally:
        await client.aclose()
    kinds = list(rows[sizes[0]])
    print("recall search, end to end (script + MGET + decode), ms p50 / p99")
    print()
    header = ["messages", "insert msg/s", "bytes/msg", *kinds]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for size in sizes:
        cells = [f"{rows[size][k][0]:.2f} / {rows[size][k][1]:.2f}" for k in kinds]
        print(
            f"| {size:,} | {rates[size]:,.0f} | {memory[size]:,.0f} | " + " | ".join(cells) + " |"
        )
    ratio = [
        f"{rows[sizes[-1]][k][0] / rows[sizes[0]][k][0]:.1f}x / "
        f"{rows[sizes[-1]][k][1] / rows[sizes[0]][k][1]:.1f}x"
        for k in kinds
    ]
    spread = f"{rates[sizes[-1]] / rates[sizes[0]]:.2f}x"
    mem = f"{memory[sizes[-1]] / memory[sizes[0]]:.2f}x"
    print(f"| {sizes[-1]:,} / {sizes[0]:,} | {spread} | {mem} | " + " | ".join(ratio) + " |")
    if baseline is not None:
        print()
        print(
            f"baseline, naive scan of every message at {middle:,} (1-term): p50 "
            f"{baseline[0]:.1f} ms, p99 {baseline[1]:.1f} ms; indexed 1-term at {middle:,}: p50 "
            f"{rows[middle]['1-term'][0]:.2f} ms ({baseline[0] / rows[middle]['1-term'][0]:,.0f}x)"
        )


def main() -> None:
    """Start a private redis-server, run the benchmark, print the table, stop the server."""
    parser = options(__doc__)
    parser.add_argument(
        "--sizes",
        type=int_list,
        default=list(SIZES),
        help="messages per agent, comma-separated; the middle one gets the naive baseline",
    )
    run_on_redis(parser, _run, "memgrid-bench-")


if __name__ == "__main__":
    main()
