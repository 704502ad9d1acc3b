"""Hostile requests for every operation of an OpenAPI document, deterministic by seed.

Shared by ``tests/api/test_fuzz.py`` and ``benchmarks/fuzz_api.py --engine hostile``. It lives
under ``tests/`` (a package, importable as ``tests.api.hostile`` from the repository root)
rather than in ``benchmarks/`` (loose scripts, loaded by path): the test suite is its main user
and gates it with ruff; the benchmark runs from a checkout anyway. It imports nothing of
pytest's or of the test fixtures, so the benchmark pulls in no test machinery.

Each case starts from a body and parameters that follow the schema (so that it reaches the
handler, not only the parser) and then breaks one thing: a wrong type, a null, a huge or
strange string, deep nesting, a missing required field, an unknown field, an absurd number,
a body that is not JSON, a bad id. The cases of one operation depend only on the seed and the
operation, not on which other operations exist.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from tests.api._hostile_values import (
    CONTENT_TYPES,
    NASTY_STRINGS,
    RAW_BODIES,
    Values,
    deref,
    dumps,
    nest_into,
)

__all__ = ("DESTRUCTIVE", "Case", "Operation", "cases", "make_pins", "operations")

_METHODS = ("get", "post", "put", "patch", "delete")


DESTRUCTIVE = frozenset(
    {
        "DELETE /v1/agents/{agent_id}",
        "DELETE /v1/blocks/{block_id}",
        "DELETE /v1/sources/{source_id}",
        "DELETE /v1/folders/{source_id}",
        "DELETE /v1/tools/{tool_id}",
    }
)
"""Operations that would delete the pinned resources (every later case would be a 404)."""


@dataclass(frozen=True)
class Operation:
    """One ``METHOD path`` of the document, with its schemas resolved."""

    method: str
    path: str
    parameters: tuple[Mapping[str, Any], ...]
    body: Mapping[str, Any] | None  # the JSON schema of an application/json body
    multipart: bool = False
    body_required: bool = False

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"


@dataclass(frozen=True)
class Case:
    """One request to send: method, path with its parameters filled in, query, body."""

    operation: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, tuple[str, bytes, str]], ...] = ()
    what: str = ""  # which mutation this case applies, for the failure report

    def describe(self) -> str:
        """A one-line account for a failure message (bodies clipped)."""
        query = "&".join(f"{k}={v[:40]}" for k, v in self.query)
        body = (self.content or b"")[:200].decode(errors="replace")
        return f"{self.method} {self.path[:200]}?{query[:200]} [{self.what}] body={body!r}"

    def request(self) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client.request`` (or the async client's) for this case."""
        return {
            "method": self.method,
            "url": self.path,
            "params": list(self.query),
            "content": self.content,
            "headers": dict(self.headers),
            "files": list(self.files) or None,
        }


def operations(document: Mapping[str, Any]) -> list[Operation]:
    """Every operation of ``document`` (an OpenAPI 3.x document as parsed JSON)."""
    found: list[Operation] = []
    for path, item in document.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = tuple(deref(document, p) for p in [*shared, *op.get("parameters", [])])
            request = deref(document, op.get("requestBody") or {})
            content = request.get("content", {})
            schema = content.get("application/json", {}).get("schema")
            found.append(
                Operation(
                    method=method,
                    path=path,
                    parameters=params,
                    body=schema,
                    multipart="multipart/form-data" in content,
                    body_required=bool(request.get("required")),
                )
            )
    return found


def cases(
    document: Mapping[str, Any],
    seed: int,
    per_operation: int,
    pins: Mapping[str, str] | None = None,
    skip: frozenset[str] = frozenset(),
) -> Iterator[Case]:
    """``per_operation`` hostile cases for each operation of ``document``, round-robin.

    The n-th case of every operation comes before any (n+1)-th, so a caller that stops early
    (a time budget) still covered every operation evenly.

    Args:
        document: the OpenAPI document.
        seed: the same seed gives the same cases.
        per_operation: cases per operation.
        pins: values for path parameters (``agent_id`` -> an existing agent), used by
            most cases so that requests reach existing resources.
        skip: operation labels (``"DELETE /v1/agents/{agent_id}"``) whose pinned path
            parameters must not be used (they would destroy the pinned resources).
    """
    ops = operations(document)
    rngs = [random.Random(f"{seed}:{op.label}") for op in ops]
    for index in range(per_operation):
        for op, rng in zip(ops, rngs, strict=True):
            use_pins = {} if op.label in skip else dict(pins or {})
            yield _case(document, op, rng, use_pins, index)


