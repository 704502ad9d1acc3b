"""Where the official clients live for the tests: throwaway virtualenvs made by ``make test``.

letta-client is not a dependency of memgrid. ``make test`` installs each major version into its
own virtualenv (``.venv-letta01``: letta-client 0.1.x, ``.venv-letta1x``: 1.x) and points
``MEMGRID_TEST_LETTA01_PYTHON`` / ``MEMGRID_TEST_LETTA1X_PYTHON`` at their interpreters. A bare
``pytest`` without them fails these tests, saying so; ``MEMGRID_TEST_NO_LETTA_CLIENTS=1`` skips
them instead, for someone who knowingly runs without the clients (``make test`` never does).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from tests.api.conftest import Served

__all__ = (
    "LETTA01",
    "LETTA1X",
    "bob",
    "client_python",
    "official_clients_test",
    "run_client_script",
)

LETTA01 = "MEMGRID_TEST_LETTA01_PYTHON"
LETTA1X = "MEMGRID_TEST_LETTA1X_PYTHON"
OPT_OUT = "MEMGRID_TEST_NO_LETTA_CLIENTS"

# How a client script starts, for 0.1.x and 1.x: ``client`` on the API at ``sys.argv[1]``,
# ``agent`` a new agent whose "human" block says "Name: Bob", ``hi`` a message saying "hi".
_BOB = {
    LETTA01: """
import json, sys, time
from letta_client import ApprovalCreate, CreateBlock, Letta, MessageCreate

client = Letta(base_url=sys.argv[1])
agent = client.agents.create(
    memory_blocks=[CreateBlock(label="human", value="Name: Bob")],
    model="openai/gpt-4o-mini",
    embedding="hashing/384",{more}
)
hi = [MessageCreate(role="user", content="hi")]
""",
    LETTA1X: """
import json, sys, time
from letta_client import Letta

client = Letta(base_url=sys.argv[1], api_key="unused")
agent = client.agents.create(
    memory_blocks=[{{"label": "human", "value": "Name: Bob"}}],
    model="openai/gpt-4o-mini",
    embedding="hashing/384",{more}
)
hi = [{{"role": "user", "content": "hi"}}]
""",
}


def bob(variable: str, *create: str) -> str:
    """The start of a script for the client ``variable`` names (:data:`_BOB`); ``create``:
    more arguments of ``client.agents.create``, as source (``'tool_rules=[...]'``)."""
    return _BOB[variable].format(more="".join(f"\n    {argument}," for argument in create))


def client_python(variable: str) -> str:
    """The interpreter with letta-client installed that ``variable`` names.

    Fails the test (skips it only with ``MEMGRID_TEST_NO_LETTA_CLIENTS=1``) when unset.
    """
    interpreter = os.environ.get(variable)
    if not interpreter:
        if os.environ.get(OPT_OUT) == "1":
            pytest.skip(f"{OPT_OUT}=1: the official clients are not tested in this run")
        pytest.fail(
            f"{variable} is not set: run `make test` (it installs letta-client into "
            f".venv-letta01 and .venv-letta1x and sets {LETTA01} and {LETTA1X}), or set "
            f"{variable} to a Python with letta-client installed; {OPT_OUT}=1 skips these "
            "tests instead",
            pytrace=False,
        )
    if not Path(interpreter).is_file():
        pytest.fail(f"{variable}={interpreter} does not exist; run `make test`", pytrace=False)
    return interpreter


async def run_client_script(variable: str, script: str, folder: Path, *args: str) -> str:
    """Run ``script`` (Python source) with the official client that ``variable`` names, with
    ``args`` as its arguments; assert it exits 0 having printed ``OK`` last. Returns its output
    (stdout and stderr, echoed to stdout for the test's report).

    The script is written to ``folder/client_script.py``: a file, since the client's
    ``upsert_from_function`` reads a function's source from it.
    """
    interpreter = client_python(variable)
    path = folder / "client_script.py"
    path.write_text(script)
    result = await anyio.run_process(
        [interpreter, str(path), *args], check=False, stderr=subprocess.STDOUT
    )
    output = result.stdout.decode()
    sys.stdout.write(output)
    assert result.returncode == 0, output
    assert output.rstrip().endswith("OK"), output
    return output


def official_clients_test(
    script_01: str, script_1x: str, *args: str, slow: bool = True
) -> Callable[[str, str, Served, Path], Awaitable[None]]:
    """A test that runs ``script_01`` with letta-client 0.1.x and ``script_1x`` with 1.x
    against the ``served`` API (:func:`run_client_script`, with ``args`` after the API's
    URL); marked slow unless ``slow`` is false. Bind it to a ``test_...`` name in a module."""

    @pytest.mark.parametrize(("variable", "script"), [(LETTA01, script_01), (LETTA1X, script_1x)])
    async def test(variable: str, script: str, served: Served, tmp_path: Path) -> None:
        await run_client_script(variable, script, tmp_path, served.url, *args)

    return pytest.mark.slow(test) if slow else test
