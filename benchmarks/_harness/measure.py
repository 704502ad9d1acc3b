"""Statistics and reports: percentiles, timed laps, markdown tables, py-spy summaries."""

from __future__ import annotations

import io
import math
import pstats
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

PACKAGES = ("agents", "bus", "orchestrator", "storage")


def percentile(values: Sequence[float], pct: int) -> float:
    """The ``pct``-th percentile (1..99, inclusive method); the median of fewer than 2."""
    if len(values) < 2:
        return statistics.median(values) if values else math.nan
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


async def timed(count: int, once: Callable[[], Awaitable[Any]], warmup: int = 0) -> list[float]:
    """Milliseconds of ``count`` sequential awaits of ``once()`` after ``warmup`` untimed."""
    laps = []
    for i in range(count + warmup):
        started = time.perf_counter()
        await once()
        if i >= warmup:
            laps.append((time.perf_counter() - started) * 1000)
    return laps


async def round_robin(
    calls: dict[str, Callable[[], Awaitable[Any]]], count: int, warmup: int = 0
) -> dict[str, list[float]]:
    """Milliseconds per call of each of ``calls``, taking turns (one of each, ``count`` times
    after ``warmup`` untimed rounds), so drift and load from elsewhere hit them all alike."""
    laps: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(count + warmup):
        for name, once in calls.items():
            started = time.perf_counter()
            await once()
            if i >= warmup:
                laps[name].append((time.perf_counter() - started) * 1000)
    return laps


def table(header: Sequence[str], rows: Iterable[Sequence[object]], *, text: int = 1) -> None:
    """Print a markdown table; the first ``text`` columns align left, the rest right."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * text + "---:|" * (len(header) - text))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def py_spy(pid: int, out: Path, *, rate: int = 100, seconds: float | None = None) -> str | None:
    """Start ``py-spy record`` of ``pid`` into ``out`` (raw collapsed stacks) in the background:
    for ``seconds``, else until SIGINT. Returns why it could not start, else None; the process
    is left to :func:`py_spy_stop`."""
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        return "py-spy is not in the venv: .venv/bin/pip install py-spy (not a dependency)"
    cmd = [str(exe), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
    cmd += ["--output", str(out), "--nonblocking"]
    cmd += ["--duration", str(int(seconds))] if seconds else []
    _SPIES[out] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return None


def py_spy_stop(out: Path, name: str, *, callers: int = 0) -> str:
    """Stop (or wait for) the :func:`py_spy` writing ``out``; its :func:`py_spy_top`."""
    spy = _SPIES.pop(out)
    if spy.poll() is None and "--duration" not in spy.args:
        spy.send_signal(signal.SIGINT)
    _, err = spy.communicate(timeout=600)
    if not out.exists():
        return f"py-spy failed: {err.decode(errors='replace')[-500:]}"
    return py_spy_top(out, name, callers=callers)


_SPIES: dict[Path, subprocess.Popen[bytes]] = {}


def cprofile_top(path: Path, name: str, top: int = 40) -> str:
    """From cProfile stats: the functions with the most own time, memgrid's by cumulative."""
    if not path.exists():
        return f"cprofile: {name} wrote no stats"
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    out.write(f"cProfile of {name} (event-loop thread) over the timed turns\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats("|".join(f"/{p}/" for p in PACKAGES), top)
    return out.getvalue()


def py_spy_top(raw: Path, name: str, top: int = 25, *, callers: int = 0) -> str:
    """Self and total sample shares per function from py-spy's collapsed stacks, then
    memgrid's functions by total share; with ``callers``, the nearest memgrid frame under each
    of the 3 hottest leaves."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    under: dict[str, Counter[str]] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] += count
        mine = [f for f in frames if any(f"{p}/" in f for p in PACKAGES)]
        lib = [f for f in frames[:-1] if "site-packages" not in f and "/" in f]
        caller = mine[-1] if mine else (lib[-1] if lib else "?")
        under.setdefault(frames[-1], Counter())[caller] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return f"py-spy: no samples of {name}"
    lines = [f"py-spy: {samples} samples of {name} (idle frames included)", ""]
    lines += ["| self % | total % | function |", "|---:|---:|---|"]
    for frame, count in own.most_common(top):
        lines.append(
            f"| {100 * count / samples:.1f} | {100 * total[frame] / samples:.1f} | {frame} |"
        )
    for frame, count in own.most_common(3 if callers else 0):
        lines += ["", f"nearest memgrid frame under {frame} ({100 * count / samples:.1f}%):"]
        lines += [f"- {100 * c / samples:.1f}% {f}" for f, c in under[frame].most_common(callers)]
    ours = [(f, c) for f, c in total.most_common() if any(f"{p}/" in f for p in PACKAGES)]
    lines += ["", f"memgrid's functions in {name} by total share:", ""]
    lines += ["| total % | function |", "|---:|---|"]
    lines += [f"| {100 * c / samples:.1f} | {f} |" for f, c in ours[:top]]
    return "\n".join(lines)