def make_pins(http: httpx.Client) -> dict[str, str]:
    """Real resources for the path parameters, made through the API at ``http``: an agent
    (with a turn, so a run), a block, a source with a file, a passage, a tool."""

    def ok(response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
        return response.json()

    agent = ok(
        http.post(
            "/v1/agents/",
            json={"name": "fuzz", "memory_blocks": [{"label": "human", "value": "Name: Bob"}]},
        )
    )
    ok(http.post(f"/v1/agents/{agent['id']}/messages", json={"input": "hello"}))
    runs = ok(http.get("/v1/runs/", params={"agent_ids": [agent["id"]]}))
    block = ok(http.post("/v1/blocks/", json={"label": "notes", "value": "fuzz"}))
    source = ok(http.post("/v1/sources/", json={"name": "fuzz-source"}))
    upload = ok(
        http.post(f"/v1/sources/{source['id']}/upload", files={"file": ("a.txt", b"some text")})
    )
    passage = ok(http.post(f"/v1/agents/{agent['id']}/archival-memory", json={"text": "a passage"}))
    tools = ok(http.get("/v1/tools/"))
    return {
        "agent_id": agent["id"],
        "block_id": block["id"],
        "block_label": "human",
        "source_id": source["id"],
        "source_name": "fuzz-source",
        "file_id": upload["id"],
        "memory_id": passage[0]["id"],
        "tool_id": tools[0]["id"],
        "run_id": runs[0]["id"],
        "job_id": runs[0]["id"],
    }


# --- one case -------------------------------------------------------------------------------


def _case(
    document: Mapping[str, Any],
    op: Operation,
    rng: random.Random,
    pins: Mapping[str, str],
    index: int,
) -> Case:
    gen = Values(document, rng)
    path_values: dict[str, str] = {}
    query: list[tuple[str, str]] = []
    for param in op.parameters:
        name, where = str(param.get("name")), param.get("in")
        if where == "path":
            path_values[name] = pins.get(name) or _an_id(rng, name)
        elif where == "query" and (param.get("required") or rng.random() < 0.5):
            query += gen.query_values(name, param.get("schema") or {})
    body: Any = gen.valid(op.body) if op.body is not None else None
    content: bytes | None = None if body is None else dumps(body)
    headers: list[tuple[str, str]] = []
    files: list[tuple[str, tuple[str, bytes, str]]] = []
    if op.multipart:
        name = rng.choice(["a.txt", "../../x.txt", "\x00.pdf", "é.md", "x" * 300 + ".txt"])
        data = rng.choice([b"hi", b"\xff\xfe", b"", b"%PDF-1.7 broken"])
        # Letta's clients send the field "file"; the document (Litestar's rendering of a
        # dict of uploads) says "files".
        files = [(field, (name, data, "text/plain")) for field in ("file", "files")]
    # The first case of each operation is the well-formed one: the baseline must not 5xx either.
    what = "well-formed" if index == 0 else rng.choice(_MUTATIONS)
    applied = True
    if what == "path-param" and path_values:
        name = rng.choice(sorted(path_values))
        # Not "": an empty last segment is another route (DELETE .../{source_id}/ deletes the
        # source, not one of its files).
        path_values[name] = rng.choice([*(v for v in NASTY_STRINGS if v), "x" * 5000])
    elif what == "query-param":
        query = gen.hostile_query(op.parameters)
    elif what == "body-field" and isinstance(body, dict) and body:
        key = rng.choice(sorted(body))
        body[key] = gen.hostile_value()
        content = dumps(body)
    elif what == "body-unknown-field" and isinstance(body, dict):
        body[rng.choice(NASTY_STRINGS) or "x"] = gen.hostile_value()
        content = dumps(body)
    elif what == "body-missing-required" and isinstance(body, dict) and body:
        del body[rng.choice(sorted(body))]
        content = dumps(body)
    elif what == "body-nested-field" and isinstance(body, dict) and body:
        content = nest_into(body, rng)
    elif what == "body-raw":
        content = rng.choice(RAW_BODIES)()
        headers.append(("content-type", "application/json"))
        files = []
    elif what == "body-type":
        content = dumps(gen.hostile_value())
        files = []
    elif what == "content-type":
        headers.append(("content-type", rng.choice(CONTENT_TYPES)))
        content = content or b"x=1"
        files = []
    else:
        applied = False
    if not applied:
        what = "well-formed"
    if content is not None and not files and not any(h[0] == "content-type" for h in headers):
        headers.append(("content-type", "application/json"))
    path = op.path
    for name, value in path_values.items():
        # Dots encoded too: clients resolve a literal ".." segment before sending (the request
        # would go to the parent route, e.g. delete the pinned agent), "%2E%2E" reaches the app.
        path = path.replace("{" + name + "}", quote(value, safe="").replace(".", "%2E"))
    return Case(
        operation=op.label,
        method=op.method.upper(),
        path=path,
        query=tuple(query),
        content=None if files else content,
        headers=tuple(headers),
        files=tuple(files),
        what=what,
    )


_MUTATIONS = (
    "path-param",
    "query-param",
    "body-field",
    "body-field",
    "body-unknown-field",
    "body-missing-required",
    "body-nested-field",
    "body-raw",
    "body-type",
    "content-type",
)


def _an_id(rng: random.Random, name: str) -> str:
    prefix = name.removesuffix("_id").replace("_", "-")
    return f"{prefix}-{rng.getrandbits(64):016x}"
