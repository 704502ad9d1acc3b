"""What every benchmark here needs, written once: processes, readers, statistics, agents.

A script run as ``python benchmarks/<name>.py`` has ``benchmarks/`` first on ``sys.path``, so it
imports this package as ``_harness`` (no file there is named like one of memgrid's packages).
Its modules: ``cli``, ``fleet``, ``history``, ``processes``, ``rest``, ``streams``, ``measure``,
``runtime`` and ``policies``; all but the policies are exported here.

* cli: :func:`options` (a parser with the options benchmarks share), :func:`int_list` (a
  comma-separated sweep), :func:`run_on_redis` (parse, quiet the logs, measure on a private
  redis-server or Redis Cluster, a :class:`Scratch`, from :func:`private_redis`);
* fleet: :func:`start_fleet` (a level of a worker sweep: scripted models and workers, a
  :class:`Fleet`);
* history: :func:`chat_history` (recall memory as turns write it, from time :data:`T0`);
* processes: :func:`free_port`, :func:`start_redis` / :func:`redis_server` (a private
  ``redis-server`` without persistence), :func:`scratch` (one in a temporary folder),
  :func:`spawn` (a process logging to a file), :func:`start_printing_url` (a process that
  prints its URL on its first line),
  :func:`start_model` (the scripted model; benchmark policies in ``policies``), :func:`stop`,
  :func:`memgrid_env`, :class:`Stack` and :func:`serve_stack` (Redis, the scripted model and
  ``memgrid serve``); over its REST API, :func:`rest_agents` and :func:`send_message`;
* readers of ``/proc``: :func:`cpu_seconds`, :func:`memory`;
* raw Redis Streams, the baseline of a bus: :func:`raw_rate`, :func:`raw_latency`;
* statistics and reports: :func:`percentile`, :func:`timed`, :func:`round_robin`,
  :func:`table`; profiles: :func:`py_spy` / :func:`py_spy_stop`, :func:`cprofile_top`;
* the runtime: :func:`quiet_logs`, :func:`create_agents`, :func:`wait_workers`,
  :func:`one_step_turn`, :class:`CapturedRequest` (what the loop sends the model),
  :func:`instant_model` (``LLMClient.chat`` answers at once, no HTTP) and
  :class:`RedisCounter` (Redis round trips by command), :func:`memgrid_command` (``memgrid``
  with those two, patches or cProfile in its process).
"""

from __future__ import annotations

from _harness.cli import Scratch, int_list, options, private_redis, run_on_redis
from _harness.fleet import Fleet, start_fleet
from _harness.history import T0, chat_history
from _harness.measure import (
    PACKAGES,
    cprofile_top,
    percentile,
    py_spy,
    py_spy_stop,
    py_spy_top,
    round_robin,
    table,
    timed,
)
from _harness.processes import (
    CLI,
    Stack,
    cpu_seconds,
    free_port,
    memgrid_env,
    memory,
    redis_server,
    scratch,
    serve_stack,
    spawn,
    start_api,
    start_model,
    start_printing_url,
    start_redis,
    stop,
)
from _harness.rest import rest_agents, send_message
from _harness.runtime import (
    CapturedRequest,
    RedisCounter,
    create_agents,
    instant_model,
    memgrid_command,
    memgrid_with,
    one_step_turn,
    quiet_logs,
    wait_workers,
)
from _harness.streams import raw_latency, raw_rate

__all__ = (
    "CLI",
    "PACKAGES",
    "T0",
    "CapturedRequest",
    "Fleet",
    "RedisCounter",
    "Scratch",
    "Stack",
    "chat_history",
    "cprofile_top",
    "cpu_seconds",
    "create_agents",
    "free_port",
    "instant_model",
    "int_list",
    "memgrid_command",
    "memgrid_env",
    "memgrid_with",
    "memory",
    "one_step_turn",
    "options",
    "percentile",
    "private_redis",
    "py_spy",
    "py_spy_stop",
    "py_spy_top",
    "quiet_logs",
    "raw_latency",
    "raw_rate",
    "redis_server",
    "rest_agents",
    "round_robin",
    "run_on_redis",
    "scratch",
    "send_message",
    "serve_stack",
    "spawn",
    "start_api",
    "start_fleet",
    "start_model",
    "start_printing_url",
    "start_redis",
    "stop",
    "table",
    "timed",
    "wait_workers",
)
