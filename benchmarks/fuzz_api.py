"""Fuzz the live REST API (schemathesis, or memgrid's own hostile cases): any 5xx is a failure.

``--engine hostile`` needs nothing installed: it sends the cases of ``tests/api/hostile.py``
(the generator ``tests/api/test_fuzz.py`` runs in the test suite) to the same real processes,
``--cases`` per operation from ``--seed``, and reports the statuses and every 5xx. The default
engine is schemathesis, described below.

Starts (``_harness.serve_stack``) a private ``redis-server``, the scripted model with
the echo policy and ``memgrid serve`` with its embedded worker, creates one agent and one block
so that generated requests also reach existing resources (``path.agent_id`` and
``path.block_id`` are pinned to them), then runs the schemathesis CLI against
``/openapi.json`` with the ``not_a_server_error`` check and stops everything.

schemathesis is not a project dependency: it lives in a throwaway venv outside the repository
(``--venv``, default ``$TMPDIR/memgrid-schemathesis``), created and filled with
``schemathesis==4.32.5`` on first use (about 30 s).

Prints a summary (operations tested, test cases, failures) and, for every 5xx, the request and
the server's log records (with tracebacks) of that path. Exit status: 0 when no 5xx was found,
1 when one was, 2 when the fuzzer itself could not run.

Run: ``.venv/bin/python benchmarks/fuzz_api.py`` (about 2 minutes on 2 cores with
``--max-examples 20``); ``--max-examples 50 --seed 1 --timeout 900 --phases
examples,coverage,fuzzing,stateful --keep /tmp/fuzz``.
"""

# ruff: noqa: E402  (the repository root goes on sys.path before the imports below)

from __future__ import annotations

import os
import sys

# The repository root holds tests/api/hostile.py (``python benchmarks/fuzz_api.py`` puts only
# benchmarks/ on sys.path).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

import argparse
import base64
import json
import re
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
from _harness import serve_stack  # benchmarks/ is first on sys.path

__all__ = ("main",)

SCHEMATHESIS = "schemathesis==4.32.5"


def ensure_schemathesis(venv: Path) -> Path:
    """The ``st`` executable of ``venv``, creating the venv and installing it when needed."""
    st = venv / "bin" / "st"
    version = SCHEMATHESIS.partition("==")[2]
    if st.exists():
        shown = subprocess.run([str(st), "--version"], capture_output=True, text=True)
        if version in shown.stdout:
            return st
    print(f"installing {SCHEMATHESIS} into {venv} (once)", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, SCHEMATHESIS], check=True)
    return st


def _seed(url: str) -> dict[str, str]:
    """An agent and a block for the fuzzer to find."""
    with httpx.Client(base_url=url, timeout=30) as http:
        agent = http.post(
            "/v1/agents/",
            json={"name": "fuzz", "memory_blocks": [{"label": "human", "value": "Name: Bob"}]},
        )
        agent.raise_for_status()
        block = http.post("/v1/blocks/", json={"label": "notes", "value": "fuzz"})
        block.raise_for_status()
        return {"path.agent_id": agent.json()["id"], "path.block_id": block.json()["id"]}


def _config(path: Path, parameters: dict[str, str]) -> None:
    lines = ["[parameters]", *(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in parameters.items())]
    path.write_text("\n".join(lines) + "\n")


def _events(ndjson: Path) -> list[dict[str, Any]]:
    if not ndjson.exists():
        return []
    return [json.loads(line) for line in ndjson.read_text().splitlines() if line.strip()]


