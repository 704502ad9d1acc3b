"""Serving: the threaded variant, the env fixture, and ``memgrid scripted-model``."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import httpx
import openai
import pytest

from agents.scripted import ScriptedModel, ThreadedScriptedModel, sequence, text
from orchestrator.cli import main
from tests._util import background

_CLI = [sys.executable, "-c", "import sys; from orchestrator.cli import main; sys.exit(main())"]


def test_threaded_model_serves_sync_code(scripted_model_thread: ThreadedScriptedModel) -> None:
    scripted_model_thread.model.policy = sequence(text("from a thread"))
    with openai.OpenAI(
        base_url=scripted_model_thread.base_url, api_key="x", max_retries=0
    ) as client:
        done = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    assert done.choices[0].message.content == "from a thread"
    assert scripted_model_thread.requests[0].last_user_text == "hi"


def test_env_fixture_points_the_sdk_at_the_model(
    scripted_model_env: ThreadedScriptedModel,
) -> None:
    assert os.environ["OPENAI_BASE_URL"] == scripted_model_env.base_url
    with openai.OpenAI(max_retries=0) as client:
        done = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "env"}]
        )
    assert done.choices[0].message.content == "env"


def test_start_in_thread_stop_is_idempotent() -> None:
    threaded = ScriptedModel.start_in_thread()
    url = threaded.base_url
    assert httpx.get(f"{url}/models").status_code == 200
    threaded.stop()
    threaded.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models")


async def test_two_models_cannot_share_a_port() -> None:
    async with ScriptedModel.serve() as first:
        with pytest.raises(OSError, match="in use"):
            async with ScriptedModel.serve(port=first.port):
                pass
        assert ScriptedModel(port=first.port).base_url.endswith(f":{first.port}/v1")


def test_cli_serves_until_sigterm() -> None:
    policy = ("--policy", "agents.scripted.policies:echo", "--port", "0")
    sizes = ("--model", "demo-model", "--embedding-dim", "256")
    with background([*_CLI, "scripted-model", *policy, *sizes]) as proc:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")
        with openai.OpenAI(base_url=url, api_key="x", max_retries=0) as client:
            done = client.chat.completions.create(
                model="demo-model", messages=[{"role": "user", "content": "ping"}]
            )
            assert done.choices[0].message.content == "ping"
            assert [m.id for m in client.models.list().data] == ["demo-model"]
            # Any size, e.g. to stand in for an alias that is neither 1536- nor 384-d.
            vectors = client.embeddings.create(model="text-embedding-3-small", input="x")
            assert len(vectors.data[0].embedding) == 256
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("no-colon", "must look like module:attr or path/to/file.py:attr"),
        ("missing/policy.py:fn", "no file"),
        ("agents.scripted.nope:echo", "cannot import module 'agents.scripted.nope'"),
        ("agents.scripted.policies:nope", "has no attribute 'nope'"),
        ("agents.scripted.policies:SEND_MESSAGE", "is not callable"),
    ],
)
def test_cli_names_a_bad_policy(
    spec: str, complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scripted-model", "--policy", spec]) == 2
    assert complaint in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-3"])
def test_cli_names_a_bad_embedding_dim(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scripted-model", "--embedding-dim", value]) == 2
    err = capsys.readouterr().err
    assert "--embedding-dim must be a positive" in err and "Traceback" not in err


def test_cli_takes_a_policy_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.cli._scripted import load_policy

    file = tmp_path / "policy.py"
    file.write_text(
        "from agents.scripted import say\n\n"
        "def greet(request):\n    return say('hello from a file')\n"
    )
    policy = load_policy(f"{file}:greet")
    assert policy.__name__ == "greet"
    broken = tmp_path / "broken.py"
    broken.write_text("def oops(:\n")
    assert main(["scripted-model", "--policy", f"{broken}:oops"]) == 2
    err = capsys.readouterr().err
    assert "cannot load" in err and "SyntaxError" in err and "Traceback" not in err
