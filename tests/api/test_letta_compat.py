"""Letta's whole public surface is answered: the coverage table in docs/letta-compat.md is
current, and the served app implements exactly its "implemented" rows and answers 501 (with
what to use instead) for the others."""

from __future__ import annotations

import re

import httpx

from orchestrator.api.app import create_app
from orchestrator.api.compat import COVERAGE_DOC, LETTA_OPERATIONS, coverage_table
from orchestrator.api.settings import ApiSettings

_ROW = re.compile(
    r"^\| (?P<op>\S+)(?: \(deprecated\))? \| (?P<method>[A-Z]+) \| `(?P<path>[^`]+)` "
    r"\| (?P<state>implemented|501) \|$"
)
_TOTALS = re.compile(r"\*\*(\d+) implemented, (\d+) answer 501, of (\d+) public operations\.\*\*")


def _rows() -> list[dict[str, str]]:
    return [
        m.groupdict() for line in COVERAGE_DOC.read_text().splitlines() if (m := _ROW.match(line))
    ]


def test_the_coverage_table_is_current() -> None:
    expected = coverage_table(create_app(ApiSettings()))
    assert COVERAGE_DOC.is_file(), "run `python docs/_gen_letta_compat.py` to write it"
    assert COVERAGE_DOC.read_text() == expected, (
        "docs/letta-compat.md is stale: run `python docs/_gen_letta_compat.py`"
    )
    rows = _rows()
    assert len(rows) == len(LETTA_OPERATIONS) == 235
    totals = _TOTALS.search(COVERAGE_DOC.read_text())
    assert totals is not None
    done = sum(r["state"] == "implemented" for r in rows)
    assert [int(n) for n in totals.groups()] == [done, len(rows) - done, len(rows)]


async def test_the_served_app_answers_as_the_table_says(client: httpx.AsyncClient) -> None:
    rows = _rows()
    assert rows, "docs/letta-compat.md has no coverage rows"
    for row in rows:
        path = re.sub(r"\{[^}]*\}", "x-unknown", row["path"])
        body = {} if row["method"] in ("POST", "PUT", "PATCH") else None
        response = await client.request(row["method"], path, json=body)
        where = f"{row['method']} {row['path']} ({row['op']}): {response.status_code}"
        if row["state"] == "501":
            assert response.status_code == 501, where
            answer = response.json()
            assert row["op"] in answer["detail"] and answer["instead"], where
            assert answer["instead"] in answer["detail"], where
        else:
            assert response.status_code not in (405, 501), where
            routing_miss = response.status_code == 404 and response.json() == {
                "detail": "Not Found"
            }
            assert not routing_miss, where


async def test_archives_are_served(client: httpx.AsyncClient) -> None:
    """Archives were the last 501s of Letta's agent-facing API (issue #12, item 4)."""
    assert (await client.get("/v1/archives/")).json() == []
    for method, path, names in (
        ("POST", "/v1/archives/archive-x/passages", "archive-x"),
        ("PATCH", "/v1/agents/agent-x/archives/attach/archive-y", "agent-x"),
    ):
        response = await client.request(method, path, json={"text": "t"})
        assert response.status_code == 404, response.text
        assert names in response.json()["detail"], response.text
