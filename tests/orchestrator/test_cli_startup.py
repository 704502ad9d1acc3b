"""Start-up: commands that never call a model do not load the model client (or the web stack).

The openai SDK alone takes ~0.65 s to import; `memgrid agents list` and its kind must stay near
0.3 s. Each command runs as a user runs it (a subprocess on a real Redis), with Python's
``-X importtime`` listing every module it imported.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request

import pytest

from tests._util import background
from tests.orchestrator._cli import memgrid

# What only a model call, an uploaded document or the REST API needs.
HEAVY = ("openai", "httpx2", "litestar", "uvicorn", "onnxruntime", "tiktoken")

MODEL_FREE = (
    ("agents", "list"),
    ("agents", "show", "quiet"),
    ("blocks", "list"),
    ("memory", "quiet"),
    ("messages", "quiet"),
    ("redis", "url"),
)


def _imported(env: dict[str, str], *args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "orchestrator.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr[-2000:])
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize("command", MODEL_FREE, ids=" ".join)
def test_model_free_commands_load_no_model_client(
    env: dict[str, str], command: tuple[str, ...]
) -> None:
    created = memgrid(env, "agents", "create", "quiet", "--human", "Name: Q")
    assert created.returncode == 0, created.stderr
    modules = _imported(env, *command)
    assert "redis" in modules  # it did its work (the probe sees a real run)
    assert sorted(m for m in HEAVY if m in modules) == []


def test_a_model_call_still_loads_the_client(env: dict[str, str]) -> None:
    created = memgrid(env, "agents", "create", "talker", "--model", "openai/scripted")
    assert created.returncode == 0, created.stderr
    assert "openai" in _imported(env, "send", "talker", "hello")


def test_serve_says_where_it_listens_and_what_it_uses(env: dict[str, str]) -> None:
    argv = [sys.executable, "-m", "orchestrator.cli", "serve", "--port", "0", "--no-worker"]
    with background(argv, env=env, merge_stderr=True) as serve:
        banner = "".join(serve.stdout.readline() for _ in range(3))  # the test's timeout
        api = re.search(r"API at (http://127\.0\.0\.1:\d+) \(docs: (\S+)/schema\)", banner)
        assert api is not None, banner
        assert api.group(2) == api.group(1)
        assert f"the dashboard at {api.group(1)}/ and" in banner
        assert f"Redis at {env['MEMGRID_REDIS_URL']}" in banner
        assert f"passages in the embedded Qdrant engine under {env['MEMGRID_HOME']}" in banner
        assert "no worker in this process" in banner and "Ctrl-C" in banner
        with urllib.request.urlopen(f"{api.group(1)}/schema", timeout=10) as docs:
            assert docs.status == 200  # it does listen there
