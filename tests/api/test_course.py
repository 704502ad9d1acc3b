"""The course's client code, unchanged, against a real `memgrid up` and the scripted model.

``memgrid up --workers 2`` runs as a subprocess (its Redis: the test session's; its passage
engine: embedded under a private ``MEMGRID_HOME``; its model: the scripted model in this
process, following :mod:`tests.api.course.policy`). The course's scripts
(``tests/api/course/course_letta*.py``) run under the interpreters of the throwaway client
virtualenvs that ``make test`` creates (see :mod:`tests.api._letta`).

``memgrid up`` runs on memgrid's own interpreter, as a user installs it (no letta-client
beside memgrid; the test checks). The course's task-queue tools ``import letta_client``
inside the tool sandbox: they get it from the sandbox's tool environment (built once per
session, see ``default_tool_env``), with the letta-client generation of the script that
registered them (0.1.x tools call ``blocks.modify``, which 1.x renamed).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import anyio
import httpx
import pytest

from agents.scripted import ScriptedModel
from tests.api._letta import LETTA01, LETTA1X, client_python
from tests.api.course.policy import course_policy

COURSE = Path(__file__).parent / "course"
REPO = Path(__file__).resolve().parents[2]
SCRIPT_TIMEOUT_S = float(os.environ.get("MEMGRID_TEST_COURSE_TIMEOUT_S") or 300)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _course_files(folder: Path) -> Path:
    """The files the course's code opens: its system prompt, resumes and handbook PDF."""
    folder.mkdir()
    shutil.copy(COURSE / "task_queue_system_prompt.txt", folder)
    shutil.copytree(COURSE / "resumes", folder / "resumes")
    spec = importlib.util.spec_from_file_location(
        "course_handbook", REPO / "examples" / "archival_rag" / "handbook.py"
    )
    assert spec is not None and spec.loader is not None
    handbook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handbook)
    (folder / "handbook.pdf").write_bytes(handbook.handbook_pdf())
    return folder


@pytest.fixture
def up_log(tmp_path: Path) -> Iterator[IO[bytes]]:
    """Where `memgrid up` and its children write (shown when a test fails)."""
    with (tmp_path / "memgrid-up.log").open("w+b") as log:
        yield log


@pytest.fixture
def client_log(tmp_path: Path) -> Iterator[IO[bytes]]:
    """What the course's script prints."""
    with (tmp_path / "client.log").open("w+b") as log:
        yield log


async def _run_script(
    command: list[str], cwd: Path, env: dict[str, str], log: IO[bytes]
) -> int | None:
    """Run a client script to its end (``None``: killed after ``SCRIPT_TIMEOUT_S``)."""
    async with await anyio.open_process(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
    ) as process:
        with anyio.move_on_after(SCRIPT_TIMEOUT_S):
            return await process.wait()
        process.kill()
        await process.wait()
    return None


def _tail(log: IO[bytes], size: int = 6000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-size:]


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@contextlib.asynccontextmanager
async def memgrid_up(
    interpreter: str, env: dict[str, str], log: IO[bytes], cwd: Path
) -> AsyncIterator[str]:
    """`memgrid up --workers 2` with its API on a free port; yields the API's URL.

    Stops it with SIGINT (as Ctrl-C would) and checks that every child process is gone.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [interpreter, "-m", "orchestrator.cli", "up", "--workers", "2", "--port", str(port)]
    process = await anyio.open_process(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            with anyio.fail_after(60):
                while True:
                    if process.returncode is not None:
                        raise AssertionError(f"memgrid up exited early:\n{_tail(log)}")
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(f"{url}/v1/health/")).status_code == 200:
                            break
                    await anyio.sleep(0.2)
        yield url
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGINT)
                with anyio.move_on_after(45):
                    await process.wait()
                if process.returncode is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    await process.wait()
            await process.aclose()
    output = _tail(log, 1_000_000)
    assert "memgrid up: stopped" in output, output[-6000:]
    children = [int(pid) for pid in re.findall(r"started \(pid (\d+)\)", output)]
    assert len(children) >= 3, output[-6000:]  # two workers and the API
    assert all(_gone(pid) for pid in children), f"children left behind: {children}"


@pytest.mark.slow
@pytest.mark.timeout(int(SCRIPT_TIMEOUT_S) + 120)
@pytest.mark.parametrize(
    ("variable", "script"), [(LETTA01, "course_letta01.py"), (LETTA1X, "course_letta1x.py")]
)
async def test_course_client_code_runs_against_memgrid_up(
    variable: str,
    script: str,
    redis_client: object,
    redis_url: str,
    tmp_path: Path,
    up_log: IO[bytes],
    client_log: IO[bytes],
    tool_envs_root: Path,
    default_tool_env: str,
) -> None:
    interpreter = client_python(variable)
    assert importlib.util.find_spec("letta_client") is None, (
        "memgrid's interpreter must not hold letta-client: the course's tools would find it "
        "there instead of in their sandbox environment"
    )
    files = _course_files(tmp_path / "course")
    home = tmp_path / "home"
    home.mkdir()
    # The course names OpenAI's text-embedding-3-small and ada-002 (1536-d at OpenAI); the
    # stand-in serves 256-d vectors under those names, as LiteLLM/Ollama aliases serve other
    # sizes: memgrid must learn the size from the endpoint (issue #12).
    async with ScriptedModel.serve(course_policy, embedding_dimension=256) as model:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMGRID_", "OPENAI_"))}
        env.update(
            PYTHONPATH=str(REPO),  # this checkout, on the interpreter memgrid is installed in
            MEMGRID_HOME=str(home),
            MEMGRID_SANDBOX_ENVS=str(tool_envs_root),
            MEMGRID_REDIS_URL=redis_url,
            MEMGRID_LOG_LEVEL="WARNING",
            OPENAI_BASE_URL=model.base_url,
            OPENAI_API_KEY="test",
        )
        env.pop("PYTHONHOME", None)
        async with memgrid_up(sys.executable, env, up_log, tmp_path) as url:
            client_env = {
                "PATH": os.environ.get("PATH", os.defpath),
                "HOME": str(tmp_path),
                "LANG": "C.UTF-8",
                "PYTHONIOENCODING": "utf-8",
                "PYTHONUNBUFFERED": "1",
                "LETTA_BASE_URL": url,
            }
            code = await _run_script(
                [interpreter, str(COURSE / script)], files, client_env, client_log
            )
    output = _tail(client_log, 1_000_000)
    sys.stdout.write(output)
    detail = f"{output[-8000:]}\n--- memgrid up ---\n{_tail(up_log)}"
    assert code == 0, detail
    assert output.rstrip().endswith("OK"), detail
    assert "Traceback" not in _tail(up_log, 1_000_000), _tail(up_log)
