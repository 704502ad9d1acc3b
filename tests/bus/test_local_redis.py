"""The local redis-server: started once per MEMGRID_HOME, reused, survives its starter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from bus import RedisUnavailable, ensure_local_redis, find_redis_server, stop_local_redis


def _pid(home: Path) -> int:
    return int((home / "redis" / "redis.pid").read_text())


def test_start_reuse_and_restart_keep_data(tmp_path: Path) -> None:
    home = tmp_path / "h"
    url = ensure_local_redis(home)
    try:
        assert url.startswith("unix://")
        conf = (home / "redis" / "redis.conf").read_text()
        assert "appendonly yes" in conf
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        first_pid = _pid(home)
        assert ensure_local_redis(home) == url  # reused, not a second server
        assert _pid(home) == first_pid
        client.close()
        assert stop_local_redis(home)
        url2 = ensure_local_redis(home)  # restarted on the same data
        client = redis.Redis.from_url(url2)
        assert client.get("k") == b"v"
        client.close()
    finally:
        stop_local_redis(home)


def test_survives_a_killed_starter_and_a_killed_server(tmp_path: Path) -> None:
    home = tmp_path / "h"
    # A memgrid process starts Redis, writes, and is SIGKILLed.
    code = (
        "import sys, time, redis; from bus import ensure_local_redis; from pathlib import Path;"
        "url = ensure_local_redis(Path(sys.argv[1])); redis.Redis.from_url(url).set('a', '1');"
        "print(url, flush=True); time.sleep(60)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE, text=True
    ) as proc:
        _kill_starter_then_server(proc, home)


def _kill_starter_then_server(proc: subprocess.Popen[str], home: Path) -> None:
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert ensure_local_redis(home) == url
        client = redis.Redis.from_url(url)
        assert client.get("a") == b"1"
        client.close()
        # The server itself crashes: AOF (fsync every second) brings the data back.
        time.sleep(1.5)
        os.kill(_pid(home), signal.SIGKILL)
        url2 = ensure_local_redis(home)
        client = redis.Redis.from_url(url2)
        assert client.get("a") == b"1"
        client.close()
    finally:
        proc.kill()
        stop_local_redis(home)


def test_long_home_falls_back_to_loopback_tcp(tmp_path: Path) -> None:
    home = tmp_path / ("x" * 90)
    url = ensure_local_redis(home)
    try:
        assert url.startswith("redis://127.0.0.1:")
    finally:
        stop_local_redis(home)


def test_bad_redis_server_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(RedisUnavailable, match="REDIS_SERVER"):
        find_redis_server(str(tmp_path / "nope"))
