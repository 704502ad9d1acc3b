"""Prometheus metrics of one process (a worker, the API, or both in one): what operators scrape.

Names, types and labels are listed in docs/metrics.md. ``prometheus_client`` is imported only
by :func:`enable` (the API and ``memgrid worker --metrics-port`` call it): a command that does
not serve metrics never pays for it, and until then every observation below is a no-op.

What is measured where:

- step and model-call latency, model errors by kind: observed in the step loop and the LLM
  client (one call each: :func:`timed_step`, :func:`model_call`);
- the workers' own counters (runs, dead letters, lease renewals and expiries…) and sandbox
  limit hits: read from the live workers of this process at scrape time, never copied;
- inbox lag: :func:`sample_ready` looks at the ready stream (its length, its consumer group's
  last delivered entry and the entry after it), three commands whatever the number of agents.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from functools import partial
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from bus import keys as bus_keys

__all__ = (
    "CONTENT_TYPE",
    "Observer",
    "enable",
    "enabled",
    "error_kind",
    "model_call",
    "render",
    "sample_ready",
    "sandbox_run",
    "serve",
    "timed_step",
    "track_worker",
    "try_sample_ready",
)

log = structlog.get_logger("memgrid.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_T = TypeVar("_T")
# Seconds; steps span a fast scripted model (ms) to slow remote models with tools (minutes).
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _Counted(Protocol):
    """What a worker shows to the collector (agents.worker.Worker)."""

    counters: dict[str, int]
    busy: int


class _State:
    """The registry and the metrics observed directly; exists once :func:`enable` ran."""

    def __init__(self) -> None:
        import prometheus_client as prom

        self.registry = prom.CollectorRegistry(auto_describe=True)
        self.step = prom.Histogram(
            "memgrid_step_duration_seconds",
            "Time of one agent step (context, model call, tools), without its commit.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.model = prom.Histogram(
            "memgrid_model_call_duration_seconds",
            "Time of one request to the model endpoint (each retry counts on its own).",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.model_errors = prom.Counter(
            "memgrid_model_errors",
            "Failed requests to the model endpoint, by kind (retried ones included).",
            ["kind"],
            registry=self.registry,
        )
        self.sandbox = prom.Histogram(
            "memgrid_sandbox_run_duration_seconds",
            "Time of one custom tool run in the sandbox, by outcome (success or error).",
            ["status"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.ready: dict[str, float] = {}
        self.registry.register(_Collector(self))


_state: _State | None = None
_workers: weakref.WeakSet[Any] = weakref.WeakSet()


def enable() -> Any:
    """Start measuring in this process (idempotent); the ``CollectorRegistry`` to serve."""
    global _state  # one registry per process, as Prometheus scrapes one per target
    if _state is None:
        _state = _State()
    return _state.registry


def enabled() -> bool:
    """Whether this process measures (someone called :func:`enable`)."""
    return _state is not None


def track_worker(worker: _Counted) -> None:
    """Expose ``worker``'s counters while it lives (the worker calls this when it starts)."""
    _workers.add(worker)


def render() -> bytes:
    """The text exposition of this process's metrics (enabling them if needed)."""
    from prometheus_client import generate_latest

    return bytes(generate_latest(enable()))


def serve(port: int, host: str = "127.0.0.1") -> tuple[str, int]:
    """Serve ``/metrics`` on a thread of its own (workers); the address it listens on."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=enable())
    address = server.server_address
    return str(address[0]), int(address[1])


async def timed_step(step: Awaitable[_T]) -> _T:
    """Await one step and observe its duration."""
    started = time.perf_counter()
    result = await step
    if _state is not None:
        _state.step.observe(time.perf_counter() - started)
    return result


class Observer:
    """What the step loop observes, reached as ``Runtime.metrics`` (no import there)."""

    timed_step = staticmethod(timed_step)


@contextlib.contextmanager
def model_call() -> Iterator[None]:
    """Observe one request to the model endpoint: its duration, and its error's kind."""
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        if _state is not None:
            _state.model_errors.labels(error_kind(exc)).inc()
        raise
    finally:
        if _state is not None:
            _state.model.observe(time.perf_counter() - started)


def sandbox_run(status: str, seconds: float) -> None:
    """Observe one custom tool run in the sandbox."""
    if _state is not None:
        _state.sandbox.labels(status).observe(seconds)


_KINDS = {  # the openai SDK's exceptions -> a short kind (subclasses before their bases)
    "APITimeoutError": "timeout",
    "TimeoutError": "timeout",
    "APIConnectionError": "connection",
    "RateLimitError": "rate_limited",
    "InternalServerError": "server_error",
    "BadRequestError": "bad_request",
    "AuthenticationError": "auth",
    "PermissionDeniedError": "auth",
    "NotFoundError": "not_found",
    "CancelledError": "cancelled",
}


