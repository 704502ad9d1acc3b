"""`make demo`: the recruiting pipeline on the embedded defaults, with and without a model URL."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from agents.scripted import ChatRequest, Outcome, ScriptedModel, say
from agents.tools.registry import load_import_path
from bus import stop_local_redis
from tests._util import clean_env, memgrid

ROOT = Path(__file__).resolve().parent.parent
RECRUITING = ROOT / "examples" / "recruiting"


def _demo(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = memgrid(env, "demo", timeout=180, cwd=ROOT)
    return done, time.monotonic() - started


def _check_pipeline(out: str) -> None:
    table = out.split("candidate                 decision", 1)[1].split("=== shared memory", 1)[0]
    rows = {line.split()[0]: line for line in table.splitlines() if line.startswith("0")}
    assert len(rows) == 7
    assert "forwarded to outreach" in rows["01-ada-lovelace.txt"]
    assert "Hi Ada" in rows["01-ada-lovelace.txt"]
    assert "rejected" in rows["02-bob-smith.txt"]
    assert "replied: This resume is" in rows["06-malformed.txt"]
    assert "[outreach] -> core_memory_replace(" in out
    context = out.split("the evaluator's next context", 1)[1]
    assert "The company is called Lettuce AI" in context
    assert "memgrid blocks history block-" in out


@pytest.mark.slow
def test_make_demo_offline_runs_the_pipeline_in_under_two_minutes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        done, took = _demo(clean_env(home))
        # `make demo` stops the Redis it started (issue #13): nothing left with parent PID 1.
        assert not stop_local_redis(home), "the demo left its redis-server running"
    finally:
        stop_local_redis(home)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "SCRIPTED MODEL" in done.stdout and "stand-in" in done.stdout
    _check_pipeline(done.stdout)
    assert took < 120
    assert (home / "redis" / "appendonlydir").exists() or any((home / "redis").glob("*.aof"))


@pytest.mark.slow
def test_demo_uses_any_openai_compatible_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    policy = load_import_path(f"{RECRUITING / 'policy.py'}:recruiting_policy")
    try:
        with ScriptedModel.start_in_thread(policy) as server:
            done, _took = _demo(
                clean_env(home, OPENAI_BASE_URL=server.base_url, MEMGRID_MODEL="openai/any-model")
            )
            served = len(server.requests)
    finally:
        stop_local_redis(home)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "SCRIPTED MODEL" not in done.stdout
    assert f"Using the model at {server.base_url}" in done.stdout
    _check_pipeline(done.stdout)
    assert served >= 10  # every step went to the server we named


def _never_edits(request: ChatRequest) -> Outcome:
    """A model that answers everything in words and never calls a tool."""
    return say("Noted.")


@pytest.mark.slow
def test_demo_says_what_did_not_happen_when_the_model_does_not_cooperate(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    try:
        with ScriptedModel.start_in_thread(_never_edits) as server:
            done, _took = _demo(
                clean_env(home, OPENAI_BASE_URL=server.base_url, MEMGRID_MODEL="openai/any-model")
            )
        assert not stop_local_redis(home), "the demo left its redis-server running"
    finally:
        stop_local_redis(home)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert "ExceptionGroup" not in out
    assert "the outreach agent did not edit the shared 'company' block" in done.stdout
    assert "the evaluator's company block still reads" in done.stdout
    assert "01-ada-lovelace.txt       replied: Noted." in done.stdout  # the table still shows
    assert "no candidate was forwarded to outreach, so no email was drafted" in done.stdout
