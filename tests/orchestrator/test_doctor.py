"""``memgrid doctor`` against the embedded defaults, a model endpoint, and broken settings."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from agents.scripted import ScriptedModel, echo
from bus import stop_local_redis
from tests._util import clean_env, memgrid


def _doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return memgrid(env, "doctor", "--json", timeout=120)


def test_embedded_defaults_are_green(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        with ScriptedModel.start_in_thread(echo) as model:
            env = clean_env(home) | {"OPENAI_BASE_URL": model.base_url}
            done = _doctor(env)
        assert done.returncode == 0, done.stdout + done.stderr
        checks = {c["part"]: c for c in json.loads(done.stdout)}
        assert {p: c["status"] for p, c in checks.items()} == {
            "redis": "ok",
            "qdrant": "ok",
            "embedder": "ok",
            "llm": "ok",
        }
        assert "AOF on" in checks["redis"]["detail"]
        assert "384-d" in checks["embedder"]["detail"]
        assert str(home / "qdrant") in checks["qdrant"]["detail"]
        assert model.base_url in checks["llm"]["detail"]
    finally:
        stop_local_redis(home)


def test_broken_settings_fail_with_a_fix(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home") | {
        "MEMGRID_REDIS_URL": "redis://127.0.0.1:1/0",
        "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
        "MEMGRID_EMBEDDING": "nonsense/model",
    }
    done = _doctor(env)
    assert done.returncode == 1
    checks = {c["part"]: c for c in json.loads(done.stdout)}
    assert checks["redis"]["status"] == "fail"
    assert "MEMGRID_REDIS_URL" in checks["redis"]["fix"]
    assert checks["llm"]["status"] == "fail" and "OPENAI_BASE_URL" in checks["llm"]["fix"]
    assert checks["embedder"]["status"] == "fail"
    assert "MEMGRID_EMBEDDING" in checks["embedder"]["fix"]
    assert "Traceback" not in done.stderr