def error_kind(exc: BaseException) -> str:
    """A short, bounded name for a failed model request (a metric label)."""
    from agents._endpoint_errors import unreachable

    if unreachable(exc) is not None:  # refused or no such host, whatever the transport says
        return "connection"
    for cls in type(exc).__mro__:
        if cls.__name__ in _KINDS:
            return _KINDS[cls.__name__]
    status = getattr(exc, "status_code", None)
    return f"http_{status}" if isinstance(status, int) else "other"


async def sample_ready(redis: aioredis.Redis) -> Mapping[str, float]:
    """Sample the ready stream (inbox lag) into this process's gauges; the values.

    A signal waits in the ready stream until a worker with a free slot reads it, so the age of
    the oldest unread signal is how long agents with work wait for a worker.
    """
    shards = bus_keys.ready_shards()
    async with redis.pipeline(transaction=False) as pipe:
        for ready in shards:
            pipe.xlen(ready)
            pipe.xinfo_groups(ready)
        replies = await pipe.execute(raise_on_error=False)
    lengths, groups_of = replies[0::2], replies[1::2]
    values = {"ready_signals": float(sum(n for n in lengths if isinstance(n, int)))}
    age = 0.0
    for ready, groups in zip(shards, groups_of, strict=True):
        last = "0-0"
        if isinstance(groups, list) and groups:
            raw = groups[0].get("last-delivered-id", b"0-0")
            last = raw.decode() if isinstance(raw, bytes) else str(raw)
        waiting = await redis.xrange(ready, min=f"({last}", count=1)
        if waiting:
            entry_id = waiting[0][0]
            entry_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            age = max(age, time.time() - int(entry_id.split("-")[0]) / 1000)
    values["ready_oldest_unread_age_seconds"] = age
    values["dead_letters"] = float(await redis.xlen(bus_keys.dead_letters()))
    if _state is not None:
        _state.ready = values
    return values


async def try_sample_ready(redis: aioredis.Redis) -> bool:
    """:func:`sample_ready`, never raising: metrics must not stop a worker or fail a scrape.
    A failure (Redis away) is logged and the last sample stays; whether it worked."""
    try:
        await sample_ready(redis)
    except RedisError as exc:
        log.warning("metrics_sample_failed", error=repr(exc))
        return False
    return True


class _Collector:
    """Read at scrape time: the live workers' counters, sandbox limits, the last lag sample."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from agents.sandbox import limit_violations

        totals: dict[str, int] = {}
        busy = 0
        workers = list(_workers)
        for worker in workers:
            busy += worker.busy
            for name, count in _copy(partial(dict, worker.counters)).items():
                totals[name] = totals.get(name, 0) + count
        yield GaugeMetricFamily("memgrid_workers", "Workers running in this process.", len(workers))
        yield GaugeMetricFamily("memgrid_worker_busy_slots", "Agents being run now.", busy)
        for name, help_text in _WORKER_COUNTERS.items():
            yield CounterMetricFamily(f"memgrid_{name}", help_text, totals.get(name, 0))
        for name, help_text in _WORKER_MAXIMA.items():
            seconds = totals.get(f"{name}_ms_max", 0) / 1000
            yield GaugeMetricFamily(f"memgrid_{name}_max_seconds", help_text, seconds)
        limits = CounterMetricFamily(
            "memgrid_sandbox_limit_hits", "Tool runs stopped by a sandbox limit.", labels=["limit"]
        )
        for limit, count in _copy(limit_violations).items():
            limits.add_metric([limit], count)
        yield limits
        for name, help_text in _READY.items():
            value = self.state.ready.get(name)
            if value is not None:
                yield GaugeMetricFamily(f"memgrid_{name}", help_text, value)


def _copy(read: Callable[[], dict[str, int]]) -> dict[str, int]:
    """A copy of a dict the worker's loop writes while a worker's scrape thread reads it: a
    key added meanwhile (a sandbox limit hit for the first time) fails the copy; try again."""
    for _ in range(3):
        try:
            return read()
        except RuntimeError:  # dictionary changed size during iteration
            continue
    return {}


_WORKER_COUNTERS = {
    "runs": "Runs (turns) finished by this process's workers.",
    "failed": "Run attempts that failed and will be retried.",
    "dead_lettered": "Inbox entries moved to the dead-letter stream.",
    "dead_letters_trimmed": "Old dead letters dropped to keep the stream under its cap.",
    "preempted": "Runs stopped between steps by a worker shutdown (resumed elsewhere).",
    "lease_expired": "Leases found expired while their turn ran (the turn was cancelled).",
    "lease_renewals": "Lease renewal rounds.",
}
_WORKER_MAXIMA = {
    "lease_renew_late": "Worst lateness of a lease renewal round.",
    "lease_renew": "Worst duration of a lease renewal round.",
    "lease_loop_lag": "Worst lag of the worker's event loop.",
}
_READY = {
    "ready_signals": "Signals in the ready stream (agents with work, read or not).",
    "ready_oldest_unread_age_seconds": "Age of the oldest signal no worker has read (inbox lag).",
    "dead_letters": "Entries in the dead-letter stream.",
}
