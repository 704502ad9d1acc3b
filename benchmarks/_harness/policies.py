"""Scripted-model policies for benchmarks: ``memgrid scripted-model --policy
_harness.policies:NAME`` in a process started by :func:`_harness.start_model` (which puts
``benchmarks/`` on its ``PYTHONPATH`` and passes the settings below in its environment)."""

from __future__ import annotations

import atexit
import json
import os
import time
from pathlib import Path

from agents.scripted import ChatRequest, Outcome, Slow, say

__all__ = ("slow_ok",)

_arrivals: list[float] = []


def _write_arrivals() -> None:
    path = os.environ.get("MEMGRID_BENCH_ARRIVALS")
    if path:
        Path(path).write_text(json.dumps(_arrivals))


atexit.register(_write_arrivals)


def slow_ok(request: ChatRequest) -> Outcome:
    """``say("ok")`` after ``MEMGRID_BENCH_LATENCY`` seconds (one step per turn); the arrival
    times go to the file ``MEMGRID_BENCH_ARRIVALS`` names (JSON) when the model stops."""
    _arrivals.append(time.time())
    return Slow(seconds=float(os.environ.get("MEMGRID_BENCH_LATENCY", "0")), then=say("ok"))
