"""The course examples, each run as a script the way a reader runs it.

With no model configured they start the scripted model with their own policy and exit 0 only
when the expected outcome happened; these tests check that, and the lines that show it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agents.scripted import Policy, ScriptedModel
from tests._cluster import sync_client

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTICE = "SCRIPTED MODEL, a stand-in that follows the fixed rules in policy.py"

pytestmark = pytest.mark.slow


def _run(name: str, tmp_path: Path, redis_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>/main.py`` from another directory, on the test Redis."""
    sync_client(redis_url).flushall()
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"OPENAI_API_KEY", "OPENAI_BASE_URL", "MEMGRID_MODEL", "MEMGRID_EMBEDDING"}
    }
    base |= {
        "MEMGRID_REDIS_URL": redis_url,
        "MEMGRID_HOME": str(tmp_path / "home"),
        "MEMGRID_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name / "main.py")],
        cwd=tmp_path,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _policy(name: str) -> Policy:
    """The policy shipped with an example, loaded from its file."""
    path = EXAMPLES / name / "policy.py"
    spec = importlib.util.spec_from_file_location(f"example_policy_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    policy: Policy = module.policy
    return policy


def test_memory_from_scratch(tmp_path: Path, redis_url: str) -> None:
    out = _run("memory_from_scratch", tmp_path, redis_url).stdout
    assert NOTICE in out
    assert "assistant: I'm sorry, I don't know your name." in out
    assert """core_memory_save({'section': 'human', 'memory': "The human's name is Bob"})""" in out
    assert out.rstrip().endswith(
        "assistant: Your name is Bob.\n"
        """  memory: {'human': "The human's name is Bob", 'agent': ''}\n\n"""
        "The agent saved the name and used it."
    )


def test_memory_agent(tmp_path: Path, redis_url: str) -> None:
    out = _run("memory_agent", tmp_path, redis_url, MEMGRID_EMBEDDING="hashing/384").stdout
    assert NOTICE in out
    assert '-> core_memory_append({"label":"human","content":"Name: Bob"' in out
    assert "human block now: 'Name: Bob'" in out
    assert '-> core_memory_replace({"label":"human","old_content":"Name: Bob"' in out
    assert "human block now: 'Name: Charles'" in out
    assert "agent: Your name is Charles." in out
    history = re.findall(r"^  v(\d) by agent-[0-9a-f-]+: (.*)$", out, re.MULTILINE)
    assert history == [("1", "''"), ("2", "'Name: Bob'"), ("3", "'Name: Charles'")]
    assert "name corrected in core memory: True; last answer uses it: True" in out


def test_task_queue(tmp_path: Path, redis_url: str) -> None:
    out = _run("task_queue", tmp_path, redis_url, MEMGRID_EMBEDDING="hashing/384").stdout
    assert NOTICE in out
    assert out.count("-> task_queue_push(") == 2
    assert out.count("-> task_queue_pop(") == 2
    assert 'tasks block now: ["start calling me Mickey", "tell me a haiku about my name"]' in out
    assert "tasks block now: []" in out
    versions = re.findall(r"^  v\d: (.*)$", out, re.MULTILINE)
    assert versions == [
        "[]",
        '["start calling me Mickey"]',
        '["start calling me Mickey", "tell me a haiku about my name"]',
        '["tell me a haiku about my name"]',
        "[]",
    ]
    assert "agent: From now on I'll call you Mickey." in out
    assert "pushed two tasks, popped both, and did them: True" in out


def test_archival_rag_with_the_local_minilm_model(tmp_path: Path, redis_url: str) -> None:
    out = _run("archival_rag", tmp_path, redis_url).stdout  # MEMGRID_EMBEDDING unset: MiniLM
    assert NOTICE in out
    assert re.search(r"agentos-handbook\.pdf \(\d+ bytes\); pypdf reads back \d+ characters", out)
    bar = re.findall(r"ingesting \[([#.]+)\] (\d+)/(\d+) passages", out)
    assert len(bar) > 2  # the bar moved in steps
    assert bar[0][0] == "." * 30
    assert bar[-1][0] == "#" * 30
    assert bar[-1][1] == bar[-1][2]
    assert f"{bar[-1][2]} passages embedded with local/all-MiniLM-L6-v2" in out
    assert f"{bar[-1][2]} passages in its archival memory" in out
    assert "-> archival_memory_search(" in out
    [answer] = [line for line in out.splitlines() if line.startswith("agent: ")]
    assert "According to the employee handbook" in answer
    assert answer.endswith(
        "Vacation policy Every full-time employee receives 25 days of paid vacation per year, "
        "plus public holidays. Vacation days accrue monthly and up to 5 unused days carry over "
        "into the next year. Request vacation at least two weeks in advance in the HR portal; "
        "your manager approves it within three working days."
    )
    assert "the answer cites the handbook's vacation policy: True" in out


@pytest.mark.parametrize(
    ("name", "success"),
    [
        ("memory_from_scratch", "The agent saved the name and used it."),
        ("memory_agent", "name corrected in core memory: True; last answer uses it: True"),
    ],
)
def test_a_configured_model_is_used_instead_of_the_stand_in(
    name: str, success: str, tmp_path: Path, redis_url: str
) -> None:
    """``OPENAI_BASE_URL`` set: no stand-in, the model there answers (here: the policy)."""
    with ScriptedModel.start_in_thread(_policy(name)) as endpoint:
        out = _run(
            name,
            tmp_path,
            redis_url,
            OPENAI_BASE_URL=endpoint.base_url,
            MEMGRID_EMBEDDING="hashing/384",
        ).stdout
        models = {request.model for request in endpoint.requests}
    assert "SCRIPTED MODEL" not in out
    assert success in out
    assert models == {"gpt-4o-mini"}
