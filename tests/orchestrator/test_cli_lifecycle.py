"""Process lifecycle: a command stops the local Redis it used unless told to keep it.

Real `memgrid` subprocesses on a local redis-server of their own MEMGRID_HOME (no
MEMGRID_REDIS_URL): after each command no redis-server is left unless it was kept, and the data
is still there the next time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus import stop_local_redis

ROOT = Path(__file__).resolve().parents[2]
STOP_HINT = "memgrid redis stop"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "h"
    yield folder
    stop_local_redis(folder)  # whatever a failing test left behind


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMGRID_", "OPENAI_"))}
    return {**env, "MEMGRID_HOME": str(home), "MEMGRID_EMBEDDING": "hashing/384", **extra}


def _memgrid(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env=_env(home, **extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _server_pid(home: Path) -> int | None:
    """The pid of the home's redis-server if it still runs (a zombie does not)."""
    try:
        pid = int((home / "redis" / "redis.pid").read_text())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError):
        return None
    return pid if state != "Z" and b"redis" in command else None


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_one_shot_commands_stop_the_redis_they_started_and_the_data_stays(home: Path) -> None:
    _ok(_memgrid(home, "agents", "create", "ada", "--human", "Name: Ada"))
    assert (home / "redis" / "redis.url").exists()  # it did start one
    assert _server_pid(home) is None
    listed = _memgrid(home, "agents", "list")
    assert "ada" in _ok(listed)  # AOF brought it back
    assert STOP_HINT not in listed.stderr  # nothing kept, nothing to announce
    assert _server_pid(home) is None
    url = _memgrid(home, "redis", "url")  # starts nothing
    assert url.returncode == 1 and "memgrid redis start" in url.stderr
    assert _server_pid(home) is None


def test_a_kept_redis_is_announced_once_and_stops_on_request(home: Path) -> None:
    first = _memgrid(home, "--keep-redis", "agents", "create", "ada")
    _ok(first)
    pid = _server_pid(home)
    assert pid is not None
    assert first.stderr.count(STOP_HINT) == 1, first.stderr
    again = _memgrid(home, "agents", "list", MEMGRID_KEEP_REDIS="1")
    assert "ada" in _ok(again) and STOP_HINT not in again.stderr  # announced once
    plain = _memgrid(home, "agents", "list")  # kept: a plain command leaves it running
    assert _ok(plain) and STOP_HINT not in plain.stderr
    assert _server_pid(home) == pid
    assert _ok(_memgrid(home, "redis", "url")).strip().startswith("unix://")
    assert _ok(_memgrid(home, "redis", "stop")).strip() == "stopped"
    assert _server_pid(home) is None
    _ok(_memgrid(home, "agents", "list"))  # no longer kept: stopped after use
    assert _server_pid(home) is None


def test_redis_start_keeps_it_running_until_redis_stop(home: Path) -> None:
    started = _memgrid(home, "redis", "start")
    url = _ok(started).strip()
    assert url.startswith("unix://") and started.stderr.count(STOP_HINT) == 1
    pid = _server_pid(home)
    assert pid is not None
    again = _memgrid(home, "redis", "start")
    assert _ok(again).strip() == url and STOP_HINT not in again.stderr
    _ok(_memgrid(home, "agents", "list"))
    assert _server_pid(home) == pid
    assert _ok(_memgrid(home, "redis", "stop")).strip() == "stopped"
    assert _server_pid(home) is None


@pytest.mark.slow
def test_memgrid_up_stopped_with_ctrl_c_leaves_no_redis(home: Path, tmp_path: Path) -> None:
    log = (tmp_path / "up.log").open("w+")
    up = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "up", "--workers", "1", "--no-api"],
        env=_env(home, OPENAI_BASE_URL="http://127.0.0.1:9/v1", OPENAI_API_KEY="x"),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "starting 1 workers" not in Path(log.name).read_text():
            assert up.poll() is None and time.monotonic() < deadline, Path(log.name).read_text()
            time.sleep(0.05)
        pid = _server_pid(home)
        assert pid is not None
        # A one-shot command while `up` runs: `up` still uses the Redis, so it stays.
        _ok(_memgrid(home, "agents", "create", "ada"))
        assert _server_pid(home) == pid
        os.killpg(up.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it
        assert up.wait(timeout=30) == 0, Path(log.name).read_text()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(timeout=10)
        log.close()
    assert _server_pid(home) is None, Path(log.name).read_text()
    assert "ada" in _ok(_memgrid(home, "agents", "list"))
