"""One level of a worker sweep: scripted models and ``memgrid worker`` processes on one Redis,
started until every worker beats, stopped together."""

from __future__ import annotations

import argparse
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import anyio

from _harness.processes import CLI, memgrid_env, spawn, start_model, stop
from _harness.runtime import wait_workers
from bus import connect


@dataclass
class Fleet:
    """The processes of one level; their logs are ``model-<i>.log`` and ``worker-<i>.log``
    in ``folder``."""

    folder: Path
    models: list[subprocess.Popen[bytes]]
    workers: list[subprocess.Popen[bytes]]

    @property
    def pids(self) -> dict[str, int]:
        """``model 1``..., ``worker 1``...: each process's pid, for the /proc readers."""
        found = {f"model {i + 1}": proc.pid for i, proc in enumerate(self.models)}
        return found | {f"worker {i + 1}": proc.pid for i, proc in enumerate(self.workers)}

    def worker_log(self, index: int) -> Path:
        return self.folder / f"worker-{index}.log"

    def close(self) -> None:
        """SIGTERM to every process (resumed first, if paused), then wait for each."""
        for proc in self.workers + self.models:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers + self.models:
            stop(proc, signalled=True)


async def start_fleet(
    url: str,
    folder: Path,
    args: argparse.Namespace,
    *,
    models: int,
    workers: int,
    slots: int,
    arrivals: bool = False,
    first_worker: list[str] | None = None,
) -> Fleet:
    """``models`` scripted models answering ``say("ok")`` after ``--latency`` seconds, and
    ``workers`` ``memgrid worker --concurrency SLOTS --lease-ms LEASE_MS`` processes (worker
    *i* on model *i mod models*, ``MEMGRID_HOME`` beside ``folder``), once every worker beats
    on the Redis at ``url``; their logs in ``folder`` (made here).

    Args:
        args: the benchmark's options; ``--latency`` and ``--lease-ms`` are used.
        arrivals: each model writes its requests' arrival times to ``model-<i>.arrivals``.
        first_worker: the command of worker 1 in place of ``memgrid`` (a profiler's, say).
    """
    await anyio.Path(folder).mkdir()
    fleet = Fleet(folder, [], [])
    client = connect(url)
    try:
        urls = []
        for index in range(models):
            settings = {"MEMGRID_BENCH_LATENCY": str(args.latency)}
            if arrivals:
                settings["MEMGRID_BENCH_ARRIVALS"] = str(folder / f"model-{index}.arrivals")
            log = folder / f"model-{index}.log"
            proc, model_url = start_model(log, "_harness.policies:slow_ok", settings)
            fleet.models.append(proc)
            urls.append(model_url)
        argv = ["worker", "--concurrency", str(slots), "--drain-seconds", "5"]
        argv += ["--lease-ms", str(args.lease_ms)]
        home = folder.parent / "home"
        for index in range(workers):
            env = memgrid_env(url, home, urls[index % len(urls)], log_level="WARNING")
            cmd = [*(first_worker if first_worker and index == 0 else CLI), *argv]
            fleet.workers.append(spawn(cmd, env, fleet.worker_log(index)))
        await wait_workers(client, workers, fleet.workers, folder)
    except BaseException:
        fleet.close()
        raise
    finally:
        await client.aclose()
    return fleet