def summarize(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Operations, test cases (responses seen) and 5xx responses from the ndjson events."""
    operations: set[str] = set()
    cases = 0
    statuses: Counter[int] = Counter()
    server_errors: list[dict[str, Any]] = []
    for event in events:
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished.get("recorder") or {}
        if recorder.get("interactions"):
            operations.add(str(recorder.get("label")))
        for interaction in (recorder.get("interactions") or {}).values():
            response = interaction.get("response") or {}
            status = response.get("status_code")
            if status is None:
                continue
            cases += 1
            statuses[int(status)] += 1
            if int(status) >= 500:
                server_errors.append(interaction)
    return {
        "operations": sorted(operations),
        "cases": cases,
        "statuses": statuses,
        "server_errors": server_errors,
    }


def _server_log(log: str, path: str) -> str:
    """The serve log's error records for ``path``, tracebacks with their line breaks."""
    found: list[str] = []
    for line in log.splitlines():
        if path not in line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            found.append(line)
            continue
        if isinstance(record, dict) and record.get("level") in ("error", "critical"):
            found.append(f"{record.get('event')}: {record.get('error')}")
            found.append(str(record.get("exception") or ""))
    return "\n".join(found)[-6000:]


def _request_line(request: dict[str, Any]) -> str:
    method, uri = request.get("method", "?"), request.get("uri", "?")
    body = request.get("body")
    if isinstance(body, dict) and "$base64" in body:
        body = base64.b64decode(body["$base64"]).decode(errors="replace")
    elif isinstance(body, dict) and "string" in body:
        body = body["string"]
    text = f"{method} {unquote(uri)}"
    if body:
        text += f"\n  body: {str(body)[:1500]}"
    return text


def run_hostile(url: str, seed: int, per_operation: int, serve_log: Any) -> int:
    """Send the hostile cases to ``url``; 0 when no 5xx came back, 1 otherwise."""
    # The repository root is on sys.path (above).
    from tests.api.hostile import DESTRUCTIVE, cases, make_pins

    with httpx.Client(base_url=url, timeout=60) as http:
        document = http.get("/openapi.json").json()
        pins = make_pins(http)
        statuses: Counter[int] = Counter()
        server_errors: list[tuple[int, str, str]] = []
        sent = 0
        started = time.perf_counter()
        for case in cases(document, seed, per_operation, pins, skip=DESTRUCTIVE):
            try:
                response = http.request(**case.request())
            except httpx.TransportError as exc:
                server_errors.append((0, f"{type(exc).__name__}: {exc}", case.describe()))
                continue
            sent += 1
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append((response.status_code, response.text[:300], case.describe()))
        elapsed = time.perf_counter() - started
        alive = http.get("/v1/health/").status_code == 200
    shown = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
    print("\n## summary (engine: hostile)\n")
    print(f"- seed {seed}, {per_operation} cases per operation, {sent} requests in {elapsed:.0f} s")
    print(f"- statuses: {shown}")
    print(f"- 5xx or dropped connections: {len(server_errors)}; server alive after: {alive}")
    for status, text, described in server_errors[:50]:
        print(f"\n### {status}: {described}\n  answer: {text}")
    tail = serve_log()
    if server_errors and tail:
        print("\nserver log (tail):\n" + tail[-6000:])
    return 1 if server_errors or not alive else 0


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    tmp = Path(os.environ.get("TMPDIR") or tempfile.gettempdir())
    parser.add_argument(
        "--venv", type=Path, default=tmp / "memgrid-schemathesis", help="schemathesis's venv"
    )
    parser.add_argument("--max-examples", type=int, default=20, help="cases per operation (20)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for st run (900)")
    parser.add_argument(
        "--phases", default="examples,coverage,fuzzing", help="st run --phases (no stateful)"
    )
    parser.add_argument("--seed", type=int, default=None, help="st run --seed")
    parser.add_argument("--workers", default="1", help="st run --workers (1)")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and reports here")
    parser.add_argument(
        "--engine", choices=("schemathesis", "hostile"), default="schemathesis", help="generator"
    )
    parser.add_argument("--cases", type=int, default=40, help="hostile: cases per operation")
    args = parser.parse_args()
    if args.engine == "hostile":
        return _main_hostile(args)
    try:
        st = ensure_schemathesis(args.venv)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"cannot install schemathesis into {args.venv}: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memgrid-fuzz-") as name:
        folder = args.keep or Path(name)
        folder.mkdir(parents=True, exist_ok=True)
        env = {"MEMGRID_API_RUN_TIMEOUT_S": "20"}
        with serve_stack(folder, extra_env=env) as (stack, url):
            _config(folder / "schemathesis.toml", _seed(url))
            ndjson = folder / "events.ndjson"
            cmd = [str(st), "--config-file", str(folder / "schemathesis.toml"), "run"]
            cmd += [f"{url}/openapi.json", "--checks", "not_a_server_error"]
            cmd += ["--max-examples", str(args.max_examples), "--phases", args.phases]
            cmd += ["--workers", args.workers, "--request-timeout", "30", "--no-color"]
            cmd += ["--report", "ndjson", "--report-ndjson-path", str(ndjson)]
            cmd += ["--generation-database", "none", "--suppress-health-check", "all"]
            # The pinned agent and block must outlive the run.
            cmd += ["--exclude-name", "DELETE /v1/agents/{agent_id}"]
            cmd += ["--exclude-name", "DELETE /v1/blocks/{block_id}"]
            if args.seed is not None:
                cmd += ["--seed", str(args.seed)]
            print("$ " + " ".join(cmd), flush=True)
            try:
                done = subprocess.run(
                    cmd, cwd=folder, capture_output=True, text=True, timeout=args.timeout
                )
            except subprocess.TimeoutExpired as exc:
                out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
                print(out[-4000:])
                print(f"st run did not finish within {args.timeout:g} s", file=sys.stderr)
                return 2
            serve_log = stack.log_tail("serve", 2_000_000)
        elapsed = time.perf_counter() - started
        print(done.stdout[-6000:])
        if done.returncode not in (0, 1):
            print(done.stderr[-4000:], file=sys.stderr)
            print(f"st run failed with exit status {done.returncode}", file=sys.stderr)
            return 2
        found = summarize(_events(ndjson))
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(found["statuses"].items()))
    print("\n## summary\n")
    print(f"- operations tested: {len(found['operations'])}")
    print(f"- test cases (responses seen): {found['cases']} ({statuses})")
    print(f"- 5xx responses: {len(found['server_errors'])}")
    print(f"- st run exit status: {done.returncode}; wall time {elapsed:.0f} s")
    seen: set[str] = set()
    for error in found["server_errors"]:
        request = error["request"]
        status = error["response"].get("status_code")
        print(f"\n### {status}: {_request_line(request)}")
        path = re.sub(r"^https?://[^/]+", "", str(request.get("uri", ""))).split("?")[0]
        if path not in seen:
            seen.add(path)
            print("server log:\n" + (_server_log(serve_log, path) or "(no record)"))
    failed = bool(found["server_errors"]) or done.returncode == 1
    return 1 if failed else 0


def _main_hostile(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="memgrid-fuzz-") as name:
        folder = args.keep or Path(name)
        folder.mkdir(parents=True, exist_ok=True)
        env = {"MEMGRID_API_RUN_TIMEOUT_S": "20"}
        with serve_stack(folder, extra_env=env) as (stack, url):
            seed = 11 if args.seed is None else args.seed
            return run_hostile(url, seed, args.cases, lambda: stack.log_tail("serve", 200_000))


if __name__ == "__main__":
    raise SystemExit(main())
