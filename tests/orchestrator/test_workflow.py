"""YAML workflows: validation that names every problem, idempotent apply, routes, memgrid run."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from agents.rules import validate_rules
from agents.scripted import (
    ChatRequest,
    Outcome,
    ThreadedScriptedModel,
    say,
    tool_call,
)
from orchestrator.workflow import WorkflowError, load_workflow
from tests._cluster import sync_client
from tests.orchestrator._cli import cli_env, memgrid, served_by

FIXTURES = Path(__file__).parent.parent / "fixtures" / "workflow"


def test_a_malformed_workflow_names_every_problem() -> None:
    with pytest.raises(WorkflowError) as caught:
        load_workflow(FIXTURES / "bad.yaml", check_rules=validate_rules)
    problems = caught.value.problems
    expected_fragments = [
        "surprise: unknown section",
        "blocks[0].limit: Expected `int`, got `str`",
        "tools[0].import: cannot import 'tools.py:nope'",
        "agents: the name 'a' is used twice",
        "agents[0].tools[0]: unknown tool 'ghost'",
        "agents[0].blocks[0]: no shared block labelled 'missing'",
        "agents[1].tool_rules[0].tool_name: Expected `str`, got `int`",
        "routes[0].to: no agent named 'zed'",
        "entry: no agent named 'nobody'",
    ]
    for fragment in expected_fragments:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert str(FIXTURES / "bad.yaml") in str(caught.value)


def test_rules_are_checked_against_the_agent_tools(tmp_path: Path) -> None:
    file = tmp_path / "w.yaml"
    file.write_text(
        "agents:\n  - name: a\n    tool_rules:\n"
        "      - {type: constrain_child_tools, tool_name: send_message, children: [phantom]}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(file, check_rules=validate_rules)
    assert any(
        p.startswith("agents[0].tool_rules[0].children: unknown tool 'phantom'")
        for p in caught.value.problems
    ), caught.value.problems


def test_not_yaml_names_the_line(tmp_path: Path) -> None:
    file = tmp_path / "w.yaml"
    file.write_text("agents:\n  - name: [unclosed\n")
    with pytest.raises(WorkflowError) as caught:
        load_workflow(file)
    assert "line 2" in caught.value.problems[0] or "line 3" in caught.value.problems[0]


def policy(request: ChatRequest) -> Outcome:
    system = request.system_prompt
    last = request.last_message
    after_tool = last is not None and '"type": "heartbeat"' in last.text
    if "ROLE:writer" in system:
        if after_tool:
            return say("drafted")
        return tool_call(
            "draft_candidate_email", content="Dear Ada, join AgentOS!", request_heartbeat=True
        )
    if "ROLE:screener" in system:
        said = last.text if last is not None else ""
        if after_tool:
            result = request.last_tool_result
            return say(f"outcome: {json.loads(result.content)['message'] if result else ''}")
        if "weak" in said:
            return tool_call("reject", candidate_name="Bob")
        if "stray" in said:
            return tool_call(
                "send_message_to_agent_and_wait_for_reply",
                message="hello",
                other_agent_id="bystander",
            )
        return tool_call(
            "send_message_to_agent_and_wait_for_reply",
            message="Please email Ada",
            other_agent_id="writer",
        )
    return say("?")


served = served_by(policy)


def _memgrid(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return memgrid(env, *args, timeout=120)


@pytest.fixture
def env(redis_url: str, served: ThreadedScriptedModel, tmp_path: Path) -> dict[str, str]:
    return cli_env(redis_url, served.base_url, tmp_path / "home", MEMGRID_MODEL="openai/scripted")


def test_bad_workflow_exits_2_and_applies_nothing(env: dict[str, str], redis_url: str) -> None:
    done = _memgrid(env, "run", str(FIXTURES / "bad.yaml"))
    assert done.returncode == 2
    assert "nothing was applied" in done.stderr and "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if "bad.yaml: " in line]) >= 9
    client = sync_client(redis_url)
    assert client.scard("mg:agents") == 0
    client.close()


def test_run_applies_idempotently_and_routes_are_checked(
    env: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    folder = tmp_path / "wf"
    shutil.copytree(FIXTURES, folder)
    workflow = str(folder / "good.yaml")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "1-strong.txt").write_text("Ada: strong candidate, React and TypeScript")
    (inputs / "2-weak.txt").write_text("Bob: weak candidate")
    (inputs / "3-stray.txt").write_text("stray: try messaging the bystander")
    done = _memgrid(env, "run", workflow, "--inputs", str(inputs))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "created agent screener" in out and "created block company" in out
    assert "[writer] -> draft_candidate_email(" in out  # every agent's steps stream live
    assert "outcome: drafted" in out
    assert "no route from 'screener' to 'bystander'" in out
    table = out.split("runs caused", 1)[1]
    # Runs caused counts each input's own chain only: the strong one's message to the writer;
    # the weak one rejects and the stray one's route is refused, so they caused none.
    caused = {row.split()[0]: int(row.split()[3]) for row in table.splitlines() if ".txt" in row}
    assert caused == {"1-strong.txt": 1, "2-weak.txt": 0, "3-stray.txt": 0}, table
    # Re-running updates in place: same agents, agents' own memory edits survive.
    client = sync_client(redis_url)
    agents_before = client.smembers("mg:agents")
    again = _memgrid(env, "run", workflow)
    assert again.returncode == 0, again.stderr
    assert "updated agent screener" in again.stdout and "created" not in again.stdout
    assert client.smembers("mg:agents") == agents_before
    client.close()


def _problems(tmp_path: Path, text: str) -> list[str]:
    file = tmp_path / "w.yaml"
    file.write_text(text)
    with pytest.raises(WorkflowError) as caught:
        load_workflow(file, check_rules=validate_rules)
    return caught.value.problems


def test_a_typo_is_reported_once_with_the_nearest_field(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        "agents:\n  - name: a\n    persna: You help.\n  - name: b\nroutes:\n  - {from: a, to: b}\n"
        "entry: a\n",
    )
    # The agent with the typo still counts as declared: no cascade into routes or entry.
    assert len(problems) == 1, problems
    assert problems[0].startswith("agents[0]: unknown field 'persna'; did you mean 'persona'?")
    assert "tool_rules" in problems[0]  # the valid fields are listed


def test_a_misspelt_section_of_the_entry_agent_does_not_hide_it(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "agents:\n  - name: a\n    tool_rule: []\nentry: a\n")
    assert len(problems) == 1, problems  # not also "entry: no agent named 'a'"
    assert "unknown field 'tool_rule'; did you mean 'tool_rules'?" in problems[0]


def test_an_unknown_rule_type_lists_the_valid_types(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path, "agents:\n  - name: a\n    tool_rules:\n      - {type: exitloop, tool_name: x}\n"
    )
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        "agents[0].tool_rules[0].type: unknown type 'exitloop'; did you mean 'exit_loop'?"
    )
    for valid in ("run_first", "requires_approval", "max_count_per_step"):
        assert valid in problems[0]


def test_an_unknown_section_suggests_the_nearest(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "agent:\n  - name: a\n")
    assert problems[0].startswith("agent: unknown section; did you mean 'agents'?")


def test_a_workflow_agent_names_its_type(env: dict[str, str], tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        "agents:\n  - name: a\n    agent_type: react_agent\n"
        "  - name: b\n    agent_type: letta_v1_agent\n    tool_rules:\n"
        "      - {type: exit_loop, tool_name: send_message}\n",
    )
    assert any(p.startswith("agents[0].agent_type:") and "letta_v1_agent" in p for p in problems)
    assert any("agents[1].tool_rules[0]" in p and "send_message" in p for p in problems)
    file = tmp_path / "typed.yaml"
    file.write_text("agents:\n  - name: plain\n    agent_type: letta_v1_agent\n")
    assert _memgrid(env, "run", str(file)).returncode == 0
    shown = json.loads(_memgrid(env, "agents", "show", "plain", "--json").stdout)
    assert shown["agent_type"] == "letta_v1_agent" and "send_message" not in shown["tools"]
